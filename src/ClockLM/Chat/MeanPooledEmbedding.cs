using ClockLM.Models;

namespace ClockLM.Chat;

/// <summary>
/// A text embedding from a causal model: each token's final hidden state (the residual stream after the last cycle,
/// through the final RMSNorm, i.e. what the output head reads) is summed over the tokens, and the mean is scaled to
/// unit length. Fed one token at a time by the last cycle's <see cref="Clock.ActivationPoint.ResidPost"/> hook.
/// </summary>
internal sealed class MeanPooledEmbedding(Model model)
{
    private readonly double[] _sum = new double[model.Config.Dim];
    private readonly float[] _normed = new float[model.Config.Dim];

    /// <summary>Adds one token's residual stream after the last cycle (dim).</summary>
    public void Add(ReadOnlySpan<float> residual, int position)
    {
        Transformer.RmsNorm(_normed, residual, model.Weights.FinalNorm, model.Config.RmsEpsilon);
        NonFiniteOutputException.ThrowIfNotFinite(_normed, "hidden state", position);
        for (int i = 0; i < _sum.Length; i++) _sum[i] += _normed[i];
    }

    /// <summary>The mean direction, unit length (dim); zeros when the sum is zero.</summary>
    public float[] ToVector()
    {
        double length = Math.Sqrt(_sum.Sum(v => v * v));
        var embedding = new float[_sum.Length];
        for (int i = 0; i < embedding.Length; i++) embedding[i] = length == 0 ? 0 : (float)(_sum[i] / length);
        return embedding;
    }
}
