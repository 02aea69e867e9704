using System.CommandLine;
using System.Text.Json.Nodes;
using ClockLM.Models;
using ClockLM.Server;

namespace ClockLM.Cli;

/// <summary>`clocklm list`: the models of a folder, one line each, as `ollama list` prints them.</summary>
internal static class ListCommand
{
    public static Command Create()
    {
        var dir = ModelFolderOption.Create();
        var json = new Option<bool>("--json") { Description = "Print a JSON array instead of a table" };
        var command = new Command("list", "List the models of a folder (name, architecture, parameters, type, size, context)");
        command.Options.Add(dir);
        command.Options.Add(json);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            var models = ModelRegistry.ReadFolder(result.GetValue(dir)!).Select(e => (e.Name, Summary: ModelSummary.Read(e.Path))).ToList();
            if (result.GetValue(json))
            {
                Console.WriteLine(new JsonArray([.. models.Select(m => (JsonNode)ModelFolderOption.Json(m.Name, m.Summary))]).ToJsonString());
                return 0;
            }
            int width = Math.Max(4, models.Select(m => m.Name.Length).DefaultIfEmpty(0).Max());
            Console.WriteLine($"{"NAME".PadRight(width)}  {"ARCH",-8}  {"PARAMS",-7}  {"TYPE",-7}  {"SIZE",-8}  {"CONTEXT",7}  MODIFIED");
            foreach (var (name, s) in models)
                Console.WriteLine($"{name.PadRight(width)}  {s.Architecture,-8}  {s.ParameterSize,-7}  {s.Type,-7}  {ModelFolderOption.Size(s.FileBytes),-8}  {s.ContextLength,7}  {s.Modified.ToLocalTime():yyyy-MM-dd HH:mm}");
            return 0;
        }));
        return command;
    }
}
