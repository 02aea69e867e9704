using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>The vectorised exponential against double-precision Math.Exp, and its vector path against its scalar twin.</summary>
public class ExponentialTests
{
    /// <summary>Arguments across the whole normal range, dense near 0 (softmax's usual inputs), plus the edges of the
    /// reduction interval and of the range.</summary>
    private static float[] Arguments()
    {
        var rng = new Random(17);
        var values = new List<float> { 0f, -0f, 1f, -1f, 0.34657359f, -0.34657359f, 0.3465736f, -87.3365f, -87.33654f, -86.99f, 88.72283f, 88.5f, 88.3762626f };
        for (int i = 0; i < 100_000; i++) values.Add((float)(rng.NextDouble() * 176.05 - 87.33));
        for (int i = 0; i < 50_000; i++) values.Add((float)(rng.NextDouble() * 40 - 30));
        for (int i = 0; i < 10_000; i++) values.Add((float)((rng.NextDouble() - 0.5) * 1e-3));
        for (int n = -126; n <= 127; n++) values.Add((float)(n * Math.Log(2)));
        return values.ToArray();
    }

    /// <summary>One unit in the last place of a normal float of magnitude <paramref name="value"/>.</summary>
    private static double Ulp(double value) => Math.Pow(2, Math.Floor(Math.Log2(Math.Abs(value))) - 23);

    [Fact]
    public void ScalarIsWithinTwoUlpOfTheExactValue()
    {
        double worst = 0;
        foreach (float x in Arguments())
        {
            double exact = Math.Exp(x);
            if (exact < 1.1754943508222875e-38 || exact > float.MaxValue) continue; // outside the normal range: flushed
            double error = Math.Abs(Exponential.Exp(x) - exact) / Ulp(exact);
            worst = Math.Max(worst, error);
            Assert.True(error <= 2, $"exp({x:R}) = {Exponential.Exp(x):R}, exact {exact:R}: {error:F2} ulp");
        }
        Assert.True(worst > 0, "every value exact: the comparison did not run");
    }

    [Fact]
    public void EdgesOfTheRange()
    {
        Assert.Equal(1f, Exponential.Exp(0f));
        Assert.Equal(0f, Exponential.Exp(float.NegativeInfinity));
        Assert.Equal(0f, Exponential.Exp(-100f));
        Assert.Equal(0f, Exponential.Exp(-87.34f)); // below ln(smallest normal float)
        Assert.Equal(float.PositiveInfinity, Exponential.Exp(float.PositiveInfinity));
        Assert.Equal(float.PositiveInfinity, Exponential.Exp(88.73f));
        Assert.True(float.IsNaN(Exponential.Exp(float.NaN)));
        // The largest argument gives a finite value close to float.MaxValue; the smallest, a normal one near 2^-126.
        Assert.InRange(Exponential.Exp(88.7228f), 3.4e38f, float.MaxValue);
        Assert.InRange(Exponential.Exp(-87.3365f), 1.1754e-38f, 1.1757e-38f);
    }

    [FactNeeds(Cpu.Avx2)]
    public void VectorEqualsScalarBitForBit()
    {
        var special = new[] { float.NegativeInfinity, float.PositiveInfinity, float.NaN, -1000f, 1000f, -87.34f, 88.73f, float.MinValue, float.MaxValue, 1e-40f };
        float[] x = [.. special, .. Arguments()];
        var y = new float[8];
        for (int i = 0; i + 8 <= x.Length; i += 8)
        {
            Exponential.Exp(Vector256.Create(x, i)).CopyTo(y);
            for (int j = 0; j < 8; j++)
            {
                float expected = Exponential.Exp(x[i + j]);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(y[j]) || float.IsNaN(expected) && float.IsNaN(y[j]),
                    $"exp({x[i + j]:R}): vector {y[j]:R}, scalar {expected:R}");
            }
        }
    }
}
