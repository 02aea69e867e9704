using ClockLM.Nn;
using static ClockLM.Tests.Nn.GradientCheck;

namespace ClockLM.Tests.Nn;

/// <summary>Every differentiable operation's gradient against central finite differences in float64.</summary>
public class OpGradientTests
{
    private const double Tolerance = 1e-6;

    [Theory]
    [InlineData("matmul")]
    [InlineData("matmul-vector-lanes")]
    [InlineData("add")]
    [InlineData("add-bias")]
    [InlineData("add-bias-row")]
    [InlineData("sub")]
    [InlineData("mul")]
    [InlineData("sigmoid")]
    [InlineData("relu")]
    [InlineData("tanh")]
    [InlineData("gelu")]
    [InlineData("silu")]
    [InlineData("softmax")]
    [InlineData("log-softmax")]
    [InlineData("sum")]
    [InlineData("mean")]
    [InlineData("binary-cross-entropy")]
    [InlineData("categorical-cross-entropy")]
    [InlineData("sparse-categorical-cross-entropy")]
    [InlineData("mean-squared-error")]
    [InlineData("softmax-then-categorical-cross-entropy")]
    public void GradientMatchesFiniteDifferences(string op)
    {
        // A fixed seed per op (string.GetHashCode changes from process to process).
        var random = new Random((int)(ClockLM.Models.SyntheticModel.StableHash(op) & 0xffff));
        Tensor<double> A(params int[] shape) => GradientCheck.Random(shape, random);
        // Inputs of relu kept away from its kink at 0, so that x ± h stays on one side.
        Tensor<double> AwayFromZero(params int[] shape)
        {
            var t = A(shape);
            for (int i = 0; i < t.Length; i++) t.Data[i] += Math.Sign(t.Data[i]) * 0.1;
            return t;
        }

        Tensor<double>[] inputs;
        Func<Tensor<double>> f;
        switch (op)
        {
            case "matmul": { var a = A(3, 4); var b = A(4, 5); inputs = [a, b]; f = () => a.MatMul(b); break; }
            // Rows longer than a Vector<double>, with a scalar tail (the threaded split is covered by MatMulKernelTests).
            case "matmul-vector-lanes": { var a = A(6, 19); var b = A(19, 21); inputs = [a, b]; f = () => a.MatMul(b); break; }
            case "add": { var a = A(3, 4); var b = A(3, 4); inputs = [a, b]; f = () => a + b; break; }
            case "add-bias": { var a = A(5, 4); var b = A(4); inputs = [a, b]; f = () => a + b; break; }
            case "add-bias-row": { var a = A(5, 4); var b = A(1, 4); inputs = [a, b]; f = () => a + b; break; }
            case "sub": { var a = A(3, 4); var b = A(3, 4); inputs = [a, b]; f = () => a - b; break; }
            case "mul": { var a = A(3, 4); var b = A(3, 4); inputs = [a, b]; f = () => a * b; break; }
            case "sigmoid": { var a = A(3, 5); inputs = [a]; f = a.Sigmoid; break; }
            case "relu": { var a = AwayFromZero(3, 5); inputs = [a]; f = a.Relu; break; }
            case "tanh": { var a = A(3, 5); inputs = [a]; f = a.Tanh; break; }
            case "gelu": { var a = A(3, 5); inputs = [a]; f = a.Gelu; break; }
            case "silu": { var a = A(3, 5); inputs = [a]; f = a.Silu; break; }
            case "softmax": { var a = A(3, 5); inputs = [a]; f = a.Softmax; break; }
            case "log-softmax": { var a = A(3, 5); inputs = [a]; f = a.LogSoftmax; break; }
            case "sum": { var a = A(3, 5); inputs = [a]; f = a.Sum; break; }
            case "mean": { var a = A(3, 5); inputs = [a]; f = a.Mean; break; }
            case "binary-cross-entropy":
            {
                var p = GradientCheck.Random([4, 2], random, 0.05, 0.95);
                var y = GradientCheck.Random([4, 2], random, 0, 1, requiresGrad: false);
                inputs = [p]; f = () => Losses.BinaryCrossEntropy(p, y); break;
            }
            case "categorical-cross-entropy":
            {
                var p = GradientCheck.Random([4, 3], random, 0.05, 0.95);
                var y = new Tensor<double>([4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 0.2, 0.3, 0.5]);
                inputs = [p]; f = () => Losses.CategoricalCrossEntropy(p, y); break;
            }
            case "sparse-categorical-cross-entropy":
            {
                var p = GradientCheck.Random([4, 3], random, 0.05, 0.95);
                var labels = new Tensor<double>([4, 1], [2, 0, 1, 2]);
                inputs = [p]; f = () => Losses.SparseCategoricalCrossEntropy(p, labels); break;
            }
            case "mean-squared-error": { var p = A(4, 3); var y = A(4, 3); inputs = [p, y]; f = () => Losses.MeanSquaredError(p, y); break; }
            case "softmax-then-categorical-cross-entropy":
            {
                var z = A(4, 3);
                var y = new Tensor<double>([4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1]);
                inputs = [z]; f = () => Losses.CategoricalCrossEntropy(z.Softmax(), y); break;
            }
            default: throw new ArgumentException(op);
        }

        double error = MaxRelativeError(f, inputs);
        Assert.True(error < Tolerance, $"{op}: max relative error {error:E2} ≥ {Tolerance:E0}");
    }

