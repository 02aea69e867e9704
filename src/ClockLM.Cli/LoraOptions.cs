using System.CommandLine;
using System.Globalization;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>
/// llama.cpp's LoRA options, shared by run, chat and serve: <c>--lora FILE</c> (scale 1) and
/// <c>--lora-scaled FILE SCALE</c>, both repeatable; every adapter's low-rank update is added, scaled, to the products
/// it adapts.
/// </summary>
internal sealed class LoraOptions
{
    public Option<string[]> Adapters { get; } = new("--lora")
    {
        Description = "Apply a LoRA adapter (llama.cpp's GGUF) at scale 1; repeatable",
        HelpName = "FILE",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<string[]> ScaledAdapters { get; } = new("--lora-scaled")
    {
        Description = "Apply a LoRA adapter at SCALE; repeatable, all adapters are summed",
        HelpName = "FILE SCALE",
        Arity = new ArgumentArity(2, 2),
        AllowMultipleArgumentsPerToken = true,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Adapters);
        command.Options.Add(ScaledAdapters);
    }

    /// <summary>The (file, scale) pairs named on the command line, in order.</summary>
    public List<(string Path, float Scale)> Files(ParseResult result)
    {
        var files = new List<(string, float)>();
        foreach (string path in result.GetValue(Adapters) ?? []) files.Add((path, 1f));
        string[] scaled = result.GetValue(ScaledAdapters) ?? [];
        if (scaled.Length % 2 != 0)
            throw new UsageException($"--lora-scaled takes pairs FILE SCALE; got {scaled.Length} values ({string.Join(" ", scaled)})");
        for (int i = 0; i < scaled.Length; i += 2)
        {
            if (!float.TryParse(scaled[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out float scale) || !float.IsFinite(scale))
                throw new UsageException($"--lora-scaled {scaled[i]} {scaled[i + 1]}: the scale is not a number");
            files.Add((scaled[i], scale));
        }
        return files;
    }

    /// <summary>Reads the adapters the options name, checks them against <paramref name="model"/> and runs the model
    /// with them; does nothing when none is named.</summary>
    public void Apply(ParseResult result, Model model)
    {
        var adapters = Load(result);
        if (adapters.Count > 0) model.UseLora(adapters);
    }

    /// <summary>Reads the adapters the options name, in order, with their scales (none when none is named). Skipped
    /// tensors (llama.cpp skips them too) are reported on stderr.</summary>
    public List<ScaledLora> Load(ParseResult result)
    {
        var adapters = new List<ScaledLora>();
        foreach (var (path, scale) in Files(result))
        {
            var adapter = LoraAdapter.Load(path);
            if (adapter.SkippedTensors.Count > 0)
                Console.Error.WriteLine($"note: {path}: {adapter.SkippedTensors.Count} tensors skipped (only .lora_a/.lora_b pairs are applied, as in llama.cpp): {string.Join(", ", adapter.SkippedTensors.Take(3))}");
            adapters.Add(new ScaledLora(adapter, scale));
        }
        return adapters;
    }
}
