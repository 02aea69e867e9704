using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// How a sequence's KV cache stores its keys and values: as F32, F16 (the default, as in llama.cpp) or Q8_0 (blocks of
/// 32 values sharing an f16 scale, 34 bytes). Passed to <see cref="Model.CreateTransformer"/>,
/// <see cref="BatchDecoder.CreateSequence"/> or the <see cref="Transformer"/> constructor; the cache carries it.
/// Attention reads the stored type directly: a compact cache is never expanded into a float copy.
/// </summary>
public sealed record KvCacheOptions
{
    /// <summary>F16 keys and values.</summary>
    public static KvCacheOptions Default { get; } = new();

    /// <summary>F32 keys and values: attention over exactly the keys and values the layer computed.</summary>
    public static KvCacheOptions F32 { get; } = new() { KeyType = GgmlType.F32, ValueType = GgmlType.F32 };

    /// <summary>The type keys are stored in: F32, F16 or Q8_0. Default F16.</summary>
    public GgmlType KeyType
    {
        get;
        init => field = Check(value, nameof(KeyType));
    } = GgmlType.F16;

    /// <summary>The type values are stored in: F32, F16 or Q8_0. Default F16.</summary>
    public GgmlType ValueType
    {
        get;
        init => field = Check(value, nameof(ValueType));
    } = GgmlType.F16;

    /// <summary>Both keys and values as <paramref name="type"/>.</summary>
    public static KvCacheOptions Both(GgmlType type) => new() { KeyType = type, ValueType = type };

    /// <summary>True for the types a KV cache can hold.</summary>
    public static bool IsSupported(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0;

    /// <summary>The type named as llama.cpp's <c>--cache-type-k</c> names it: f32, f16 or q8_0 (any case).</summary>
    /// <exception cref="ArgumentException">Another name.</exception>
    public static GgmlType ParseType(string name) => name.ToLowerInvariant() switch
    {
        "f32" => GgmlType.F32,
        "f16" => GgmlType.F16,
        "q8_0" => GgmlType.Q8_0,
        _ => throw new ArgumentException($"KV cache type '{name}' is not supported; expected f32, f16 or q8_0", nameof(name)),
    };

    /// <summary>The llama.cpp name of <paramref name="type"/>: f32, f16 or q8_0.</summary>
    public static string Name(GgmlType type) => Check(type, nameof(type)).ToString().ToLowerInvariant();

    /// <summary>"k f16, v q8_0".</summary>
    public override string ToString() => $"k {Name(KeyType)}, v {Name(ValueType)}";

    private static GgmlType Check(GgmlType type, string name) => IsSupported(type) ? type
        : throw new ArgumentOutOfRangeException(name, type, "a KV cache holds F32, F16 or Q8_0");
}
