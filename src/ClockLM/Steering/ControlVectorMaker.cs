using ClockLM.Clock;
using ClockLM.Models;

namespace ClockLM.Steering;

/// <summary>How a control vector's direction is drawn from the paired differences of residual streams.</summary>
public enum ControlVectorMethod
{
    /// <summary>The mean of the differences, at unit length.</summary>
    Mean,
    /// <summary>The first principal component of the differences (uncentered, as llama.cpp's cvector-generator takes
    /// it), at unit length, pointing the way the mean difference points.</summary>
    Pca,
}

/// <summary>Settings of <see cref="ControlVectorMaker.Make"/>.</summary>
public sealed record ControlVectorOptions
{
    /// <summary>How each layer's direction is drawn from the differences.</summary>
    public ControlVectorMethod Method { get; init; } = ControlVectorMethod.Mean;

    /// <summary>First layer to write a direction for (1 or more: layer 0 is never steered).</summary>
    public int FirstLayer { get; init; } = 1;

    /// <summary>Last layer to write a direction for; the model's last layer when null.</summary>
    public int? LastLayer { get; init; }

    /// <summary>Most power-iteration steps of <see cref="ControlVectorMethod.Pca"/> (llama.cpp's default).</summary>
    public int PcaIterations { get; init; } = 1000;
}

/// <summary>
/// Makes a control vector from pairs of prompts, as llama.cpp's <c>cvector-generator</c> does: each pair (a positive and a
/// negative prompt, the shorter padded with the token of a space) runs through the model; at every position the
/// residual stream of the negative prompt is subtracted from the positive one's; positions where the two agree are
/// dropped; and each layer's differences become one direction (their mean, or their first principal component), at
/// unit length.
/// </summary>
/// <remarks>
/// The direction of layer N (<c>direction.N</c>, added to layer N's output) is drawn from the residual stream that
/// enters layer N, <c>blocks.{N}.hook_resid_pre</c> = <c>blocks.{N-1}.hook_resid_post</c>: llama.cpp's generator
/// captures the output of layer N-1 for it, and repeng reads the same hidden state (its <c>hidden_states[N]</c>), so a
/// vector made here steers as one made by either tool would.
/// </remarks>
public static class ControlVectorMaker
{
    /// <summary>Makes a control vector for <paramref name="model"/> from <paramref name="positive"/>[i] against
    /// <paramref name="negative"/>[i].</summary>
    /// <exception cref="ArgumentException">The lists differ in length or are empty, a prompt has no tokens or does not fit
    /// the context, or the layers are outside 1..layers-1.</exception>
    public static ControlVector Make(Model model, IReadOnlyList<string> positive, IReadOnlyList<string> negative, ControlVectorOptions? options = null)
    {
        options ??= new ControlVectorOptions();
        var c = model.Config;
        int first = options.FirstLayer, last = options.LastLayer ?? c.Layers - 1;
        if (c.Layers < 2) throw new ArgumentException($"the model has {c.Layers} layer; control vectors steer layers 1 and up");
        if (first < 1 || last < first || last >= c.Layers)
            throw new ArgumentException($"layers {first}-{last}: expected 1 <= first <= last <= {c.Layers - 1}");
        if (positive.Count != negative.Count)
            throw new ArgumentException($"{positive.Count} positive prompts but {negative.Count} negative ones; they go in pairs");
        if (positive.Count == 0) throw new ArgumentException("no prompt pairs");

        // The pad token: a space, as llama.cpp pads (the last token of " " without BOS).
        var spaceTokens = model.Tokenizer.Encode(" ", addSpecial: false);
        if (spaceTokens.Count == 0) throw new ArgumentException("the tokenizer encodes a space as no token, so prompts of different lengths cannot be padded");
        int pad = spaceTokens[^1];

        int layers = last - first + 1;
        var sums = new double[layers][];       // (layers, dim): the mean's running sums
        var rows = new List<float[]>[layers];  // (layers) of (differences, dim) for PCA
        for (int l = 0; l < layers; l++) (sums[l], rows[l]) = (new double[c.Dim], []);
        var counts = new int[layers];
        int longest = positive.Concat(negative).Max(p => model.Tokenizer.Encode(p).Count);
        if (longest > c.ContextLength) throw new ArgumentException($"a prompt is {longest} tokens but the model's context holds {c.ContextLength}");
        var transformer = model.CreateTransformer(Math.Max(longest, 1));
        for (int i = 0; i < positive.Count; i++)
        {
            var pos = model.Tokenizer.Encode(positive[i]);
            var neg = model.Tokenizer.Encode(negative[i]);
            if (pos.Count == 0 || neg.Count == 0) throw new ArgumentException($"prompt pair {i + 1} has an empty prompt (no tokens)");
            int length = Math.Max(pos.Count, neg.Count);
            while (pos.Count < length) pos.Add(pad);
            while (neg.Count < length) neg.Add(pad);
            var a = ResidualStreams(transformer, pos, first, last);
            var b = ResidualStreams(transformer, neg, first, last);
            for (int l = 0; l < layers; l++)
                for (int p = 0; p < length; p++)
                {
                    var d = new float[c.Dim];
                    bool differs = false;
                    for (int j = 0; j < d.Length; j++)
                    {
                        d[j] = a[l][p][j] - b[l][p][j];
                        differs |= MathF.Abs(d[j]) > 1e-6f;
                    }
                    if (!differs) continue; // the prompts agree up to here (BOS, a shared prefix)
                    for (int j = 0; j < d.Length; j++) sums[l][j] += d[j];
                    counts[l]++;
                    if (options.Method == ControlVectorMethod.Pca) rows[l].Add(d);
                }
        }

        var directions = new Dictionary<int, float[]>();
        for (int l = 0; l < layers; l++)
        {
            if (counts[l] == 0) throw new ArgumentException($"every positive prompt's residual stream equals its negative one's at layer {first + l}: no difference to steer by");
            var mean = sums[l].Select(s => s / counts[l]).ToArray();
            double[] direction = options.Method == ControlVectorMethod.Mean ? mean : FirstPrincipalComponent(rows[l], mean, options.PcaIterations);
            double norm = Math.Sqrt(direction.Sum(v => v * v));
            directions[first + l] = direction.Select(v => (float)(v / norm)).ToArray();
        }
        return new ControlVector(directions, model.Gguf?.GetStringOrNull("general.architecture") ?? "llama");
    }

