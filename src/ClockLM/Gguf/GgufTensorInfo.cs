using ClockLM.Tensors;

namespace ClockLM.Gguf;

/// <summary>One entry of a GGUF file's tensor table.</summary>
/// <param name="Name">Tensor name, e.g. <c>blk.0.attn_q.weight</c>.</param>
/// <param name="Type">Element type.</param>
/// <param name="Dimensions">Extents, innermost first as in ggml: a (rows, cols) matrix is <c>[cols, rows]</c>.</param>
/// <param name="Offset">Byte offset of the data, relative to the start of the file's data section.</param>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Dimensions, long Offset)
{
    /// <summary>Total number of elements.</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Dimensions) n *= d;
            return n;
        }
    }

    /// <summary>Length of the innermost dimension (the row length of a matrix).</summary>
    public long RowLength => Dimensions[0];

    /// <summary>Number of rows: every dimension but the innermost, multiplied.</summary>
    public long RowCount => ElementCount / Dimensions[0];

    /// <summary>Bytes of data the tensor takes.</summary>
    public long ByteCount => ElementCount / GgmlTypeInfo.BlockSize(Type) * GgmlTypeInfo.BlockBytes(Type);

    /// <summary>Shape as written in ggml order, e.g. <c>[288, 32000]</c>.</summary>
    public string ShapeText => "[" + string.Join(", ", Dimensions) + "]";
}
