using ClockLM.Tensors;
using ClockLM.Tests.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>
/// The F16 and BF16 tiles take rows in pairs and vectors in threes over blocks of 512 columns, keeping their
/// accumulators in memory between blocks: rows long enough for several blocks, a partial block, 8-value steps and a
/// scalar tail, with row and vector counts that leave single rows and vectors over, must still give every vector
/// exactly what MatVec gives it.
/// </summary>
public class FloatTilesTests
{
    private static unsafe void AssertEqualsMatVec(GgmlType type, int rows, int cols, int count, WorkerPool? pool)
    {
        var w = Quantize.Matrix(type, TestVectors.Gaussian(rows * cols, rows + cols, scale: 0.05f), rows, cols);
        var x = TestVectors.Gaussian(count * cols, count);
        x[(count - 1) * cols + 700 % cols] = 40f; // an outlier in the last vector
        var y = new float[count * rows];
        var expected = new float[rows];
        fixed (byte* p = w)
        {
            var view = new TensorView(type, rows, cols, p);
            if (pool is null) MatMul.Multiply(view, x, y, count);
            else MatMul.Multiply(view, x, y, count, pool);
            for (int t = 0; t < count; t++)
            {
                MatVec.Multiply(view, x.AsSpan(t * cols, cols), expected);
                for (int r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                        $"{type} {rows}x{cols} x{count}: vector {t} row {r}: {y[t * rows + r]} vs matvec {expected[r]}");
            }
        }
    }

    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void SeveralColumnBlocks_EqualMatVecBitForBit(GgmlType type)
    {
        // 1195 columns: blocks [0, 512), [512, 1024), [1024, 1184), 8-value steps to 1192, three scalar values;
        // 1536: three whole blocks; 19 rows: two blocks of eight and three rows (one pair, one single).
        foreach (int cols in new[] { 1195, 1536, 40 })
            foreach (int count in new[] { 2, 3, 7 })
                AssertEqualsMatVec(type, 19, cols, count, pool: null);
    }

    [Fact]
    public void RowsSplitAcrossThreads_EqualMatVecBitForBit()
    {
        using var pool = new WorkerPool(2);
        AssertEqualsMatVec(GgmlType.F16, 157, 1195, 8, pool);
    }
}
