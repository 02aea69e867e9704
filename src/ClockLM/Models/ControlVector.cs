using ClockLM.Gguf;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// A control vector: one direction (dim floats) per layer, added to the residual stream after that layer's
/// write-back (see <see cref="ResidualSteering"/>). Stored as llama.cpp stores it: a GGUF file with
/// <c>general.architecture = controlvector</c>, <c>controlvector.model_hint</c> (the architecture it was made for),
/// <c>controlvector.layer_count</c>, and one F32 vector per layer named <c>direction.{layer}</c>.
/// </summary>
/// <remarks>
/// The layer index of <c>direction.N</c> is llama.cpp's: N is the 0-based layer whose output it is added to, and N
/// starts at 1 (llama.cpp's loader rejects <c>direction.0</c>, and its applier never steers layer 0). So a file this
/// class writes loads in llama.cpp (<c>--control-vector</c>) and steers the same layers there, and the files
/// llama.cpp's <c>cvector-generator</c> and repeng write load here.
/// </remarks>
public sealed class ControlVector
{
    /// <summary>The GGUF architecture name of control-vector files.</summary>
    public const string Architecture = "controlvector";

    /// <summary>Creates a control vector from directions by layer (each dim floats, layers 1 and up).</summary>
    /// <exception cref="ArgumentException">No direction, a layer below 1, or directions of different widths.</exception>
    public ControlVector(IReadOnlyDictionary<int, float[]> directions, string? modelHint = null)
    {
        ArgumentNullException.ThrowIfNull(directions);
        if (directions.Count == 0) throw new ArgumentException("a control vector needs at least one direction", nameof(directions));
        int dim = directions.First().Value.Length;
        foreach (var (layer, direction) in directions)
        {
            if (layer < 1) throw new ArgumentException($"direction of layer {layer}: control vectors steer layers 1 and up (llama.cpp never steers layer 0)", nameof(directions));
            if (direction.Length != dim || dim == 0)
                throw new ArgumentException($"direction of layer {layer} has {direction.Length} values; every direction needs the same positive width ({dim})", nameof(directions));
        }
        Directions = directions.OrderBy(d => d.Key).ToDictionary(d => d.Key, d => (float[])d.Value.Clone());
        Dim = dim;
        ModelHint = modelHint;
    }

    /// <summary>The direction of each layer it steers, dim floats each, by llama.cpp's layer index (1 and up).</summary>
    public IReadOnlyDictionary<int, float[]> Directions { get; }

    /// <summary>Width of every direction: the residual width of the models it steers.</summary>
    public int Dim { get; }

    /// <summary>The architecture the vector was made for (<c>controlvector.model_hint</c>), when the file says.</summary>
    public string? ModelHint { get; }

    /// <summary>The highest layer with a direction.</summary>
    public int LastLayer => Directions.Keys.Max();

    /// <summary>
    /// Reads a control-vector GGUF file, checking what llama.cpp's loader checks: every tensor is named
    /// <c>direction.N</c> with N ≥ 1, is one-dimensional F32, and all have the same length. Several tensors of one
    /// layer are summed, as llama.cpp does.
    /// </summary>
    /// <exception cref="GgufFormatException">The file is not a GGUF file or breaks one of those rules; the message says which tensor and why.</exception>
    public static ControlVector Load(string path)
    {
        using var file = GgufFile.Open(path);
        if (file.Tensors.Count == 0) throw new GgufFormatException(path, "the control vector has no direction.N tensors");
        var directions = new Dictionary<int, float[]>();
        int dim = -1;
        foreach (var tensor in file.Tensors)
        {
            string name = tensor.Name;
            if (!name.StartsWith("direction.", StringComparison.Ordinal) || !int.TryParse(name.AsSpan("direction.".Length), out int layer) || layer < 0)
                throw new GgufFormatException(path, $"tensor '{name}' is not a control-vector direction; expected direction.N with N the layer (1 and up)");
            if (layer == 0)
                throw new GgufFormatException(path, "tensor 'direction.0': layer 0 is never steered (llama.cpp's loader rejects it); directions start at layer 1");
            if (tensor.Type != GgmlType.F32 || tensor.Dimensions.Length != 1)
                throw new GgufFormatException(path, $"tensor '{name}' is {tensor.Type} of shape {tensor.ShapeText}; a direction is one-dimensional F32");
            if (dim == -1) dim = checked((int)tensor.ElementCount);
            else if (tensor.ElementCount != dim)
                throw new GgufFormatException(path, $"tensor '{name}' has {tensor.ElementCount} values but the directions before it have {dim}");
            if (dim == 0) throw new GgufFormatException(path, $"tensor '{name}' is empty");
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.GetTensorData(tensor)).ToArray();
            if (directions.TryGetValue(layer, out var sum)) Ops.Add(sum, values);
            else directions[layer] = values;
        }
        return new ControlVector(directions, file.GetStringOrNull($"{Architecture}.model_hint"));
    }

    /// <summary>Writes the vector as llama.cpp's <c>cvector-generator</c> does: the architecture, the model hint, the
    /// layer count and one <c>direction.N</c> per layer. The file appears whole or not at all.</summary>
    public void Save(string path)
    {
        var writer = new GgufWriter();
        writer.Set("general.architecture", Architecture);
        writer.Set($"{Architecture}.model_hint", ModelHint ?? "llama");
        writer.Set($"{Architecture}.layer_count", Directions.Count);
        foreach (var (layer, direction) in Directions)
            writer.AddTensor($"direction.{layer}", [direction.Length], direction);
        string temporary = path + ".partial";
        try
        {
            writer.Write(temporary);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}
