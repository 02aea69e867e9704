using ClockLM.Models;
using ClockLM.Nn;
using ClockLM.Tensors;

namespace ClockLM.Probes;

/// <summary>A probe's accuracy at one layer (<see cref="LayerProbe.EmbeddingLayer"/> for the embedding).</summary>
public sealed record LayerProbeResult(int Layer, double TrainAccuracy, double TestAccuracy)
{
    /// <summary>The layer as printed: <c>embed</c> for the embedding, else its index.</summary>
    public string Name => Layer == LayerProbe.EmbeddingLayer ? "embed" : Layer.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Per-layer probe accuracies on one train/test split, with the baseline a probe has to beat.</summary>
/// <param name="Layers">One result per probed layer, embedding first.</param>
/// <param name="TrainCount">Examples the probes trained on.</param>
/// <param name="TestCount">Examples held out.</param>
/// <param name="MajorityBaseline">Test accuracy of always answering the training split's most common class.</param>
public sealed record ProbeReport(IReadOnlyList<LayerProbeResult> Layers, int TrainCount, int TestCount, double MajorityBaseline)
{
    /// <summary>Two standard errors of an accuracy measured on <see cref="TestCount"/> examples when the true accuracy
    /// is the baseline p: 2·√(p(1 − p)/N). A probe above <see cref="MajorityBaseline"/> plus this is unlikely to be luck.</summary>
    public double TwoStandardErrors => 2 * Math.Sqrt(MajorityBaseline * (1 - MajorityBaseline) / TestCount);

    /// <summary>The first layer (the embedding counts, as −1) whose test accuracy exceeds the baseline by more than
    /// <see cref="TwoStandardErrors"/>; null when none does.</summary>
    public int? FirstLayerAboveChance =>
        Layers.FirstOrDefault(r => r.TestAccuracy > MajorityBaseline + TwoStandardErrors)?.Layer;
}

/// <summary>
/// Linear probes: does the residual stream after a given cycle encode a two-class property of the sentence?
/// For each layer, a logistic regression (one <see cref="Dense{T}"/> unit with a sigmoid, binary cross-entropy, Adam)
/// is trained on standardised activations of a training split and scored on the held-out rest.
/// <code>
/// using var model = Model.Load("stories260K.bin");
/// var report = LayerProbe.TrainPerLayer(model, ProbeDataset.Load("girl-boy.tsv"), new ProbeOptions { Seed = 1 });
/// foreach (var r in report.Layers) Console.WriteLine($"{r.Name}: {r.TestAccuracy:P0}");
/// </code>
/// </summary>
public static class LayerProbe
{
    /// <summary>The layer index standing for the token embedding (the residual stream entering cycle 0).</summary>
    public const int EmbeddingLayer = -1;

    /// <summary>Captures features from <paramref name="model"/> and trains one probe per layer; see <see cref="ProbeFeatures.Capture"/>.</summary>
    public static ProbeReport TrainPerLayer(Model model, ProbeDataset dataset, ProbeOptions? options = null, WorkerPool? pool = null)
    {
        options ??= new ProbeOptions();
        return TrainPerLayer(ProbeFeatures.Capture(model, dataset, options, pool), options);
    }

    /// <summary>Trains one probe per layer of <paramref name="features"/> on the same seeded, stratified split.</summary>
    /// <exception cref="ArgumentException">The split leaves a class without training or test examples.</exception>
    public static ProbeReport TrainPerLayer(ProbeFeatures features, ProbeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(features);
        options ??= new ProbeOptions();
        options.Validate();
        var (train, test) = Split(features.Labels, options.TestFraction, options.Seed);
        int[] trainY = [.. train.Select(i => features.Labels[i])], testY = [.. test.Select(i => features.Labels[i])];

        var results = new List<LayerProbeResult>();
        foreach (int layer in features.LayerIndices)
        {
            var rows = features.Rows[layer];
            var (trainAccuracy, testAccuracy) = Train(
                [.. train.Select(i => rows[i])], trainY, [.. test.Select(i => rows[i])], testY, options);
            results.Add(new LayerProbeResult(layer, trainAccuracy, testAccuracy));
        }

        // Ties go to class 0, the class named first in the file.
        int majority = trainY.Count(y => y == 1) > trainY.Count(y => y == 0) ? 1 : 0;
        double baseline = testY.Count(y => y == majority) / (double)testY.Length;
        return new ProbeReport(results, train.Length, test.Length, baseline);
    }

