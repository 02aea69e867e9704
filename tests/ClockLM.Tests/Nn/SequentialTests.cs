using System.Text.RegularExpressions;
using ClockLM.Nn;

namespace ClockLM.Tests.Nn;

/// <summary>The Keras-style model: initialisation, Fit/Evaluate/Predict, printing and argument errors.</summary>
public class SequentialTests
{
    [Fact]
    public void DenseStartsGlorotUniformWithZeroBias()
    {
        var model = new Sequential<float>(inputSize: 300, seed: 1) { new Dense<float>(200, Activation.Relu) };
        var dense = (Dense<float>)model.Layers[0];
        double limit = Math.Sqrt(6.0 / (300 + 200));
        Assert.Equal([300, 200], dense.Kernel.Shape);
        Assert.All(dense.Kernel.Data, w => Assert.InRange(w, -limit, limit));
        // U(−l, l) has mean 0 and variance l²/3; 60,000 draws pin both down to about 1%.
        double mean = dense.Kernel.Data.Average(w => (double)w);
        double variance = dense.Kernel.Data.Average(w => (double)w * w) - mean * mean;
        Assert.InRange(mean, -0.01 * limit, 0.01 * limit);
        Assert.InRange(variance, 0.97 * limit * limit / 3, 1.03 * limit * limit / 3);
        Assert.All(dense.Bias!.Data, b => Assert.Equal(0f, b));
        Assert.Equal("dense", dense.Name);
    }

    [Fact]
    public void LayersGetKerasNamesAndWidthsChain()
    {
        var model = new Sequential<float>(4, seed: 0) { new Dense<float>(8), new Dense<float>(3), new Dense<float>(2) };
        Assert.Equal(["dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias", "dense_2.kernel", "dense_2.bias"],
            model.NamedParameters.Select(p => p.Name));
        Assert.Equal([8, 3], model.Layers[1].Parameters[0].Value.Shape);
        Assert.Equal(2, model.OutputSize);
    }

    [Fact]
    public void SameSeedGivesSameWeightsAndTraining()
    {
        static float[] Train(int seed)
        {
            var (x, y) = Blobs(60, seed: 5);
            var model = Classifier(seed);
            model.Fit(x, y, epochs: 2, batchSize: 8, verbose: 0);
            return [.. model.Parameters.SelectMany(p => p.Data)];
        }
        Assert.Equal(Train(3), Train(3));
        Assert.NotEqual(Train(3), Train(4));
    }