    /// <summary>The residual stream entering each layer first..last (= leaving the one before), per position:
    /// [layer - first][position] (dim floats).</summary>
    private static float[][][] ResidualStreams(Transformer transformer, List<int> tokens, int first, int last)
    {
        var streams = new float[last - first + 1][][];
        for (int l = 0; l < streams.Length; l++) streams[l] = new float[tokens.Count][];
        transformer.Run(tokens.ToArray(), (point, layer, position, activation) =>
        {
            if (point == ActivationPoint.ResidPost && layer + 1 >= first && layer + 1 <= last)
                streams[layer + 1 - first][position] = activation.ToArray();
        });
        return streams;
    }

    /// <summary>
    /// The unit eigenvector of Σ d dᵀ with the largest eigenvalue, by power iteration v ← Σ d (d · v) / |…| from the
    /// mean difference, until v moves less than 1e-7 (llama.cpp's tolerance) or <paramref name="iterations"/> steps;
    /// turned to point the way <paramref name="mean"/> does (an eigenvector's sign is arbitrary).
    /// </summary>
    internal static double[] FirstPrincipalComponent(List<float[]> rows, double[] mean, int iterations)
    {
        int dim = mean.Length;
        double[] v = Normalized(mean.All(x => x == 0) ? Enumerable.Range(0, dim).Select(i => i == 0 ? 1.0 : 0.0).ToArray() : mean);
        var next = new double[dim];
        for (int step = 0; step < iterations; step++)
        {
            Array.Clear(next);
            foreach (var d in rows)
            {
                double dot = 0;
                for (int j = 0; j < dim; j++) dot += d[j] * v[j];
                for (int j = 0; j < dim; j++) next[j] += d[j] * dot;
            }
            double[] moved = Normalized(next);
            double change = Math.Sqrt(moved.Zip(v, (x, y) => (x - y) * (x - y)).Sum());
            v = moved;
            if (change < 1e-7) break;
        }
        double alignment = v.Zip(mean, (x, y) => x * y).Sum();
        return alignment < 0 ? v.Select(x => -x).ToArray() : v;
    }

    private static double[] Normalized(double[] v)
    {
        double norm = Math.Sqrt(v.Sum(x => x * x));
        return norm == 0 ? (double[])v.Clone() : v.Select(x => x / norm).ToArray();
    }
}
