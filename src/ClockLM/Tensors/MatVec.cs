using System.Numerics;
using System.Runtime.InteropServices;

namespace ClockLM.Tensors;

/// <summary>Matrix-vector products: <c>y[r] = dot(W[r, :], x)</c> for every row r of a weight matrix.</summary>
public static class MatVec
{
    /// <summary>y = W x, with W (rows x cols) in any supported type, x of length cols, y of length rows.</summary>
    public static void Multiply(in TensorView w, ReadOnlySpan<float> x, Span<float> y)
    {
        if (x.Length < w.Cols || y.Length < w.Rows)
            throw new ArgumentException($"matvec shapes: W is {w.Rows}x{w.Cols}, x has {x.Length}, y has {y.Length}");
        if (w.Type == GgmlType.F32)
        {
            for (int r = 0; r < w.Rows; r++)
                y[r] = Dot(MemoryMarshal.Cast<byte, float>(w.Row(r)), x[..w.Cols]);
            return;
        }
        Span<float> row = w.Cols <= 16384 ? stackalloc float[w.Cols] : new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            w.DequantizeRow(r, row);
            y[r] = Dot(row, x[..w.Cols]);
        }
    }

    /// <summary>Dot product of two equal-length float spans.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int i = 0;
        var acc = Vector<float>.Zero;
        var va = MemoryMarshal.Cast<float, Vector<float>>(a);
        var vb = MemoryMarshal.Cast<float, Vector<float>>(b);
        for (; i < va.Length && i < vb.Length; i++) acc += va[i] * vb[i];
        float sum = Vector.Sum(acc);
        for (int j = i * Vector<float>.Count; j < a.Length; j++) sum += a[j] * b[j];
        return sum;
    }
}
