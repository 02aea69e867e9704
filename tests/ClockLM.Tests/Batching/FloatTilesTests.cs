using ClockLM.Tensors;
using ClockLM.Tests.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>
/// The F16 and BF16 tiles take rows in pairs and vectors in threes over blocks of 512 columns, keeping their
/// accumulators in memory between blocks: rows long enough for several blocks, a partial block, 8-value steps and a
/// scalar tail, with row and vector counts that leave single rows and vectors over, must still give every vector
/// exactly what MatVec gives it. Where AVX-512 runs, the eight-row tiles (512-bit accumulators, 1024 columns a block)
/// are held to the same bits, over the same shapes and a single row.
/// </summary>
public class FloatTilesTests
{
    private static unsafe void AssertEqualsMatVec(GgmlType type, int rows, int cols, int count, WorkerPool? pool, KernelOptions? kernels = null)
    {
        var w = Quantize.Matrix(type, TestVectors.Gaussian(rows * cols, rows + cols, scale: 0.05f), rows, cols);
        var x = TestVectors.Gaussian(count * cols, count);
        x[(count - 1) * cols + 700 % cols] = 40f; // an outlier in the last vector
        var y = new float[count * rows];
        var expected = new float[rows];
        fixed (byte* p = w)
        {
            var view = new TensorView(type, rows, cols, p);
            MatMul.Multiply(view, x, y, count, pool, kernels ?? KernelOptions.Best);
            for (int t = 0; t < count; t++)
            {
                MatVec.Multiply(view, x.AsSpan(t * cols, cols), expected);
                for (int r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                        $"{type} {rows}x{cols} x{count} on {kernels ?? KernelOptions.Best}: vector {t} row {r}: {y[t * rows + r]} vs matvec {expected[r]}");
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
            foreach (int count in new[] { 2, 3, 5, 7, 17 }) // HalfRowVectors takes up to four (16 for short rows)
                AssertEqualsMatVec(type, 19, cols, count, pool: null);
    }

    [Fact]
    public void RowsSplitAcrossThreads_EqualMatVecBitForBit()
    {
        using var pool = new WorkerPool(2);
        AssertEqualsMatVec(GgmlType.F16, 157, 1195, 8, pool);
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16, 256)]
    [InlineData(GgmlType.BF16, 256)]
    public void OddWidthsAndOneRow_EqualMatVecBitForBit(GgmlType type, int width) => OddWidthsAndOneRow(type, width);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16, 512)]
    [InlineData(GgmlType.BF16, 512)]
    public void EightRowTiles_OddWidthsAndOneRow_EqualMatVecBitForBit(GgmlType type, int width) => OddWidthsAndOneRow(type, width);

    [FactNeeds(Cpu.Avx512BW)]
    public void EightRowTiles_RowsSplitAcrossThreads_EqualMatVecBitForBit()
    {
        using var pool = new WorkerPool(2);
        AssertEqualsMatVec(GgmlType.F16, 157, 2100, 8, pool, new KernelOptions { PackedWidth = 512 });
    }

    private static void OddWidthsAndOneRow(GgmlType type, int width)
    {
        var kernels = new KernelOptions { PackedWidth = width };
        // 7: no 32-value step; 47: one step, one 8-value step, seven scalars; 1195: one whole 1024-column block and a
        // partial one; 2100: two whole blocks, 8-value steps and a tail. 1 row: a block of one row, repeated to fill;
        // 9 rows: a full block and one row; 5 vectors: one full group and one with a repeat; 7: two full groups and one
        // of one; 17: five full groups and one with a repeat (HalfRowVectors takes up to four vectors, and up to 16 of
        // rows of 256 values or fewer).
        foreach (int cols in new[] { 7, 47, 1195, 2100 })
            foreach (int rows in new[] { 1, 9 })
                foreach (int count in new[] { 5, 7, 17 })
                    AssertEqualsMatVec(type, rows, cols, count, pool: null, kernels);
    }
}
