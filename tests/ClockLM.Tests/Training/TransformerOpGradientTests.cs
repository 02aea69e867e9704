using ClockLM.Nn;
using ClockLM.Tests.Nn;

namespace ClockLM.Tests.Training;

/// <summary>The transformer operations' gradients against central finite differences in float64.</summary>
public class TransformerOpGradientTests
{
    private const double Tolerance = 1e-6;

    [Theory]
    [InlineData("embedding")]
    [InlineData("linear")]
    [InlineData("rms-norm")]
    [InlineData("rope")]
    [InlineData("rope-halves")]
    [InlineData("attention-grouped-query")]
    [InlineData("attention-multi-head")]
    [InlineData("swiglu")]
    [InlineData("cross-entropy")]
    [InlineData("transformer-block")]
    public void GradientMatchesFiniteDifferences(string op)
    {
        var random = new Random(op.Length * 7919 + op[0]);
        Tensor<double> A(params int[] shape) => GradientCheck.Random(shape, random, -1, 1);

        Tensor<double>[] inputs;
        Func<Tensor<double>> f;
        switch (op)
        {
            case "embedding":
            {
                // Token 2 appears twice: its row's gradient is the sum of both uses.
                var table = A(5, 3);
                inputs = [table];
                f = () => Tensor<double>.Embedding(table, [2, 0, 2, 4]);
                break;
            }
            case "linear": { var x = A(4, 5); var w = A(3, 5); inputs = [x, w]; f = () => x.Linear(w); break; }
            case "rms-norm": { var x = A(3, 6); var w = A(6); inputs = [x, w]; f = () => x.RmsNorm(w, 1e-5); break; }
            // Two sequences of 3 positions, two heads of size 4.
            case "rope": { var x = A(6, 8); inputs = [x]; f = () => x.Rope(4, 3, 10000f); break; }
            case "rope-halves": { var x = A(6, 8); inputs = [x]; f = () => x.Rope(4, 3, 10000f, style: ClockLM.Models.RopeStyle.Halves); break; }
            case "attention-grouped-query":
            {
                // Batch 2, 4 positions, 4 query heads sharing 2 key/value heads of size 3.
                var q = A(8, 12); var k = A(8, 6); var v = A(8, 6);
                inputs = [q, k, v];
                f = () => Tensor<double>.CausalSelfAttention(q, k, v, 2, 4, 4, 2);
                break;
            }
            case "attention-multi-head":
            {
                var q = A(5, 6); var k = A(5, 6); var v = A(5, 6);
                inputs = [q, k, v];
                f = () => Tensor<double>.CausalSelfAttention(q, k, v, 1, 5, 2, 2);
                break;
            }
            case "swiglu": { var g = A(3, 5); var u = A(3, 5); inputs = [g, u]; f = () => g.SwiGlu(u); break; }
            case "cross-entropy":
            {
                var logits = A(4, 6);
                inputs = [logits];
                f = () => logits.CrossEntropy([5, 0, 3, 3]);
                break;
            }
            case "transformer-block":
            {
                // One Llama layer and the tied output head on 2 sequences of 3 tokens, through every operation at once.
                int[] ids = [1, 4, 2, 0, 3, 3];
                var emb = A(5, 8); var n1 = A(8); var wq = A(8, 8); var wk = A(4, 8); var wv = A(4, 8); var wo = A(8, 8);
                var n2 = A(8); var w1 = A(6, 8); var w2 = A(8, 6); var w3 = A(6, 8);
                inputs = [emb, n1, wq, wk, wv, wo, n2, w1, w2, w3];
                f = () =>
                {
                    var x = Tensor<double>.Embedding(emb, ids);
                    var h = x.RmsNorm(n1, 1e-5);
                    var a = Tensor<double>.CausalSelfAttention(h.Linear(wq).Rope(4, 3, 10000f), h.Linear(wk).Rope(4, 3, 10000f), h.Linear(wv), 2, 3, 2, 1);
                    x = x + a.Linear(wo);
                    h = x.RmsNorm(n2, 1e-5);
                    x = x + h.Linear(w1).SwiGlu(h.Linear(w3)).Linear(w2);
                    return x.Linear(emb).CrossEntropy([4, 2, 0, 3, 3, 1]);
                };
                break;
            }
            default: throw new ArgumentException(op);
        }
        Assert.True(GradientCheck.MaxRelativeError(f, inputs) < Tolerance, op);
    }

