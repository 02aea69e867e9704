using BenchmarkDotNet.Attributes;
using ClockLM.Nn;

namespace ClockLM.Bench.Nn;

/// <summary>
/// One epoch of <see cref="Sequential{T}.Fit(float[,], float[,], int, int, bool, double, int, TextWriter?)"/> on a
/// 784-128-10 MLP (the Keras MNIST tutorial's shape: relu hidden layer, softmax output, Adam, sparse categorical
/// cross-entropy, batches of 32) over 60,000 random rows. The reported time is per training row: samples/s = 1 / time.
/// </summary>
[MemoryDiagnoser]
public class FitBenchmark
{
    private const int Rows = 60_000;
    private float[,] _x = new float[0, 0];
    private float[,] _y = new float[0, 0];
    private Sequential<float> _model = null!;

    [GlobalSetup]
    public void CreateData()
    {
        var random = new Random(1);
        _x = new float[Rows, 784];
        _y = new float[Rows, 1];
        for (int r = 0; r < Rows; r++)
        {
            for (int c = 0; c < 784; c++) _x[r, c] = (float)random.NextDouble();
            _y[r, 0] = random.Next(10);
        }
    }

    [IterationSetup]
    public void CreateModel()
    {
        _model = new Sequential<float>(inputSize: 784, seed: 2)
        {
            new Dense<float>(128, Activation.Relu),
            new Dense<float>(10, Activation.Softmax),
        };
        _model.Compile(new Adam(), Loss.SparseCategoricalCrossEntropy, Metric.Accuracy);
    }

    [Benchmark(OperationsPerInvoke = Rows, Description = "Fit 784-128-10, 1 epoch of 60k rows (time per row)")]
    public double FitOneEpoch() => _model.Fit(_x, _y, epochs: 1, batchSize: 32, verbose: 0)["loss"][0];
}
