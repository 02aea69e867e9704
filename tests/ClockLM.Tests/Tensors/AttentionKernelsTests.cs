using System.Runtime.Intrinsics.X86;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>
/// The attention kernels against double-precision sums of the same products, and their vector paths against the
/// scalar references. A float sum of n products differs from the exact one by at most γ_n Σ|products| with
/// γ_n = n u / (1 - n u), u = 2^-24, whatever the order; the bounds below use 2 γ for scores (one more rounding for
/// the scale) and for weighted sums.
/// </summary>
public class AttentionKernelsTests
{
    private const double U = 1.0 / (1 << 24); // unit roundoff of float

    private static double Gamma(int n) => n * U / (1 - n * U);

    /// <summary>Head sizes of the tiny models (8, 16), one that is not a multiple of 8, and the usual 64 and 128.</summary>
    public static TheoryData<int> HeadSizes => new() { 8, 16, 12, 24, 64, 128 };

    /// <summary>Positions: fewer than, exactly, and more than a block of eight, and longer rows.</summary>
    private static readonly int[] Counts = [1, 3, 7, 8, 9, 16, 31, 100];

    /// <summary>A cache of <paramref name="rows"/> rows of three heads (the one read starts at offset headSize).</summary>
    private static (float[] Q, float[] Cache, int Stride) Problem(int headSize, int rows, int seed)
    {
        int stride = 3 * headSize;
        return (TestVectors.Gaussian(headSize, seed), TestVectors.Gaussian(rows * stride, seed + 1, scale: 2f), stride);
    }

    [Theory, MemberData(nameof(HeadSizes))]
    public void ScoresAreTheScaledDotProducts(int headSize)
    {
        const float scale = 0.35355339f;
        foreach (int n in Counts)
        {
            var (q, cache, stride) = Problem(headSize, n, seed: headSize * 100 + n);
            var keys = cache.AsSpan(headSize);
            foreach (var path in new[] { KernelPath.Scalar, KernelOptions.BestPath })
            {
                var scores = new float[n];
                AttentionKernels.Scores(q, keys, stride, scale, scores, path);
                for (int t = 0; t < n; t++)
                {
                    double exact = 0, magnitude = 0;
                    for (int i = 0; i < headSize; i++)
                    {
                        double p = (double)q[i] * keys[t * stride + i];
                        exact += p;
                        magnitude += Math.Abs(p);
                    }
                    double bound = 2 * Gamma(headSize + 1) * magnitude * scale + 1e-30;
                    Assert.True(Math.Abs(scores[t] - exact * scale) <= bound,
                        $"head {headSize}, n {n}, {path}, t {t}: {scores[t]} vs {exact * scale} (bound {bound})");
                }
            }
        }
    }

    [Fact]
    public void ScalarScoresSumLeftToRight()
    {
        var (q, cache, stride) = Problem(8, 5, seed: 3);
        var scores = new float[5];
        AttentionKernels.Scores(q, cache, stride, 0.5f, scores, KernelPath.Scalar);
        for (int t = 0; t < 5; t++)
        {
            float s = 0;
            for (int i = 0; i < 8; i++) s += q[i] * cache[t * stride + i];
            Assert.Equal(s * 0.5f, scores[t]);
        }
    }

    [Theory, MemberData(nameof(HeadSizes))]
    public void AKeysScoreDoesNotDependOnHowManyPositionsAreScored(int headSize)
    {
        // The decode loop scores positions 0..pos at every step: a key's score must not change as pos grows.
        var (q, cache, stride) = Problem(headSize, 40, seed: headSize);
        var all = new float[40];
        AttentionKernels.Scores(q, cache, stride, 1f, all);
        foreach (int n in Counts.Where(c => c < 40))
        {
            var some = new float[n];
            AttentionKernels.Scores(q, cache, stride, 1f, some);
            Assert.Equal(all[..n], some);
        }
    }

