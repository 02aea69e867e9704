using ClockLM.Tensors;
using ClockLM.Tests.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>
/// F16 and BF16 rows times two to four vectors, or up to 16 for rows of at most 256 values (HalfRowVectors: a token and
/// its drafts verified together) widen each
/// row once for a group of vectors; every (row, vector) must still be what MatVec gives that vector, bit for bit: rows
/// shorter than one 32-value step, with steps of eight and scalar tails, groups filled by repeating the last vector,
/// the first product of an F16 matrix (which watches for infinities and NaNs) and the later ones, a row holding an
/// infinity or NaN, vectors too large to scale by 2^112, rows split across threads, on 256-bit and 512-bit registers.
/// </summary>
public class HalfRowVectorsTests
{
    /// <summary>Random finite halves of every exponent, both signs; or bfloat16 values with exponents 2^-27..2^23.</summary>
    private static ushort[] Values(GgmlType type, int count, int seed)
    {
        var rng = new Random(seed);
        var h = new ushort[count];
        for (int i = 0; i < count; i++)
            h[i] = type == GgmlType.F16
                ? (ushort)((rng.Next(2) << 15) | (rng.Next(31) << 10) | rng.Next(1024))
                : (ushort)((rng.Next(2) << 15) | (rng.Next(100, 151) << 7) | rng.Next(128));
        return h;
    }

    /// <summary>Two products of <paramref name="count"/> vectors on one view (an F16 matrix's first watches for
    /// infinities and NaNs, the second runs the loop that need not); each vector's results must be MatVec's.</summary>
    private static unsafe void AssertEqualsMatVec(GgmlType type, ushort[] values, int rows, int cols, float[] x, int count,
        int width, WorkerPool? pool = null, bool finite = true)
    {
        var kernels = new KernelOptions { Path = KernelPath.Vector256, PackedWidth = width };
        var y = new float[count * rows];
        var expected = new float[rows];
        fixed (ushort* p = values)
        {
            var view = new TensorView(type, rows, cols, (byte*)p);
            for (int product = 0; product < 2; product++)
            {
                MatMul.Multiply(view, x, y, count, pool, kernels);
                if (type == GgmlType.F16) Assert.Equal(finite, view.Halves!.AllFinite);
                for (int t = 0; t < count; t++)
                {
                    MatVec.Multiply(view, x.AsSpan(t * cols, cols), expected, null, kernels);
                    for (int r = 0; r < rows; r++)
                        Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                            $"{type} {rows}x{cols} x{count} on {kernels}, product {product}: vector {t} row {r}: {y[t * rows + r]} vs matvec {expected[r]}");
                }
            }
        }
    }

    private static void OddShapes(GgmlType type, int width)
    {
        // 1: no 32-value step, a scalar tail; 7, 8, 31, 33, 47: steps of eight and tails around one step; 1195 and
        // 2100: many steps. Two vectors: one pair (one group of two); three: a group of two or of four with a repeat;
        // four: two pairs on 256 bits, one group of four on 512.
        foreach (int cols in new[] { 1, 7, 8, 31, 33, 47, 1195, 2100 })
            foreach (int rows in new[] { 1, 9 })
                foreach (int count in new[] { 2, 3, 4 })
                    AssertEqualsMatVec(type, Values(type, rows * cols, rows * 131 + cols), rows, cols,
                        TestVectors.Gaussian(count * cols, count + cols), count, width);
        // Rows of at most 256 values take up to 16 vectors: several groups, the last one full or short.
        foreach (int cols in new[] { 47, 256 })
            foreach (int count in new[] { 5, 7, 16 })
                AssertEqualsMatVec(type, Values(type, 9 * cols, count * 7 + cols), 9, cols,
                    TestVectors.Gaussian(count * cols, count * cols), count, width);
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Registers256_OddShapes_EqualMatVecBitForBit(GgmlType type) => OddShapes(type, 256);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Registers512_OddShapes_EqualMatVecBitForBit(GgmlType type) => OddShapes(type, 512);

    /// <summary>An infinity in one row and a NaN in another: those rows take the general row dot for every vector, the
    /// others the fast loop, and the matrix is not taken for finite.</summary>
    [FactNeeds(Cpu.Avx2)]
    public void F16RowsWithInfinityOrNaN256_EqualMatVecBitForBit() => RowsWithInfinityOrNaN(256);

    [FactNeeds(Cpu.Avx512BW)]
    public void F16RowsWithInfinityOrNaN512_EqualMatVecBitForBit() => RowsWithInfinityOrNaN(512);

    private static void RowsWithInfinityOrNaN(int width)
    {
        const int rows = 5, cols = 47;
        var values = Values(GgmlType.F16, rows * cols, 7);
        values[1 * cols + 40] = 0x7C00; // +infinity, in the 8-value steps
        values[3 * cols + 3] = 0xFE01;  // a NaN, in the first 32-value step
        AssertEqualsMatVec(GgmlType.F16, values, rows, cols, TestVectors.Gaussian(3 * cols, 5), 3, width, finite: false);
    }

    /// <summary>A vector with a value of 2^16 or more cannot be scaled by 2^112: the widened halves are scaled instead,
    /// for every vector, with the same bits.</summary>
    [FactNeeds(Cpu.Avx2)]
    public void F16VectorsTooLargeToScale256_EqualMatVecBitForBit() => TooLargeToScale(256);

    [FactNeeds(Cpu.Avx512BW)]
    public void F16VectorsTooLargeToScale512_EqualMatVecBitForBit() => TooLargeToScale(512);

    private static void TooLargeToScale(int width)
    {
        foreach (int cols in new[] { 33, 1195 })
        {
            var x = TestVectors.Gaussian(4 * cols, cols);
            x[2 * cols + cols / 2] = 70000f;
            AssertEqualsMatVec(GgmlType.F16, Values(GgmlType.F16, 5 * cols, cols), 5, cols, x, 4, width);
        }
    }

    /// <summary>67 rows of 2048 values times four vectors (1 MB of work) are split across the pool's threads.</summary>
    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Registers256_RowsSplitAcrossThreads_EqualMatVecBitForBit(GgmlType type) => SplitAcrossThreads(type, 256);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Registers512_RowsSplitAcrossThreads_EqualMatVecBitForBit(GgmlType type) => SplitAcrossThreads(type, 512);

    private static void SplitAcrossThreads(GgmlType type, int width)
    {
        using var pool = new WorkerPool(2);
        AssertEqualsMatVec(type, Values(type, 67 * 2048, 3), 67, 2048, TestVectors.Gaussian(4 * 2048, 4), 4, width, pool);
    }
}
