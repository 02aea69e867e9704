using System.CommandLine;
using ClockLM.Models;
using ClockLM.Server;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Cli;

/// <summary>`clocklm show MODEL`: one model's architecture, size, shape and chat template, as `ollama show` prints them.</summary>
internal static class ShowCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model's name in the models folder, or a .gguf file" };
        var dir = ModelFolderOption.Create();
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var command = new Command("show", "Show a model's architecture, parameters, type, size, context and chat template");
        command.Arguments.Add(model);
        command.Options.Add(dir);
        command.Options.Add(json);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string asked = result.GetValue(model)!;
            string folder = result.GetValue(dir)!;
            string name, path;
            if (File.Exists(asked))
            {
                (name, path) = (Path.GetFileNameWithoutExtension(asked), asked);
            }
            else
            {
                var entries = ModelRegistry.ReadFolder(folder);
                var entry = entries.FirstOrDefault(e => e.Answers(asked))
                    ?? throw new UsageException($"no model '{asked}' in {folder}; available: {string.Join(", ", entries.Select(e => e.Name))}");
                (name, path) = (entry.Name, entry.Path);
            }
            var s = ModelSummary.Read(path);
            if (result.GetValue(json))
            {
                Console.WriteLine(ModelFolderOption.Json(name, s).ToJsonString());
                return 0;
            }
            var c = s.Config;
            void Row(string label, object value) => Console.WriteLine($"    {label,-20}{value}");
            Console.WriteLine("  Model");
            Row("name", name);
            Row("file", s.Path);
            Row("architecture", s.Architecture);
            Row("parameters", $"{s.ParameterSize} ({s.Parameters})");
            Row("type", s.Type);
            Row("size", $"{ModelFolderOption.Size(s.FileBytes)} ({s.FileBytes} bytes)");
            Row("context length", c.ContextLength);
            Row("embedding length", c.Dim);
            Row("layers", c.Layers);
            Row("heads", c.KvHeads == c.Heads ? $"{c.Heads}" : $"{c.Heads} ({c.KvHeads} for keys and values)");
            Row("vocabulary", c.VocabSize);
            Console.WriteLine();
            Console.WriteLine("  Chat template" + (s.ChatTemplate is null ? " (none in the file: ChatML is used)" : ""));
            foreach (string line in (s.ChatTemplate ?? ChatTemplate.ChatMLSource).Split('\n'))
                Console.WriteLine("    " + line);
            return 0;
        }));
        return command;
    }
}
