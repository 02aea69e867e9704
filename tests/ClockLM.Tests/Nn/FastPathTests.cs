using System.Numerics;
using ClockLM.Models;
using ClockLM.Nn;
using ClockLM.Training;

namespace ClockLM.Tests.Nn;

/// <summary>
/// The float fast path of the autograd operations (a <see cref="ComputeContext"/> given) against the plain operations:
/// values and gradients against the plain path in float64 for the operations computed another way (packed products,
/// fused attention, eight-lane SwiGLU and cross-entropy), bit for bit against plain float for the operations only
/// shared out over threads, and bit for bit across thread counts for a whole model.
/// </summary>
public class FastPathTests
{
    [Theory]
    [InlineData("linear")]
    [InlineData("attention-grouped-query")] // 50 positions: a second, partial block of queries
    [InlineData("attention-multi-head")]
    [InlineData("swiglu")]
    [InlineData("cross-entropy")]
    [InlineData("transformer-block")]
    public void FastFloatMatchesPlainFloat64(string op)
    {
        var random = new Random(op.Length * 131 + op[^1]);
        var shapes = Shapes(op);
        var values = shapes.Select(s => Enumerable.Range(0, s.Aggregate(1, (a, b) => a * b)).Select(_ => random.NextDouble() * 2 - 1).ToArray()).ToArray();

        var exact = values.Select((v, i) => new Tensor<double>(shapes[i], (double[])v.Clone(), requiresGrad: true)).ToArray();
        var fast = values.Select((v, i) => new Tensor<float>(shapes[i], [.. v.Select(x => (float)x)], requiresGrad: true)).ToArray();
        using var compute = new ComputeContext(3);
        var yExact = Build(op, exact, null);
        var yFast = Build(op, fast, compute);

        Assert.Equal(yExact.Shape, yFast.Shape);
        AssertClose(yExact.Data, yFast.Data, "value");
        // A tensor-valued result is reduced with fixed random weights, so every value's gradient path is used.
        var weights = Enumerable.Range(0, yExact.Length).Select(_ => random.NextDouble() * 2 - 1).ToArray();
        Objective(yExact, weights).Backward();
        Objective(yFast, weights).Backward();
        for (int i = 0; i < exact.Length; i++)
            AssertClose(exact[i].Grad!, fast[i].Grad!, $"gradient of input {i}");
    }

    private static int[][] Shapes(string op) => op switch
    {
        "linear" => [[37, 45], [29, 45]],
        // q (2·50 × 4 heads of 8), k and v (2·50 × 2 heads of 8)
        "attention-grouped-query" => [[100, 32], [100, 16], [100, 16]],
        "attention-multi-head" => [[97, 32], [97, 32], [97, 32]],
        "swiglu" => [[9, 37], [9, 37]],
        "cross-entropy" => [[13, 300]],
        // embedding (vocab 11 × 16), attention norm, q, k, v, output, ffn norm, gate, down, up
        "transformer-block" => [[11, 16], [16], [16, 16], [8, 16], [8, 16], [16, 16], [16], [24, 16], [16, 24], [24, 16]],
        _ => throw new ArgumentException(op),
    };

