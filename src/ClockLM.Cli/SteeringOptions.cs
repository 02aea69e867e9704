using System.CommandLine;
using System.Globalization;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>
/// llama.cpp's control-vector options, shared by run, chat and serve: <c>--control-vector F</c> (scale 1),
/// <c>--control-vector-scaled F SCALE</c> (both repeatable; every vector is summed, scaled, layer by layer) and
/// <c>--control-vector-layer-range A B</c> (only layers A to B, inclusive, are steered).
/// </summary>
internal sealed class SteeringOptions
{
    public Option<string[]> Vectors { get; } = new("--control-vector")
    {
        Description = "Add a control vector (llama.cpp's GGUF) to the residual stream at scale 1; repeatable",
        HelpName = "FILE",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<string[]> ScaledVectors { get; } = new("--control-vector-scaled")
    {
        Description = "Add a control vector at SCALE; repeatable, all vectors are summed",
        HelpName = "FILE SCALE",
        Arity = new ArgumentArity(2, 2),
        AllowMultipleArgumentsPerToken = true,
    };

    public Option<int[]> LayerRange { get; } = new("--control-vector-layer-range")
    {
        Description = "Steer only layers A to B (inclusive; llama.cpp's layer numbers)",
        HelpName = "A B",
        Arity = new ArgumentArity(2, 2),
        AllowMultipleArgumentsPerToken = true,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Vectors);
        command.Options.Add(ScaledVectors);
        command.Options.Add(LayerRange);
    }

    /// <summary>The (file, scale) pairs named on the command line, in order.</summary>
    public List<(string Path, float Scale)> Files(ParseResult result)
    {
        var files = new List<(string, float)>();
        foreach (string path in result.GetValue(Vectors) ?? []) files.Add((path, 1f));
        string[] scaled = result.GetValue(ScaledVectors) ?? [];
        if (scaled.Length % 2 != 0)
            throw new UsageException($"--control-vector-scaled takes pairs FILE SCALE; got {scaled.Length} values ({string.Join(" ", scaled)})");
        for (int i = 0; i < scaled.Length; i += 2)
        {
            if (!float.TryParse(scaled[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out float scale) || !float.IsFinite(scale))
                throw new UsageException($"--control-vector-scaled {scaled[i]} {scaled[i + 1]}: the scale is not a number");
            files.Add((scaled[i], scale));
        }
        return files;
    }

    /// <summary>
    /// The terms the options name for <paramref name="model"/>: each file read and checked against the model (its
    /// width, its layers), scaled, limited to the layer range. Empty when no vector is named.
    /// </summary>
    public List<SteeringTerm> Terms(ParseResult result, Model model)
    {
        var files = Files(result);
        int[]? range = result.GetValue(LayerRange) is { Length: > 0 } given ? given : null;
        if (files.Count == 0)
        {
            if (range is not null) throw new UsageException("--control-vector-layer-range needs a --control-vector or --control-vector-scaled");
            return [];
        }
        int layers = model.Config.Layers, first = 0, last = layers - 1;
        if (range is not null)
        {
            (first, last) = (range[0], range[1]);
            if (first < 0 || last < first || last >= layers)
                throw new UsageException($"--control-vector-layer-range {first} {last}: expected 0 <= A <= B <= {layers - 1} (the model has {layers} layers)");
        }
        var terms = new List<SteeringTerm>();
        foreach (var (path, scale) in files)
        {
            var vector = Load(path, model);
            terms.Add(new SteeringTerm(vector.Directions, scale, first, last));
        }
        return terms;
    }

    /// <summary>The steering the options name, or null when they name no vector.</summary>
    public ResidualSteering? Build(ParseResult result, Model model)
    {
        var terms = Terms(result, model);
        return terms.Count == 0 ? null : ResidualSteering.Create(model.Config, terms);
    }

    /// <summary>
    /// Every <c>*.gguf</c> control vector in <paramref name="directory"/>, by file name without the extension (the name
    /// requests use in <c>clocklm.steer</c>), each checked against <paramref name="model"/>.
    /// </summary>
    public static Dictionary<string, ControlVector> LoadDirectory(string directory, Model model)
    {
        if (!Directory.Exists(directory)) throw new UsageException($"--steer-dir {directory}: no such directory");
        var vectors = new Dictionary<string, ControlVector>(StringComparer.Ordinal);
        foreach (string path in Directory.EnumerateFiles(directory, "*.gguf").Order(StringComparer.Ordinal))
            vectors[Path.GetFileNameWithoutExtension(path)] = Load(path, model);
        if (vectors.Count == 0) throw new UsageException($"--steer-dir {directory}: no .gguf control vectors in it");
        return vectors;
    }

    /// <summary>Reads a control vector and checks it fits <paramref name="model"/>; a model hint naming another
    /// architecture is reported on stderr (llama.cpp does not check it; a vector made for another model of the same
    /// width loads, but rarely steers anything meaningful).</summary>
    public static ControlVector Load(string path, Model model)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such control-vector file", path);
        var vector = ControlVector.Load(path);
        if (vector.Dim != model.Config.Dim)
            throw new UsageException($"{path}: the control vector has directions of {vector.Dim} values but the model's residual stream has {model.Config.Dim}");
        if (vector.LastLayer >= model.Config.Layers)
            throw new UsageException($"{path}: the control vector steers layer {vector.LastLayer} but the model has layers 0..{model.Config.Layers - 1}");
        string architecture = model.Gguf?.GetStringOrNull("general.architecture") ?? "llama";
        if (vector.ModelHint is { } hint && hint != architecture)
            Console.Error.WriteLine($"note: {path} was made for a '{hint}' model; this model is '{architecture}'");
        return vector;
    }
}