    [Theory, MemberData(nameof(HeadSizes))]
    public void WeightedSumIsTheSumOfWeightedValues(int headSize)
    {
        foreach (int n in Counts)
        {
            var (_, cache, stride) = Problem(headSize, n, seed: headSize * 7 + n);
            var weights = TestVectors.Gaussian(n, seed: n);
            var values = cache.AsSpan(2 * headSize); // the last head of each row: the span ends exactly at the last value
            foreach (var path in new[] { KernelPath.Scalar, KernelOptions.BestPath })
            {
                var output = Enumerable.Repeat(float.NaN, headSize).ToArray(); // overwritten, not accumulated into
                AttentionKernels.WeightedSum(weights, values, stride, output, path);
                for (int i = 0; i < headSize; i++)
                {
                    double exact = 0, magnitude = 0;
                    for (int t = 0; t < n; t++)
                    {
                        double p = (double)weights[t] * values[t * stride + i];
                        exact += p;
                        magnitude += Math.Abs(p);
                    }
                    double bound = 2 * Gamma(n) * magnitude + 1e-30;
                    Assert.True(Math.Abs(output[i] - exact) <= bound,
                        $"head {headSize}, n {n}, {path}, i {i}: {output[i]} vs {exact} (bound {bound})");
                }
            }
        }
    }

    [Fact]
    public void SoftmaxMatchesTheDoublePrecisionSoftmax()
    {
        foreach (int n in new[] { 1, 5, 8, 13, 64, 100, 512 })
        {
            var x = TestVectors.Gaussian(n, seed: n, scale: 4f);
            if (n > 1) x[0] = float.NegativeInfinity; // masked position (sliding window)
            if (n > 3) x[3] = 30f;          // a dominant score
            double max = x.Max(), sum = x.Sum(v => Math.Exp(v - max));
            foreach (var path in new[] { KernelPath.Scalar, KernelOptions.BestPath })
            {
                var p = (float[])x.Clone();
                AttentionKernels.Softmax(p, path);
                if (n > 1) Assert.Equal(0f, p[0]);
                for (int i = n > 1 ? 1 : 0; i < n; i++)
                {
                    // Rounding of x - max (half an ulp of it, which e^ turns into a relative error), 2 ulp of the
                    // exponential, the sum's order, the reciprocal and the multiplication.
                    double exact = Math.Exp(x[i] - max) / sum;
                    double relative = U * Math.Abs(x[i] - max) + 8 * U + Gamma(n);
                    Assert.True(Math.Abs(p[i] - exact) <= relative * exact + 1e-38, $"n {n}, {path}, i {i}: {p[i]} vs {exact}");
                }
            }
        }
    }

    [FactNeeds(Cpu.Avx2)]
    public void VectorSoftmaxDiffersFromTheScalarOneOnlyInTheSum()
    {
        var x = TestVectors.Gaussian(77, seed: 5, scale: 3f);
        float[] scalar = (float[])x.Clone(), vector = (float[])x.Clone();
        AttentionKernels.Softmax(scalar, KernelPath.Scalar);
        AttentionKernels.Softmax(vector, KernelPath.Vector256);
        // The exponentials are the same bits; the sums differ in order, by at most 2 γ_77 of a sum of positive terms.
        double ratio = vector[0] / (double)scalar[0];
        Assert.True(Math.Abs(ratio - 1) <= 2 * Gamma(77) + 2e-7, $"ratio {ratio}");
        for (int i = 0; i < x.Length; i++)
            Assert.True(Math.Abs(vector[i] / (double)scalar[i] - ratio) <= 3e-7, $"i {i}: {vector[i]} vs {scalar[i]}");
    }

    [Fact]
    public void RowsThatDoNotFitAreRejected()
    {
        var q = new float[8];
        var keys = new float[2 * 24 + 7]; // the third row needs 8 values from 48
        var e = Assert.Throws<ArgumentException>(() => AttentionKernels.Scores(q, keys, 24, 1f, new float[3]));
        Assert.Contains("keys", e.Message);
        Assert.Throws<ArgumentException>(() => AttentionKernels.WeightedSum(new float[3], keys, 24, new float[8]));
        Assert.Throws<ArgumentException>(() => AttentionKernels.Scores(q, keys, 4, 1f, new float[2])); // stride smaller than a head
    }
}
