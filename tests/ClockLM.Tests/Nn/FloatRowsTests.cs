using ClockLM.Nn;

namespace ClockLM.Tests.Nn;

/// <summary>The eight-lane row kernels of the float fast path against their scalar twins (bit for bit) and against
/// their definitions in double.</summary>
public class FloatRowsTests
{
    public static TheoryData<int> Lengths => [1, 7, 8, 9, 16, 23, 64, 1001];

    private static float[] Values(int length, int seed, double spread)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = (float)((random.NextDouble() * 2 - 1) * spread);
        // Values far out of e^x's float range take its clamped branches.
        if (length > 5) { values[2] = 120f; values[4] = -130f; }
        return values;
    }

    [FmaTheory]
    [MemberData(nameof(Lengths))]
    public void VectorKernelsEqualTheirScalarTwins(int length)
    {
        var g = Values(length, 1, 12);
        var u = Values(length, 2, 3);
        var dy = Values(length, 3, 1);

        var y = new float[length];
        var yScalar = new float[length];
        FloatRows.SwiGlu(g, u, y);
        FloatRows.SwiGluScalar(g, u, yScalar);
        Assert.Equal(yScalar, y);

        var dg = Values(length, 4, 1);
        var du = Values(length, 5, 1);
        var dgScalar = (float[])dg.Clone();
        var duScalar = (float[])du.Clone();
        FloatRows.SwiGluBackward(g, u, dy, dg, du);
        FloatRows.SwiGluBackwardScalar(g, u, dy, dgScalar, duScalar);
        Assert.Equal(dgScalar, dg);
        Assert.Equal(duScalar, du);

        foreach (float scale in new[] { 1f, 0.125f })
        {
            float l = FloatRows.LogSumExp(g, scale);
            Assert.Equal(BitConverter.SingleToInt32Bits(FloatRows.LogSumExpScalar(g, scale)), BitConverter.SingleToInt32Bits(l));
            var p = new float[length];
            var pScalar = new float[length];
            FloatRows.ExpShifted(g, scale, l, p);
            FloatRows.ExpShiftedScalar(g, scale, l, pScalar);
            Assert.Equal(pScalar, p);
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void KernelsComputeTheirDefinitions(int length)
    {
        var g = Values(length, 6, 12);
        var u = Values(length, 7, 3);
        var y = new float[length];
        FloatRows.SwiGlu(g, u, y);
        for (int i = 0; i < length; i++)
        {
            double expected = g[i] / (1 + Math.Exp(-g[i])) * u[i];
            Assert.True(Math.Abs(y[i] - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"silu({g[i]})·{u[i]} = {y[i]}, expected {expected}");
        }

        // ln Σ e^(x/8), and the probabilities it normalises summing to 1.
        double max = g.Max(v => v / 8.0), sum = g.Sum(v => Math.Exp(v / 8.0 - max));
        float l = FloatRows.LogSumExp(g, 0.125f);
        Assert.Equal(max + Math.Log(sum), l, 4);
        var p = new float[length];
        FloatRows.ExpShifted(g, 0.125f, l, p);
        Assert.Equal(1.0, p.Sum(v => (double)v), 5);
    }
}
