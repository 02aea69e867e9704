using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>
/// The AVX2 F16 matrix-vector loop multiplies the unscaled widened halves by a copy of x scaled by 2^112 instead of
/// scaling every half; both products are exact, so each row must equal the per-row dot product bit for bit, whatever
/// the magnitudes (subnormal halves and activations, activations near 2^16 where the scaled copy would overflow).
/// </summary>
public class F16RowsTests
{
    private static unsafe float[] MatVecRows(ushort[] halves, int rows, int cols, float[] x)
    {
        var y = new float[rows];
        fixed (ushort* p = halves)
            MatVec.Multiply(new TensorView(GgmlType.F16, rows, cols, (byte*)p), x, y, null, new KernelOptions { Path = KernelPath.Vector256 });
        return y;
    }

    private static unsafe float RowDot(ushort[] halves, int row, int cols, float[] x)
    {
        fixed (ushort* p = halves)
        fixed (float* px = x)
            return FloatDots.Half16x256(p + (long)row * cols, px, cols, bf16: false);
    }

    /// <summary>Random finite halves: every exponent from subnormal (0) to the largest finite (30), both signs.</summary>
    private static ushort[] FiniteHalves(int count, int seed)
    {
        var rng = new Random(seed);
        var h = new ushort[count];
        for (int i = 0; i < count; i++)
            h[i] = (ushort)((rng.Next(2) << 15) | (rng.Next(31) << 10) | rng.Next(1024));
        return h;
    }

    private static void AssertRowsEqualRowDots(ushort[] halves, int rows, int cols, float[] x, string what)
    {
        var y = MatVecRows(halves, rows, cols, x);
        for (int r = 0; r < rows; r++)
        {
            float expected = RowDot(halves, r, cols, x);
            Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(y[r]),
                $"{what} row {r}: matvec {y[r]} vs row dot {expected}");
        }
    }

    [FactNeeds(Cpu.Avx2)]
    public void PrescaledActivations_GiveTheRowDotBitForBit()
    {
        const int rows = 9, cols = 1195; // 37 chunks of 32, one of 8, a scalar tail of 3
        var halves = FiniteHalves(rows * cols, seed: 5);
        var rng = new Random(6);
        var x = new float[cols];
        for (int i = 0; i < cols; i++)
        {
            // Activations spread over many binades, down to float subnormals and up to just below 2^16.
            double magnitude = i % 5 switch { 0 => 1e-40, 1 => 1e-20, 2 => 1, 3 => 300, _ => 65535.99 };
            x[i] = (float)((rng.NextDouble() * 2 - 1) * magnitude);
        }
        x[7] = 65535.99f;
        AssertRowsEqualRowDots(halves, rows, cols, x, "x below 2^16");
    }

    [FactNeeds(Cpu.Avx2)]
    public void ActivationsTooLargeToScale_FallBackAndStillAgree()
    {
        const int rows = 5, cols = 264;
        var halves = FiniteHalves(rows * cols, seed: 7);
        var x = TestVectors.Gaussian(cols, 8);
        // 2^16 times 2^112 overflows a float; 3e38 would too; an infinity gives inf or NaN either way.
        foreach (float big in new[] { 65536f, -3e38f, float.PositiveInfinity })
        {
            var xb = (float[])x.Clone();
            xb[100] = big;
            AssertRowsEqualRowDots(halves, rows, cols, xb, $"x[100] = {big}");
        }
        var y = MatVecRows(halves, rows, cols, x);
        // The scaled copy is per call: a product with large x must not leave a later one unscaled or wrong.
        for (int r = 0; r < rows; r++) Assert.Equal(RowDot(halves, r, cols, x), y[r]);
    }
}
