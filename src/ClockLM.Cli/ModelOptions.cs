using System.CommandLine;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>Options shared by every command that loads a model.</summary>
internal sealed class ModelOptions
{
    public Option<string?> Model { get; } = new("--model", "-m") { Description = "Model file: GGUF or llama2.c .bin (default: the built-in model, models/clocklm-kjv.gguf)" };

    /// <summary>The model ClockLM trained itself and ships beside the command (see models/README.md).</summary>
    public static string BuiltInModelPath => System.IO.Path.Combine(AppContext.BaseDirectory, "models", "clocklm-kjv.gguf");
    public Option<string?> Tokenizer { get; } = new("--tokenizer") { Description = "Tokenizer file for llama2.c checkpoints (tokenizer.bin)" };
    public Option<int> Threads { get; } = new("--threads", "-t") { Description = "Worker threads", DefaultValueFactory = _ => Environment.ProcessorCount };

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Tokenizer);
        command.Options.Add(Threads);
    }

    /// <summary>Warns when <paramref name="contextLength"/> is longer than the context <paramref name="model"/> was trained on.</summary>
    public static void WarnAboveTrainedContext(ClockLM.Models.Model model, int? contextLength)
    {
        if (contextLength > model.Config.ContextLength)
            Console.Error.WriteLine($"warning: --ctx is {contextLength}, longer than the {model.Config.ContextLength} positions the model was trained on: text past that is unreliable");
    }

    /// <summary>Opens the model named by --model, or the built-in model.</summary>
    public ClockLM.Models.Model Load(ParseResult result)
    {
        string path = result.GetValue(Model) ?? BuiltInModelPath;
        var model = ClockLM.Models.Model.Load(path, result.GetValue(Tokenizer));
        PrintWarnings(model.Tokenizer);
        return model;
    }

    /// <summary>Opens only the tokenizer of --model (vocabulary-only GGUF files included), or the built-in model's.</summary>
    public ClockLM.Tokenizers.Tokenizer LoadTokenizer(ParseResult result)
    {
        var tokenizer = ClockLM.Models.Model.LoadTokenizer(result.GetValue(Model) ?? BuiltInModelPath, result.GetValue(Tokenizer));
        PrintWarnings(tokenizer);
        return tokenizer;
    }

    private static void PrintWarnings(ClockLM.Tokenizers.Tokenizer tokenizer)
    {
        foreach (string warning in tokenizer.LoadWarnings) Console.Error.WriteLine($"warning: {warning}");
    }

    /// <summary>A worker pool for --threads N: N-1 workers beside the calling thread.</summary>
    public ClockLM.Tensors.WorkerPool CreatePool(ParseResult result)
    {
        int threads = result.GetValue(Threads);
        if (threads < 1 || threads > 1024) throw new UsageException($"--threads is {threads}, expected 1 to 1024");
        if (threads > Environment.ProcessorCount)
            Console.Error.WriteLine($"warning: --threads is {threads}, more than this machine's {Environment.ProcessorCount} cores: the extra threads only wait for each other");
        return new ClockLM.Tensors.WorkerPool(threads - 1);
    }
}