    [Fact]
    public void FitTakesTheSameStepsAsAHandWrittenLoop()
    {
        // Two full-batch epochs of Fit with plain SGD against the loop it should run: clear gradients,
        // compute the loss, backpropagate, θ ← θ − α·∂L/∂θ. Gradients left over from the first step would show.
        double[,] x = { { 0.5, -1 }, { 1.5, 0.2 }, { -0.3, 0.8 }, { 1, 1 } };
        double[,] y = { { 1 }, { 0 }, { 1 }, { 0 } };
        Sequential<double> Model() => new(inputSize: 2, seed: 5) { new Dense<double>(3, Activation.Tanh), new Dense<double>(1, Activation.Sigmoid) };

        var fitted = Model();
        fitted.Compile(new Sgd(0.5), Loss.BinaryCrossEntropy);
        fitted.Fit(x, y, epochs: 2, batchSize: 4, shuffle: false, verbose: 0);

        var manual = Model();
        manual.Compile(new Sgd(0.5), Loss.BinaryCrossEntropy);
        for (int step = 0; step < 2; step++)
        {
            foreach (var p in manual.Parameters) p.ZeroGrad();
            manual.ComputeLoss(Tensor<double>.FromArray(x), Tensor<double>.FromArray(y)).Backward();
            foreach (var p in manual.Parameters)
                for (int i = 0; i < p.Length; i++) p.Data[i] -= 0.5 * p.Grad![i];
        }
        var expected = manual.Parameters.SelectMany(p => p.Data).ToArray();
        var actual = fitted.Parameters.SelectMany(p => p.Data).ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 14);
        Assert.NotEqual(Model().Parameters[0].Data, fitted.Parameters[0].Data);
    }

    [Fact]
    public void FitLearnsSeparableClasses()
    {
        var (x, y) = Blobs(300, seed: 1);
        var model = Classifier(seed: 2);
        var history = model.Fit(x, y, epochs: 30, batchSize: 16, verbose: 0);
        Assert.Equal(30, history.Epochs);
        Assert.True(history["loss"][^1] < history["loss"][0] / 4, $"loss {history["loss"][0]} → {history["loss"][^1]}");
        var evaluation = model.Evaluate(x, y);
        Assert.True(evaluation["accuracy"] > 0.97, $"accuracy {evaluation["accuracy"]}");
        // Evaluate's accuracy is the share of rows whose arg-max is the label, recomputed here from Predict.
        var p = model.Predict(x);
        int correct = Enumerable.Range(0, x.GetLength(0)).Count(r =>
            Enumerable.Range(0, 3).MaxBy(c => p[r, c]) == (int)y[r, 0]);
        Assert.Equal((double)correct / x.GetLength(0), evaluation["accuracy"], 12);
    }

    [Fact]
    public void BinaryProbeOnFeatureRowsWithOneLabelPerRow()
    {
        // What a probe on captured activations does: float[] feature rows, a 0/1 label each, a single sigmoid unit.
        var random = new Random(9);
        var direction = Enumerable.Range(0, 16).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var rows = new float[400][];
        var labels = new float[400];
        for (int r = 0; r < rows.Length; r++)
        {
            rows[r] = [.. Enumerable.Range(0, 16).Select(_ => (float)(random.NextDouble() * 2 - 1))];
            labels[r] = rows[r].Zip(direction, (a, b) => a * b).Sum() > 0 ? 1 : 0;
        }
        var probe = new Sequential<float>(16, seed: 1) { new Dense<float>(1, Activation.Sigmoid) };
        probe.Compile(new Adam(0.05), Loss.BinaryCrossEntropy, Metric.Accuracy);
        var history = probe.Fit(rows, labels, epochs: 40, validationSplit: 0.25, verbose: 0);
        Assert.Equal(["loss", "accuracy", "val_loss", "val_accuracy"], history.Keys);
        Assert.True(history["val_accuracy"][^1] > 0.9, $"validation accuracy {history["val_accuracy"][^1]}");
        var predictions = probe.Predict(rows);
        Assert.All(predictions, p => Assert.InRange(p[0], 0f, 1f));
    }

    [Fact]
    public void ValidationSplitHoldsOutTheLastRows()
    {
        // Training rows all have target 0, the last quarter target 1: the held-out loss must be the loss on those rows alone.
        var x = new float[8, 1];
        var y = new float[8, 1];
        for (int r = 0; r < 8; r++) { x[r, 0] = r; y[r, 0] = r >= 6 ? 1 : 0; }
        var model = new Sequential<float>(1, seed: 0) { new Dense<float>(1) };
        model.Compile(new Sgd(1e-3), Loss.MeanSquaredError);
        var history = model.Fit(x, y, epochs: 1, batchSize: 8, validationSplit: 0.25, verbose: 0);
        var held = model.Evaluate(new float[,] { { 6 }, { 7 } }, new float[,] { { 1 }, { 1 } });
        Assert.Equal(held["loss"], history["val_loss"][0], 6);
    }

    [Fact]
    public void FitPrintsOneKerasLinePerEpoch()
    {
        var (x, y) = Blobs(40, seed: 3);
        var model = Classifier(seed: 1);
        var text = new StringWriter();
        var history = model.Fit(x, y, epochs: 3, batchSize: 16, validationSplit: 0.2, output: text);
        var lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(3, lines.Length);
        for (int e = 0; e < 3; e++)
        {
            var match = Regex.Match(lines[e], @"^Epoch (\d+)/3 - 2/2 - \d+s \d+(ms|us)/step - loss: (\d\.\d{4}) - accuracy: (\d\.\d{4}) - val_loss: (\d\.\d{4}) - val_accuracy: (\d\.\d{4})$");
            Assert.True(match.Success, lines[e]);
            Assert.Equal(e + 1, int.Parse(match.Groups[1].Value));
            Assert.Equal(history["loss"][e].ToString("F4", System.Globalization.CultureInfo.InvariantCulture), match.Groups[3].Value);
            Assert.Equal(history["val_accuracy"][e].ToString("F4", System.Globalization.CultureInfo.InvariantCulture), match.Groups[6].Value);
        }
    }

    [Fact]
    public void JaggedAndRectangularInputsGiveTheSamePredictions()
    {
        var (x, _) = Blobs(10, seed: 2);
        var model = Classifier(seed: 4);
        var rect = model.Predict(x, batchSize: 3);
        var jagged = model.Predict(Enumerable.Range(0, 10).Select(r => new[] { x[r, 0], x[r, 1] }).ToArray());
        for (int r = 0; r < 10; r++)
            for (int c = 0; c < 3; c++)
                Assert.Equal(rect[r, c], jagged[r][c]);
        // Softmax rows sum to one.
        Assert.All(jagged, row => Assert.Equal(1f, row.Sum(), 5));
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        var model = Classifier(seed: 0);
        var e = Assert.Throws<ShapeMismatchException>(() => model.Fit(new float[4, 3], new float[4, 1], verbose: 0));
        Assert.Contains("[4, 3]", e.Message);
        Assert.Contains("[4, 2]", e.Message);
        Assert.Throws<ShapeMismatchException>(() => model.Fit(new float[4, 2], new float[3, 1], verbose: 0));
        var label = Assert.Throws<ArgumentException>(() => model.Fit(new float[1, 2], new float[,] { { 3 } }, verbose: 0));
        Assert.Contains("label 3", label.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Fit(new float[4, 2], new float[4, 1], validationSplit: 1.5));
        var uncompiled = new Sequential<float>(2) { new Dense<float>(1) };
        Assert.Throws<InvalidOperationException>(() => uncompiled.Fit(new float[1, 2], new float[1, 1]));
        var ragged = Assert.Throws<ArgumentException>(() => model.Predict(new[] { new float[2], new float[3] }));
        Assert.Contains("row 1", ragged.Message);
    }

    /// <summary>2 → 16 (tanh) → 3 (softmax), sparse categorical cross-entropy, Adam.</summary>
    private static Sequential<float> Classifier(int seed)
    {
        var model = new Sequential<float>(inputSize: 2, seed: seed)
        {
            new Dense<float>(16, Activation.Tanh),
            new Dense<float>(3, Activation.Softmax),
        };
        model.Compile(new Adam(0.01), Loss.SparseCategoricalCrossEntropy, Metric.Accuracy);
        return model;
    }

    /// <summary>Three well-separated Gaussian blobs in the plane; y holds the class index.</summary>
    private static (float[,] X, float[,] Y) Blobs(int rows, int seed)
    {
        var random = new Random(seed);
        (float, float)[] centres = [(-2, -2), (2, -2), (0, 2)];
        var x = new float[rows, 2];
        var y = new float[rows, 1];
        for (int r = 0; r < rows; r++)
        {
            int c = r % 3;
            x[r, 0] = centres[c].Item1 + (float)(random.NextDouble() - 0.5);
            x[r, 1] = centres[c].Item2 + (float)(random.NextDouble() - 0.5);
            y[r, 0] = c;
        }
        return (x, y);
    }
}
