using ClockLM.Nn;

namespace ClockLM.Tests.Nn;

/// <summary>Gradients of whole Dense networks (every parameter, through the compiled loss) against finite differences.</summary>
public class NetworkGradientTests
{
    [Theory]
    [InlineData(Activation.Tanh, Activation.Gelu, Activation.Softmax, Loss.CategoricalCrossEntropy)]
    [InlineData(Activation.Relu, Activation.Silu, Activation.Softmax, Loss.SparseCategoricalCrossEntropy)]
    [InlineData(Activation.Sigmoid, Activation.Tanh, Activation.Sigmoid, Loss.BinaryCrossEntropy)]
    [InlineData(Activation.Gelu, Activation.Relu, Activation.Linear, Loss.MeanSquaredError)]
    public void DenseNetworkGradientMatchesFiniteDifferences(Activation first, Activation second, Activation output, Loss loss)
    {
        var random = new Random(3);
        var model = new Sequential<double>(inputSize: 4, seed: 11)
        {
            new Dense<double>(5, first),
            new Dense<double>(6, second),
            new Dense<double>(3, output),
        };
        model.Compile(new Sgd(), loss);
        // Non-zero biases so every unit sees a different input.
        foreach (var p in model.Parameters.Where(p => p.Rank == 1))
            for (int i = 0; i < p.Length; i++) p.Data[i] = random.NextDouble() - 0.5;

        var x = GradientCheck.Random([7, 4], random, requiresGrad: false);
        Tensor<double> y = loss switch
        {
            Loss.SparseCategoricalCrossEntropy => new Tensor<double>([7, 1], [0, 1, 2, 2, 1, 0, 1]),
            Loss.CategoricalCrossEntropy => new Tensor<double>([7, 3], [.. Enumerable.Range(0, 21).Select(i => i % 3 == i / 3 % 3 ? 1.0 : 0.0)]),
            Loss.BinaryCrossEntropy => GradientCheck.Random([7, 3], random, 0, 1, requiresGrad: false),
            _ => GradientCheck.Random([7, 3], random, requiresGrad: false),
        };

        double error = GradientCheck.MaxRelativeError(() => model.ComputeLoss(x, y), model.Parameters);
        Assert.True(error < 1e-6, $"max relative error {error:E2}");
        Assert.Equal(6, model.Parameters.Count);
    }
}
