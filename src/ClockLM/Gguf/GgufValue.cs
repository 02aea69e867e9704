namespace ClockLM.Gguf;

/// <summary>One metadata value: a scalar, a string, or an array (of scalars, strings or further arrays).</summary>
/// <remarks>Arrays are held as typed .NET arrays: <c>float[]</c> for Float32, <c>string[]</c> for String,
/// <c>GgufValue[]</c> for arrays of arrays, and so on.</remarks>
public sealed class GgufValue
{
    private GgufValue(GgufValueType type, GgufValueType elementType, object value)
    {
        Type = type;
        ElementType = elementType;
        Value = value;
    }

    /// <summary>The value's type.</summary>
    public GgufValueType Type { get; }

    /// <summary>For arrays, the type of the elements; otherwise equal to <see cref="Type"/>.</summary>
    public GgufValueType ElementType { get; }

    /// <summary>The boxed value (a typed array for arrays).</summary>
    public object Value { get; }

    /// <summary>Number of elements for an array, 1 otherwise.</summary>
    public int Count => Value is Array a ? a.Length : 1;

    public static GgufValue From(byte v) => new(GgufValueType.UInt8, GgufValueType.UInt8, v);
    public static GgufValue From(sbyte v) => new(GgufValueType.Int8, GgufValueType.Int8, v);
    public static GgufValue From(ushort v) => new(GgufValueType.UInt16, GgufValueType.UInt16, v);
    public static GgufValue From(short v) => new(GgufValueType.Int16, GgufValueType.Int16, v);
    public static GgufValue From(uint v) => new(GgufValueType.UInt32, GgufValueType.UInt32, v);
    public static GgufValue From(int v) => new(GgufValueType.Int32, GgufValueType.Int32, v);
    public static GgufValue From(float v) => new(GgufValueType.Float32, GgufValueType.Float32, v);
    public static GgufValue From(bool v) => new(GgufValueType.Bool, GgufValueType.Bool, v);
    public static GgufValue From(string v) => new(GgufValueType.String, GgufValueType.String, v);
    public static GgufValue From(ulong v) => new(GgufValueType.UInt64, GgufValueType.UInt64, v);
    public static GgufValue From(long v) => new(GgufValueType.Int64, GgufValueType.Int64, v);
    public static GgufValue From(double v) => new(GgufValueType.Float64, GgufValueType.Float64, v);

    /// <summary>An array value; <paramref name="elements"/> must be the typed array matching <paramref name="elementType"/>.</summary>
    public static GgufValue Array(GgufValueType elementType, Array elements)
    {
        Type expected = ClrArrayType(elementType);
        if (elements.GetType() != expected)
            throw new ArgumentException($"an array of {elementType} must be held as {expected.Name}, not {elements.GetType().Name}");
        return new(GgufValueType.Array, elementType, elements);
    }

    public static GgufValue From(string[] v) => Array(GgufValueType.String, v);
    public static GgufValue From(float[] v) => Array(GgufValueType.Float32, v);
    public static GgufValue From(int[] v) => Array(GgufValueType.Int32, v);
    public static GgufValue From(uint[] v) => Array(GgufValueType.UInt32, v);

    internal static Type ClrArrayType(GgufValueType elementType) => elementType switch
    {
        GgufValueType.UInt8 => typeof(byte[]),
        GgufValueType.Int8 => typeof(sbyte[]),
        GgufValueType.UInt16 => typeof(ushort[]),
        GgufValueType.Int16 => typeof(short[]),
        GgufValueType.UInt32 => typeof(uint[]),
        GgufValueType.Int32 => typeof(int[]),
        GgufValueType.Float32 => typeof(float[]),
        GgufValueType.Bool => typeof(bool[]),
        GgufValueType.String => typeof(string[]),
        GgufValueType.UInt64 => typeof(ulong[]),
        GgufValueType.Int64 => typeof(long[]),
        GgufValueType.Float64 => typeof(double[]),
        GgufValueType.Array => typeof(GgufValue[]),
        _ => throw new ArgumentOutOfRangeException(nameof(elementType), elementType, "not a GGUF value type"),
    };

    /// <summary>True for the integer types.</summary>
    public bool IsInteger => Type is GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.UInt16 or GgufValueType.Int16
        or GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.UInt64 or GgufValueType.Int64;

    /// <summary>Any integer value as a long (UInt64 above long.MaxValue is refused).</summary>
    public long AsInt64() => Value switch
    {
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        _ => throw new InvalidCastException($"{Describe()} is not an integer that fits 64 signed bits"),
    };

    /// <summary>Any numeric value as a double.</summary>
    public double AsDouble() => Value switch
    {
        float v => v,
        double v => v,
        _ when IsInteger => AsInt64(),
        _ => throw new InvalidCastException($"{Describe()} is not a number"),
    };

    public string AsString() => Value as string ?? throw new InvalidCastException($"{Describe()} is not a string");

    public bool AsBool() => Value is bool b ? b : throw new InvalidCastException($"{Describe()} is not a bool");

    /// <summary>The array's elements as <typeparamref name="T"/>[] (exact element type required).</summary>
    public T[] AsArray<T>() => Value as T[] ?? throw new InvalidCastException($"{Describe()} is not an array of {typeof(T).Name}");

    /// <summary>A short description such as <c>Array[String; 32000]</c>, for messages.</summary>
    public string Describe() => Type == GgufValueType.Array ? $"Array[{ElementType}; {Count}]" : Type.ToString();

    /// <inheritdoc />
    public override string ToString() => Value switch
    {
        string s => s.Length > 80 ? s[..77] + "..." : s,
        Array a => $"[{ElementType} x {a.Length}]",
        _ => Convert.ToString(Value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}
