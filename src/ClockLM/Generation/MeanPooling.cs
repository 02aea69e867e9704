using ClockLM.Clock;
using ClockLM.Models;

namespace ClockLM.Generation;

/// <summary>
/// Text embeddings from a causal model: each token's final hidden state (the residual stream after the last cycle,
/// through the final RMSNorm, i.e. what the output head reads) is averaged over the tokens, and the mean is scaled to
/// unit length: e = m / |m|, m = (1/n) Σ_t rmsnorm(x_t). A text of no tokens has no embedding. An instance adds up the
/// hidden states as the last cycle's <see cref="ActivationPoint.ResidPost"/> hook hands them over, token by token in
/// position order, so the server's scheduler can read a text a chunk per round and get the same bits as
/// <see cref="Embed"/>.
/// </summary>
public sealed class MeanPooling(Model model)
{
    private readonly double[] _sum = new double[model.Config.Dim];  // (dim) Σ_t rmsnorm(x_t), in double so long texts keep the small terms
    private readonly float[] _normed = new float[model.Config.Dim]; // (dim)

    /// <summary>Adds one token's residual stream after the last cycle (dim), the token at <paramref name="position"/>.</summary>
    /// <exception cref="NonFiniteOutputException">The hidden state is not finite (a model with NaN or infinite weights).</exception>
    public void Add(ReadOnlySpan<float> residual, int position)
    {
        Transformer.RmsNorm(_normed, residual, model.Weights.FinalNorm, model.Config.RmsEpsilon);
        NonFiniteOutputException.ThrowIfNotFinite(_normed, "hidden state", position);
        for (int i = 0; i < _sum.Length; i++) _sum[i] += _normed[i];
    }

    /// <summary>The mean direction, unit length (dim); zeros when the sum is zero. The 1/n of the mean cancels in the
    /// scaling to unit length.</summary>
    public float[] ToVector()
    {
        double length = Math.Sqrt(_sum.Sum(v => v * v));
        var embedding = new float[_sum.Length];
        for (int i = 0; i < embedding.Length; i++) embedding[i] = length == 0 ? 0 : (float)(_sum[i] / length);
        return embedding;
    }

    /// <summary>The embedding of <paramref name="ids"/> (dim floats), run from position 0 on <paramref name="transformer"/>
    /// (in its prompt chunks), whose KV cache it overwrites. Not thread-safe: one text at a time per transformer.</summary>
    /// <exception cref="ArgumentException">No ids, or more than the transformer's context holds.</exception>
    public static float[] Embed(Model model, Transformer transformer, ReadOnlySpan<int> ids)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(transformer);
        if (ids.Length == 0) throw new ArgumentException("there are no tokens to embed", nameof(ids));
        if (ids.Length > transformer.ContextLength)
            throw new ArgumentException($"the text is {ids.Length} tokens but the context holds {transformer.ContextLength}", nameof(ids));
        var pooling = new MeanPooling(model);
        int last = model.Config.Layers - 1;
        transformer.Run(ids, (point, layer, position, activation) =>
        {
            if (point == ActivationPoint.ResidPost && layer == last) pooling.Add(activation, position);
        });
        return pooling.ToVector();
    }
}