    [Fact]
    public void ClippedBinaryCrossEntropyHasNoGradientOutsideTheClip()
    {
        // Keras clips p to [1e-7, 1 − 1e-7]; a prediction of exactly 0 gives log(1e-7), not −∞, and no gradient.
        var p = new Tensor<double>([1, 2], [0.0, 0.5], requiresGrad: true);
        var y = new Tensor<double>([1, 2], [1.0, 1.0]);
        var loss = Losses.BinaryCrossEntropy(p, y);
        Assert.Equal(-(Math.Log(1e-7) + Math.Log(0.5)) / 2, loss.Scalar, 12);
        loss.Backward();
        Assert.Equal(0.0, p.Grad![0]);
        Assert.Equal(-1 / 0.5 / 2, p.Grad[1], 12);
    }

    [Fact]
    public void ForwardValuesMatchTheFormulas()
    {
        double[] xs = [-3, -0.5, 0, 0.7, 4];
        var x = new Tensor<double>([1, 5], xs);
        for (int i = 0; i < xs.Length; i++)
        {
            double v = xs[i], s = 1 / (1 + Math.Exp(-v));
            Assert.Equal(s, x.Sigmoid().Data[i], 14);
            Assert.Equal(Math.Max(0, v), x.Relu().Data[i], 14);
            Assert.Equal(Math.Tanh(v), x.Tanh().Data[i], 14);
            Assert.Equal(v * s, x.Silu().Data[i], 14);
            Assert.Equal(0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))), x.Gelu().Data[i], 14);
        }
        double sumExp = xs.Sum(Math.Exp);
        for (int i = 0; i < xs.Length; i++)
        {
            Assert.Equal(Math.Exp(xs[i]) / sumExp, x.Softmax().Data[i], 14);
            Assert.Equal(xs[i] - Math.Log(sumExp), x.LogSoftmax().Data[i], 13);
        }
        Assert.Equal(1.2, x.Sum().Scalar, 14);
        Assert.Equal(0.24, x.Mean().Scalar, 14);
        // GELU's tanh form stays within 1e-3 of x·Φ(x) at a few tabulated points: Φ(1) = 0.841344746, Φ(−1) = 0.158655254.
        var g = new Tensor<double>([2], [1, -1]).Gelu();
        Assert.Equal(0.841344746, g.Data[0], 3);
        Assert.Equal(-0.158655254, g.Data[1], 3);
    }

    [Fact]
    public void SoftmaxDoesNotOverflowOnLargeLogits()
    {
        var x = new Tensor<float>([1, 3], [1000f, 1000f, -1000f]);
        var y = x.Softmax();
        Assert.Equal(0.5f, y.Data[0]);
        Assert.Equal(0.5f, y.Data[1]);
        Assert.Equal(0f, y.Data[2]);
        Assert.Equal(-MathF.Log(2), x.LogSoftmax().Data[0], 5);
    }

    [Fact]
    public void ShapeMismatchNamesBothShapes()
    {
        var a = Tensor<float>.Zeros([2, 3]);
        var b = Tensor<float>.Zeros([2, 1]);
        var e = Assert.Throws<ShapeMismatchException>(() => a.MatMul(b));
        Assert.Contains("MatMul", e.Message);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[2, 1]", e.Message);

        var add = Assert.Throws<ShapeMismatchException>(() => a + Tensor<float>.Zeros([2]));
        Assert.Contains("[2, 3]", add.Message);
        Assert.Contains("[2]", add.Message);
        Assert.Throws<ShapeMismatchException>(() => a * b);
        Assert.Throws<ShapeMismatchException>(() => Losses.MeanSquaredError(a, b));
    }

    [Fact]
    public void GradientsAccumulateOverEveryUseOfATensor()
    {
        // f = Σ (a·a) + Σ a ⇒ ∂f/∂a = 2a + 1: a used three times in the graph.
        var a = new Tensor<double>([3], [1, -2, 0.5], requiresGrad: true);
        ((a * a).Sum() + a.Sum()).Backward();
        Assert.Equal([3, -3, 2], a.Grad!);
    }
}
