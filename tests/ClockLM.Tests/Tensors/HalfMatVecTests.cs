using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>
/// Decoding's F16 and BF16 row loops (HalfMatVec), 256-bit and with pairs of accumulators in 512-bit registers, must
/// give every row the bits of the per-row dot product they replace (<see cref="FloatDots.Half16x256"/>), over rows
/// shorter than one 32-value step, with steps of eight and scalar tails, one row and odd row counts, split across
/// threads, and (F16) x too large to be scaled by 2^112.
/// </summary>
public class HalfMatVecTests
{
    private static readonly int[] Widths = [1, 7, 8, 31, 32, 33, 47, 1195, 2048];

    /// <summary>Random finite halves (every exponent from subnormal to the largest finite, both signs), or bfloat16
    /// values with exponents 2^-27..2^23 (no overflow in the sums).</summary>
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

    private static unsafe float RowDot(GgmlType type, ushort[] values, int row, int cols, float[] x)
    {
        fixed (ushort* p = values)
        fixed (float* px = x)
            return FloatDots.Half16x256(p + (long)row * cols, px, cols, bf16: type == GgmlType.BF16);
    }

    /// <summary>Three products of one view (an F16 matrix's first one watches for infinities, the later ones run the
    /// loop under test); every row of each must equal the row dot bit for bit.</summary>
    private static unsafe void AssertRowsEqualRowDots(GgmlType type, int rows, int cols, float[] x, int width, WorkerPool? pool = null)
    {
        var values = Values(type, rows * cols, seed: rows * 31 + cols);
        var kernels = new KernelOptions { Path = KernelPath.Vector256, PackedWidth = width };
        fixed (ushort* p = values)
        {
            var view = new TensorView(type, rows, cols, (byte*)p);
            for (int product = 0; product < 3; product++)
            {
                var y = new float[rows];
                MatVec.Multiply(view, x, y, pool, kernels);
                if (type == GgmlType.F16) Assert.True(view.Halves!.AllFinite);
                for (int r = 0; r < rows; r++)
                {
                    float expected = RowDot(type, values, r, cols, x);
                    Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(y[r]),
                        $"{type} {rows}x{cols} on {kernels}, product {product}, row {r}: {y[r]} vs row dot {expected}");
                }
            }
        }
    }

    private static void OddShapes(GgmlType type, int width)
    {
        foreach (int cols in Widths)
            foreach (int rows in new[] { 1, 3, 9 })
                AssertRowsEqualRowDots(type, rows, cols, TestVectors.Gaussian(cols, cols + rows), width);
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Loop256_OddShapes_EqualTheRowDotBitForBit(GgmlType type) => OddShapes(type, 256);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Loop512_OddShapes_EqualTheRowDotBitForBit(GgmlType type) => OddShapes(type, 512);

    /// <summary>x with a value of 2^16 or more cannot be scaled by 2^112: the F16 loops scale the widened halves instead,
    /// with the same bits.</summary>
    private static void TooLargeToScale(int width)
    {
        foreach (int cols in new[] { 33, 1195 })
        {
            var x = TestVectors.Gaussian(cols, cols);
            x[cols / 2] = 70000f;
            AssertRowsEqualRowDots(GgmlType.F16, 5, cols, x, width);
        }
    }

    [FactNeeds(Cpu.Avx2)]
    public void F16Loop256_ActivationsTooLargeToScale_EqualTheRowDotBitForBit() => TooLargeToScale(256);

    [FactNeeds(Cpu.Avx512BW)]
    public void F16Loop512_ActivationsTooLargeToScale_EqualTheRowDotBitForBit() => TooLargeToScale(512);

    /// <summary>A matrix of 67 rows of 2048 values (268 KB) is split across the pool's threads in uneven chunks.</summary>
    private static void SplitAcrossThreads(GgmlType type, int width)
    {
        using var pool = new WorkerPool(2);
        AssertRowsEqualRowDots(type, 67, 2048, TestVectors.Gaussian(2048, 3), width, pool);
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Loop256_RowsSplitAcrossThreads_EqualTheRowDotBitForBit(GgmlType type) => SplitAcrossThreads(type, 256);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Loop512_RowsSplitAcrossThreads_EqualTheRowDotBitForBit(GgmlType type) => SplitAcrossThreads(type, 512);
}