    [Fact]
    public void RmsNormMatchesItsDefinition()
    {
        var x = new Tensor<double>([1, 4], [1, -2, 3, 0.5]);
        var w = new Tensor<double>([4], [1, 2, 0.5, -1]);
        var y = x.RmsNorm(w, 1e-5);
        double rms = Math.Sqrt((1 + 4 + 9 + 0.25) / 4 + 1e-5);
        Assert.Equal(new[] { 1 / rms, -4 / rms, 1.5 / rms, -0.5 / rms }, y.Data, new DoubleTolerance(1e-12));
    }

    [Fact]
    public void RopeRotatesAdjacentPairsByPositionTimesFrequency()
    {
        // One head of size 4 over positions 0..2: pair i turns by t·10000^(−2i/4).
        var x = new Tensor<double>([3, 4], [1, 0, 0, 1, 1, 0, 0, 1, 2, 3, -1, 4]);
        var y = x.Rope(4, 3, 10000f);
        for (int t = 0; t < 3; t++)
            for (int i = 0; i < 2; i++)
            {
                double angle = t * (double)(1.0f / MathF.Pow(10000f, 2 * i / 4f));
                double a = x.Data[t * 4 + 2 * i], b = x.Data[t * 4 + 2 * i + 1];
                Assert.Equal(a * Math.Cos(angle) - b * Math.Sin(angle), y.Data[t * 4 + 2 * i], 6);
                Assert.Equal(a * Math.Sin(angle) + b * Math.Cos(angle), y.Data[t * 4 + 2 * i + 1], 6);
            }
    }

    [Fact]
    public void RopeOnHalvesRotatesAsTheInferenceDoes()
    {
        // Two heads of size 8 over positions 0..4, Qwen's pairs (i, i + 4): the same floats as the forward pass's rotation.
        var random = new Random(11);
        var x = GradientCheck.Random([5, 16], random).Data.Select(v => (float)v).ToArray();
        var y = new Tensor<float>([5, 16], (float[])x.Clone()).Rope(8, 5, 1000000f, style: ClockLM.Models.RopeStyle.Halves);
        var theta = Enumerable.Range(0, 4).Select(i => 1.0f / MathF.Pow(1000000f, 2 * i / 8f)).ToArray();
        var (cos, sin) = (new float[4], new float[4]);
        for (int t = 0; t < 5; t++)
        {
            ClockLM.Models.Ops.RopeAngles(t, theta, cos, sin);
            var row = x.AsSpan(t * 16, 16);
            ClockLM.Models.Ops.Rope(row, 8, ClockLM.Models.RopeStyle.Halves, cos, sin);
            Assert.Equal(row.ToArray(), y.Data.AsSpan(t * 16, 16).ToArray());
        }
    }

    [Fact]
    public void AttentionAtTheFirstPositionReturnsItsOwnValue()
    {
        // Causality: position 0 sees only itself, so its output is its value whatever the query and key;
        // position 1 of the second sequence mixes that sequence's values only.
        var random = new Random(3);
        var q = GradientCheck.Random([4, 4], random); var k = GradientCheck.Random([4, 2], random); var v = GradientCheck.Random([4, 2], random);
        var y = Tensor<double>.CausalSelfAttention(q, k, v, 2, 2, 2, 1);
        for (int b = 0; b < 2; b++)
            for (int h = 0; h < 2; h++)
                for (int d = 0; d < 2; d++)
                    Assert.Equal(v.Data[b * 2 * 2 + d], y.Data[b * 2 * 4 + h * 2 + d], 12);
        // Sequence 1, position 1, head 0: softmax over its own two keys.
        double s0 = (q.Data[3 * 4] * k.Data[2 * 2] + q.Data[3 * 4 + 1] * k.Data[2 * 2 + 1]) / Math.Sqrt(2);
        double s1 = (q.Data[3 * 4] * k.Data[3 * 2] + q.Data[3 * 4 + 1] * k.Data[3 * 2 + 1]) / Math.Sqrt(2);
        double p0 = Math.Exp(s0) / (Math.Exp(s0) + Math.Exp(s1));
        Assert.Equal(p0 * v.Data[2 * 2] + (1 - p0) * v.Data[3 * 2], y.Data[3 * 4], 12);
    }

    [Fact]
    public void CrossEntropyIsMeanNegativeLogProbability()
    {
        var logits = new Tensor<double>([2, 3], [1, 2, 3, 0, 0, 5]);
        double expected = (-Math.Log(Math.Exp(2) / (Math.Exp(1) + Math.Exp(2) + Math.Exp(3)))
            - Math.Log(1 / (2 + Math.Exp(5)))) / 2;
        Assert.Equal(expected, logits.CrossEntropy([1, 0]).Scalar, 12);
    }

    private sealed class DoubleTolerance(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance;
        public int GetHashCode(double value) => 0;
    }
}