    private static Tensor<T> Build<T>(string op, Tensor<T>[] x, ComputeContext? c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (op)
        {
            case "linear": return x[0].Linear(x[1], c);
            case "attention-grouped-query": return Tensor<T>.CausalSelfAttention(x[0], x[1], x[2], 2, 50, 4, 2, c);
            case "attention-multi-head": return Tensor<T>.CausalSelfAttention(x[0], x[1], x[2], 1, 97, 2, 2, c);
            case "swiglu": return x[0].SwiGlu(x[1], c);
            case "cross-entropy": return x[0].CrossEntropy([.. Enumerable.Range(0, 13).Select(i => i * 23 % 300)], c);
            case "transformer-block":
            {
                // One Llama layer and the tied head on 3 sequences of 7 tokens, 4 query heads sharing 2 key/value heads of 4.
                int[] ids = [.. Enumerable.Range(0, 21).Select(i => i * 5 % 11)];
                var h0 = Tensor<T>.Embedding(x[0], ids, c);
                var h = h0.RmsNorm(x[1], 1e-5, c);
                var q = h.Linear(x[2], c).Rope(4, 7, 10000f, c);
                var k = h.Linear(x[3], c).Rope(4, 7, 10000f, c);
                var a = Tensor<T>.CausalSelfAttention(q, k, h.Linear(x[4], c), 3, 7, 4, 2, c);
                var r = h0.Add(a.Linear(x[5], c), c);
                h = r.RmsNorm(x[6], 1e-5, c);
                r = r.Add(h.Linear(x[7], c).SwiGlu(h.Linear(x[9], c), c).Linear(x[8], c), c);
                return r.Linear(x[0], c).CrossEntropy([.. ids.Select(i => (i + 3) % 11)], c);
            }
            default: throw new ArgumentException(op);
        }
    }

    private static Tensor<T> Objective<T>(Tensor<T> y, double[] weights) where T : unmanaged, IFloatingPointIeee754<T> =>
        y.Length == 1 ? y : (y * new Tensor<T>(y.Shape, [.. weights.Select(T.CreateChecked)])).Sum();

    private static void AssertClose<T>(double[] expected, T[] actual, string what) where T : IFloatingPointIeee754<T>
    {
        // Float rounding of sums of a few hundred terms of size ~1, relative to the largest value.
        double scale = Math.Max(1e-3, expected.Max(Math.Abs));
        for (int i = 0; i < expected.Length; i++)
        {
            double a = double.CreateChecked(actual[i]);
            Assert.True(Math.Abs(a - expected[i]) <= 2e-5 * scale, $"{what}[{i}]: fast {a}, float64 {expected[i]}");
        }
    }

