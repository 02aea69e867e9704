using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// Which type each tensor of a model gets when it is written or re-quantized: a plain type for every matrix
/// (F16, Q8_0, …) or a llama.cpp mix such as Q4_K_M. Norms and other vectors always stay F32.
/// </summary>
public sealed class QuantizationScheme
{
    private QuantizationScheme(string name, GgmlType baseType, bool mediumMix, uint fileType)
    {
        Name = name;
        BaseType = baseType;
        MediumMix = mediumMix;
        FileType = fileType;
    }

    /// <summary>The scheme's name as written on the command line (e.g. <c>Q4_K_M</c>).</summary>
    public string Name { get; }

    /// <summary>The type most matrices get.</summary>
    public GgmlType BaseType { get; }

    /// <summary>True for the _M mixes, which give some tensors Q6_K.</summary>
    public bool MediumMix { get; }

    /// <summary>The value written as <c>general.file_type</c> (llama.cpp's <c>llama_ftype</c>).</summary>
    public uint FileType { get; }

    /// <summary>Every scheme name <see cref="Parse"/> accepts.</summary>
    public static readonly string[] Names = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M", "Q5_K_M"];

    /// <summary>The scheme name of a <c>general.file_type</c> value (e.g. 2 is <c>Q4_0</c>); null for a value no scheme writes.</summary>
    public static string? NameOfFileType(long fileType) =>
        Names.Select(Parse).FirstOrDefault(s => s.FileType == fileType)?.Name;

    /// <summary>Parses a scheme name (case-insensitive); an unknown name is an ArgumentException listing the known ones.</summary>
    public static QuantizationScheme Parse(string name) => name.ToUpperInvariant() switch
    {
        "F32" => new("F32", GgmlType.F32, false, 0),
        "F16" => new("F16", GgmlType.F16, false, 1),
        "BF16" => new("BF16", GgmlType.BF16, false, 32),
        "Q8_0" => new("Q8_0", GgmlType.Q8_0, false, 7),
        "Q4_0" => new("Q4_0", GgmlType.Q4_0, false, 2),
        "Q4_1" => new("Q4_1", GgmlType.Q4_1, false, 3),
        "Q5_0" => new("Q5_0", GgmlType.Q5_0, false, 8),
        "Q5_1" => new("Q5_1", GgmlType.Q5_1, false, 9),
        "Q4_K" or "Q4_K_S" => new("Q4_K", GgmlType.Q4_K, false, 14),
        "Q5_K" or "Q5_K_S" => new("Q5_K", GgmlType.Q5_K, false, 16),
        "Q6_K" => new("Q6_K", GgmlType.Q6_K, false, 18),
        "Q4_K_M" => new("Q4_K_M", GgmlType.Q4_K, true, 15),
        "Q5_K_M" => new("Q5_K_M", GgmlType.Q5_K, true, 17),
        _ => throw new ArgumentException($"unknown type '{name}'; expected one of {string.Join(", ", Names)}"),
    };

    /// <summary>
    /// The type of a matrix named <paramref name="tensorName"/> with rows of <paramref name="rowLength"/> values in a
    /// model of <paramref name="layers"/> layers. The _M mixes follow llama.cpp: output.weight, and attn_v / ffn_down in
    /// the first and last eighth of the layers and every third layer between, get Q6_K. A K-quant that does not fit
    /// the row length (not a multiple of 256) falls back to the nearest 32-block type, as llama.cpp does.
    /// </summary>
    public GgmlType TypeFor(string tensorName, int rowLength, int layers)
    {
        GgmlType type = BaseType;
        if (MediumMix)
        {
            if (tensorName == "output.weight")
                type = GgmlType.Q6_K;
            else if ((tensorName.EndsWith(".attn_v.weight", StringComparison.Ordinal) || tensorName.EndsWith(".ffn_down.weight", StringComparison.Ordinal))
                     && LayerOf(tensorName) is int layer && UseMoreBits(layer, layers))
                type = GgmlType.Q6_K;
        }
        if (rowLength % GgmlTypeInfo.BlockSize(type) != 0)
        {
            type = type switch
            {
                GgmlType.Q4_K => GgmlType.Q5_0,
                GgmlType.Q5_K => GgmlType.Q5_1,
                GgmlType.Q6_K => GgmlType.Q8_0,
                _ => type,
            };
            if (rowLength % GgmlTypeInfo.BlockSize(type) != 0) type = GgmlType.F16;
        }
        return type;
    }

    /// <summary>llama.cpp's use_more_bits: the first and last eighth of the layers, and every third one between.</summary>
    private static bool UseMoreBits(int layer, int layers) =>
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    private static int? LayerOf(string tensorName)
    {
        // "blk.{n}.…"
        if (!tensorName.StartsWith("blk.", StringComparison.Ordinal)) return null;
        int end = tensorName.IndexOf('.', 4);
        return end > 4 && int.TryParse(tensorName.AsSpan(4, end - 4), out int n) ? n : null;
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}
