using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Probes;

/// <summary>
/// One feature vector per example and probed layer, with the examples' labels: what a probe trains on.
/// Layer <see cref="LayerProbe.EmbeddingLayer"/> (−1) is the token embedding, the residual stream entering cycle 0.
/// </summary>
public sealed class ProbeFeatures
{
    /// <summary>Features given directly: <paramref name="rows"/>[layer][example] is a vector, the same width for every example of a layer.</summary>
    /// <exception cref="ArgumentException">The labels are not 0/1, or a layer has a different number of rows or ragged rows.</exception>
    public ProbeFeatures(int[] labels, IReadOnlyDictionary<int, float[][]> rows)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(rows);
        if (labels.Any(l => l is not (0 or 1))) throw new ArgumentException("every label must be 0 or 1", nameof(labels));
        foreach (var (layer, layerRows) in rows)
        {
            if (layerRows.Length != labels.Length)
                throw new ArgumentException($"layer {layer} has {layerRows.Length} rows for {labels.Length} labels", nameof(rows));
            if (layerRows.Any(r => r.Length != layerRows[0].Length))
                throw new ArgumentException($"layer {layer} has rows of different widths", nameof(rows));
        }
        Labels = labels;
        Rows = rows;
    }

    /// <summary>The label (0 or 1) of each example.</summary>
    public int[] Labels { get; }

    /// <summary>Feature rows per layer, one per example.</summary>
    public IReadOnlyDictionary<int, float[][]> Rows { get; }

    /// <summary>The layers present, embedding first.</summary>
    public IEnumerable<int> LayerIndices => Rows.Keys.Order();

    /// <summary>
    /// Runs each sentence of <paramref name="dataset"/> through <paramref name="model"/> (BOS first, as the tokenizer
    /// encodes it) and keeps, at the embedding and at each layer of <paramref name="options"/>, the activation at
    /// <see cref="ProbeOptions.Point"/> of the last token or the mean over positions.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A layer does not exist in the model.</exception>
    /// <exception cref="ProbeDataException">A sentence encodes to no tokens or to more than the model's context.</exception>
    public static ProbeFeatures Capture(Model model, ProbeDataset dataset, ProbeOptions options, WorkerPool? pool = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(dataset);
        options.Validate();
        int[] layers = LayerProbe.ResolveLayers(options.Layers, model.Config.Layers);
        var encoded = dataset.Examples.Select(e => model.Tokenizer.Encode(e.Sentence).ToArray()).ToArray();
        int longest = encoded.Max(t => t.Length);
        for (int i = 0; i < encoded.Length; i++)
        {
            if (encoded[i].Length == 0)
                throw new ProbeDataException(dataset.Path, dataset.Examples[i].Line, "the sentence encodes to no tokens");
            if (encoded[i].Length > model.Config.ContextLength)
                throw new ProbeDataException(dataset.Path, dataset.Examples[i].Line,
                    $"the sentence is {encoded[i].Length} tokens but the model's context holds {model.Config.ContextLength}");
        }

        var transformer = model.CreateTransformer(longest, pool);
        var rows = new Dictionary<int, float[][]> { [LayerProbe.EmbeddingLayer] = new float[encoded.Length][] };
        foreach (int layer in layers) rows[layer] = new float[encoded.Length][];
        ActivationPoint[] points = [ActivationPoint.ResidPre, options.Point];
        for (int i = 0; i < encoded.Length; i++)
        {
            // Every sentence starts at position 0, so it sees only its own keys in the cache.
            var capture = ActivationCapture.Run(transformer, encoded[i], 0, points);
            rows[LayerProbe.EmbeddingLayer][i] = Pool(capture, ActivationPoint.ResidPre, 0, encoded[i].Length, options.Position);
            foreach (int layer in layers)
                rows[layer][i] = Pool(capture, options.Point, layer, encoded[i].Length, options.Position);
        }
        return new ProbeFeatures(dataset.Labels, rows);
    }

    private static float[] Pool(ActivationCapture capture, ActivationPoint point, int layer, int length, ProbePosition position)
    {
        if (position == ProbePosition.LastToken) return capture.Get(point, layer, length - 1);
        var mean = new float[capture.Get(point, layer, 0).Length];
        for (int pos = 0; pos < length; pos++)
        {
            var v = capture.Get(point, layer, pos);
            for (int j = 0; j < mean.Length; j++) mean[j] += v[j];
        }
        for (int j = 0; j < mean.Length; j++) mean[j] /= length;
        return mean;
    }
}