    [Fact]
    public void SharedOutOperationsEqualThePlainOnesBitForBit()
    {
        // Big enough that the context splits them: rows over three threads, the norm's gain gradient by columns.
        var random = new Random(5);
        float[] Values(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        int rows = 300, dim = 128;
        var table = Values(50 * dim);
        var x = Values(rows * dim);
        var other = Values(rows * dim);
        var gain = Values(dim);
        var weights = new Tensor<float>([rows, dim], Values(rows * dim));
        int[] ids = [.. Enumerable.Range(0, rows).Select(i => i * 7 % 50)];

        (float[] Y, float[][] Grads) Run(ComputeContext? c)
        {
            var t = new Tensor<float>([50, dim], (float[])table.Clone(), true);
            var a = new Tensor<float>([rows, dim], (float[])x.Clone(), true);
            var b = new Tensor<float>([rows, dim], (float[])other.Clone(), true);
            var w = new Tensor<float>([dim], (float[])gain.Clone(), true);
            var y = Tensor<float>.Embedding(t, ids, c).Add(a, c).RmsNorm(w, 1e-5, c).Rope(32, 30, 10000f, c).Add(b, c);
            (y * weights).Sum().Backward();
            return (y.Data, [t.Grad!, a.Grad!, b.Grad!, w.Grad!]);
        }

        var plain = Run(null);
        using var compute = new ComputeContext(3);
        var shared = Run(compute);
        Assert.Equal(plain.Y, shared.Y);
        for (int i = 0; i < plain.Grads.Length; i++) Assert.Equal(plain.Grads[i], shared.Grads[i]);
    }

    [Fact]
    public void ModelLossAndGradientsAreTheSameBitsOnAnyThreadCount()
    {
        var config = new LlamaConfig(Dim: 64, HiddenDim: 96, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 300, ContextLength: 64);
        var random = new Random(9);
        int batch = 4, seqLen = 64;
        int[] inputs = [.. Enumerable.Range(0, batch * seqLen).Select(_ => random.Next(300))];
        int[] targets = [.. Enumerable.Range(0, batch * seqLen).Select(_ => random.Next(300))];

        (float Loss, float[][] Grads) Run(int threads)
        {
            var model = new LlamaTrainingModel(config, seed: 4);
            using var compute = new ComputeContext(threads);
            var loss = model.Loss(inputs, targets, batch, seqLen, compute);
            loss.Backward();
            return (loss.Scalar, [.. model.Parameters().Select(p => p.Grad!)]);
        }

        var one = Run(1);
        foreach (int threads in new[] { 2, 3 })
        {
            var other = Run(threads);
            Assert.Equal(BitConverter.SingleToInt32Bits(one.Loss), BitConverter.SingleToInt32Bits(other.Loss));
            for (int i = 0; i < one.Grads.Length; i++) Assert.Equal(one.Grads[i], other.Grads[i]);
        }

        // And the fast path computes the plain path's loss (to float rounding).
        var plain = new LlamaTrainingModel(config, seed: 4).Loss(inputs, targets, batch, seqLen);
        Assert.Equal(plain.Scalar, one.Loss, 4);
    }

    [Fact]
    public void ARecycledGraphGivesTheSameLossAndGradients()
    {
        // The second step runs on the arrays the first one released (results left with old values, gradients cleared):
        // nothing of the first step may leak into it.
        var config = new LlamaConfig(Dim: 32, HiddenDim: 64, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 100, ContextLength: 16);
        var random = new Random(3);
        int[] inputs = [.. Enumerable.Range(0, 64).Select(_ => random.Next(100))];
        int[] targets = [.. Enumerable.Range(0, 64).Select(_ => random.Next(100))];
        int[] other = [.. Enumerable.Range(0, 64).Select(_ => random.Next(100))];
        var model = new LlamaTrainingModel(config, seed: 2);
        var parameters = model.Parameters();
        using var compute = new ComputeContext(2);

        (float Loss, float[][] Grads) Step(int[] x)
        {
            foreach (var p in parameters) p.ZeroGrad();
            var loss = model.Loss(x, targets, 4, 16, compute);
            loss.Backward();
            var result = (loss.Scalar, parameters.Select(p => (float[])p.Grad!.Clone()).ToArray());
            loss.ReleaseGraph(compute);
            return result;
        }

        var first = Step(inputs);
        Step(other);
        var again = Step(inputs);
        Assert.Equal(BitConverter.SingleToInt32Bits(first.Loss), BitConverter.SingleToInt32Bits(again.Loss));
        for (int i = 0; i < first.Grads.Length; i++) Assert.Equal(first.Grads[i], again.Grads[i]);
    }

    [Fact]
    public void AdamWSharedOutEqualsOneThreadBitForBit()
    {
        var random = new Random(2);
        float[] Values(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        var start = Values(100_003);
        var grads = new[] { Values(start.Length), Values(start.Length) };

        float[] Run(ComputeContext? c)
        {
            var p = new Tensor<float>([start.Length], (float[])start.Clone(), requiresGrad: true);
            var optimizer = new AdamW(1e-2, weightDecay: 0.1, beta1: 0.9, beta2: 0.95, epsilon: 1e-8);
            foreach (var g in grads)
            {
                p.ZeroGrad();
                (p * new Tensor<float>([start.Length], g)).Sum().Backward();
                optimizer.Step([p], c);
            }
            return p.Data;
        }

        using var compute = new ComputeContext(3);
        Assert.Equal(Run(null), Run(compute));
    }

    [Fact]
    public void ADoubleTensorWithAContextIsAClearError()
    {
        var x = new Tensor<double>([2, 3], new double[6]);
        var w = new Tensor<double>([4, 3], new double[12]);
        using var compute = new ComputeContext(1);
        var e = Assert.Throws<NotSupportedException>(() => x.Linear(w, compute));
        Assert.Contains("Linear", e.Message);
        Assert.Contains("Double", e.Message);
    }
}
