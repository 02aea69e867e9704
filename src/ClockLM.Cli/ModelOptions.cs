using System.CommandLine;
using ClockLM.Models;
using ClockLM.Tensors;
using Microsoft.Extensions.Logging;

namespace ClockLM.Cli;

/// <summary>Options shared by every command that loads a model.</summary>
internal sealed class ModelOptions
{
    public Option<string?> Model { get; } = new("--model", "-m") { Description = "Model file: GGUF or llama2.c .bin (default: the built-in model, models/clocklm-kjv.gguf)" };

    public Option<string?> Tokenizer { get; } = new("--tokenizer") { Description = "Tokenizer file for llama2.c checkpoints (tokenizer.bin)" };
    public Option<int> Threads { get; } = new("--threads", "-t") { Description = "Worker threads", DefaultValueFactory = _ => Environment.ProcessorCount };
    public Option<string?> Kernels { get; } = KernelsOption();

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Tokenizer);
        command.Options.Add(Threads);
        command.Options.Add(Kernels);
    }

    /// <summary>Warns when <paramref name="contextLength"/> is longer than the context <paramref name="model"/> was trained on.</summary>
    public static void WarnAboveTrainedContext(ClockLM.Models.Model model, int? contextLength)
    {
        if (contextLength > model.Config.ContextLength)
            Console.Error.WriteLine($"warning: --ctx is {contextLength}, longer than the {model.Config.ContextLength} positions the model was trained on: text past that is unreliable");
    }

    /// <summary>Opens the model named by --model, or the built-in model, on the kernels --kernels names. A large file is
    /// first read through with a progress bar when stderr is a terminal, so a cold multi-GB file fills the page cache
    /// visibly instead of stalling the first token on page faults.</summary>
    public ClockLM.Models.Model Load(ParseResult result)
    {
        string path = result.GetValue(Model) ?? BuiltInModel.Path;
        if (!Console.IsErrorRedirected && File.Exists(path) && new FileInfo(path).Length >= PageCache.LargeFileBytes)
        {
            using var bar = new ProgressBar($"reading {System.IO.Path.GetFileName(path)}");
            PageCache.Fill(path, bar);
        }
        var model = ClockLM.Models.Model.Load(path, result.GetValue(Tokenizer), Options(result, Kernels));
        PrintWarnings(model.Tokenizer);
        return model;
    }

    /// <summary>--kernels: which kernels to run, for comparisons (docs/kernels.md).</summary>
    public static Option<string?> KernelsOption() => new("--kernels")
    {
        Description = "Kernels, for comparisons: best (default), scalar, vector128, vector256 or vector512, optionally /256 or /512 (the packed Q4_0 kernel's width)",
    };

    /// <summary>How the command line loads models: on the kernels <paramref name="kernels"/> names, with every fast path
    /// the model has to leave written to stderr once.</summary>
    public static ClockLM.Models.ModelOptions Options(ParseResult result, Option<string?> kernels)
    {
        KernelOptions chosen;
        try
        {
            chosen = result.GetValue(kernels) is { } text ? KernelOptions.Parse(text) : KernelOptions.Best;
        }
        catch (Exception e) when (e is FormatException or PlatformNotSupportedException)
        {
            throw new UsageException($"--kernels: {e.Message}");
        }
        return new ClockLM.Models.ModelOptions { Kernels = chosen, Logger = new StderrLogger(LogLevel.Warning) };
    }

    /// <summary>Opens only the tokenizer of --model (vocabulary-only GGUF files included), or the built-in model's.</summary>
    public ClockLM.Tokenizers.Tokenizer LoadTokenizer(ParseResult result)
    {
        var tokenizer = ClockLM.Models.Model.LoadTokenizer(result.GetValue(Model) ?? BuiltInModel.Path, result.GetValue(Tokenizer));
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
