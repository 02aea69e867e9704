using ClockLM.Models;

namespace ClockLM.Generation;

/// <summary>
/// Text embeddings from a causal model: each token's final hidden state (the residual stream after the last cycle,
/// through the final RMSNorm, i.e. what the output head reads) is averaged over the tokens, and the mean is scaled to
/// unit length: e = m / |m|, m = (1/n) Σ_t rmsnorm(x_t). A text of no tokens has no embedding.
/// </summary>
public static class MeanPooling
{
    /// <summary>The embedding of <paramref name="ids"/> (dim floats), run from position 0 on <paramref name="transformer"/>,
    /// whose KV cache it overwrites. Not thread-safe: one text at a time per transformer.</summary>
    /// <exception cref="ArgumentException">No ids, or more than the transformer's context holds.</exception>
    public static float[] Embed(Model model, Transformer transformer, ReadOnlySpan<int> ids)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(transformer);
        if (ids.Length == 0) throw new ArgumentException("there are no tokens to embed", nameof(ids));
        if (ids.Length > transformer.ContextLength)
            throw new ArgumentException($"the text is {ids.Length} tokens but the context holds {transformer.ContextLength}", nameof(ids));
        int dim = model.Config.Dim;
        var sum = new double[dim];    // (dim) Σ_t rmsnorm(x_t), in double so long texts do not lose the small terms
        var normed = new float[dim];  // (dim)
        for (int pos = 0; pos < ids.Length; pos++)
        {
            transformer.Forward(ids[pos], pos);
            Transformer.RmsNorm(normed, transformer.Residual, model.Weights.FinalNorm, model.Config.RmsEpsilon);
            for (int i = 0; i < dim; i++) sum[i] += normed[i];
        }
        // The 1/n of the mean cancels in the scaling to unit length.
        double length = Math.Sqrt(sum.Sum(v => v * v));
        var embedding = new float[dim];
        for (int i = 0; i < dim; i++) embedding[i] = length == 0 ? 0 : (float)(sum[i] / length);
        return embedding;
    }
}