    /// <summary>
    /// A stratified split: each class's examples are shuffled with <paramref name="seed"/> and the first
    /// round(count · <paramref name="testFraction"/>) of them are held out. Returns example indices in shuffled order.
    /// </summary>
    /// <exception cref="ArgumentException">A class would have no training or no test example.</exception>
    public static (int[] Train, int[] Test) Split(int[] labels, double testFraction, int seed)
    {
        var random = new Random(seed);
        var train = new List<int>();
        var test = new List<int>();
        for (int label = 0; label < 2; label++)
        {
            int[] members = [.. Enumerable.Range(0, labels.Length).Where(i => labels[i] == label)];
            random.Shuffle(members);
            int held = (int)Math.Round(members.Length * testFraction, MidpointRounding.AwayFromZero);
            if (held == 0 || held == members.Length)
                throw new ArgumentException($"class {label} has {members.Length} examples; a test fraction of {testFraction} " +
                    $"leaves {members.Length - held} for training and {held} for testing, and both need at least one", nameof(testFraction));
            test.AddRange(members[..held]);
            train.AddRange(members[held..]);
        }
        int[] trainOrder = [.. train], testOrder = [.. test];
        random.Shuffle(trainOrder);
        random.Shuffle(testOrder);
        return (trainOrder, testOrder);
    }

    /// <summary>
    /// Trains one logistic-regression probe on <paramref name="trainX"/> (standardised with the training rows' mean and
    /// standard deviation, which are then applied to <paramref name="testX"/>) and returns its accuracy on both sets.
    /// </summary>
    public static (double TrainAccuracy, double TestAccuracy) Train(float[][] trainX, int[] trainY, float[][] testX, int[] testY, ProbeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (trainX.Length != trainY.Length || testX.Length != testY.Length)
            throw new ArgumentException("each feature row needs one label");
        if (trainX.Length == 0 || testX.Length == 0) throw new ArgumentException("the training and test sets need at least one row each");
        var (mean, scale) = Standardisation(trainX);
        var x = Standardise(trainX, mean, scale);
        var xTest = Standardise(testX, mean, scale);

        var probe = new Sequential<float>(inputSize: mean.Length, seed: options.Seed) { new Dense<float>(1, Activation.Sigmoid) };
        probe.Compile(new Adam(options.LearningRate), Loss.BinaryCrossEntropy, Metric.Accuracy);
        probe.Fit(x, [.. trainY.Select(y => (float)y)], epochs: options.Epochs, batchSize: options.BatchSize, verbose: 0);
        return (Accuracy(probe, x, trainY), Accuracy(probe, xTest, testY));
    }

    /// <summary>The fraction of rows whose probe output is on the label's side of 0.5.</summary>
    private static double Accuracy(Sequential<float> probe, float[][] x, int[] y)
    {
        var p = probe.Predict(x);
        int correct = 0;
        for (int i = 0; i < y.Length; i++)
            if ((p[i][0] >= 0.5f ? 1 : 0) == y[i]) correct++;
        return correct / (double)y.Length;
    }

    /// <summary>Per-feature mean and 1/σ of the rows; a feature constant over the rows gets scale 0 (it carries nothing).</summary>
    private static (float[] Mean, float[] Scale) Standardisation(float[][] rows)
    {
        int width = rows[0].Length;
        var mean = new double[width];
        var variance = new double[width];
        foreach (var r in rows)
            for (int j = 0; j < width; j++) mean[j] += r[j];
        for (int j = 0; j < width; j++) mean[j] /= rows.Length;
        foreach (var r in rows)
            for (int j = 0; j < width; j++) variance[j] += (r[j] - mean[j]) * (r[j] - mean[j]);
        var scale = new float[width];
        for (int j = 0; j < width; j++)
        {
            double sd = Math.Sqrt(variance[j] / rows.Length);
            scale[j] = sd > 1e-6 * (1 + Math.Abs(mean[j])) ? (float)(1 / sd) : 0;
        }
        return ([.. mean.Select(m => (float)m)], scale);
    }

    private static float[][] Standardise(float[][] rows, float[] mean, float[] scale) =>
        [.. rows.Select(r => r.Select((v, j) => (v - mean[j]) * scale[j]).ToArray())];

    /// <summary>The layers to probe: every layer when <paramref name="layers"/> is null, else those given, sorted.</summary>
    internal static int[] ResolveLayers(IReadOnlyList<int>? layers, int layerCount)
    {
        if (layers is null) return [.. Enumerable.Range(0, layerCount)];
        foreach (int l in layers)
            if (l < 0 || l >= layerCount)
                throw new ArgumentOutOfRangeException(nameof(layers), l, $"layer {l} does not exist; the model has layers 0 to {layerCount - 1}");
        return [.. layers.Distinct().Order()];
    }
}
