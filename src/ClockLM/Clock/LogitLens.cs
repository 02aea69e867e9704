using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Clock;

/// <summary>A token and its probability.</summary>
public readonly record struct TokenProbability(int Token, float Probability);

/// <summary>
/// The logit lens: what the model would say if execution stopped after a cycle. The final norm and the output head
/// are applied to the residual stream as the commit would, and softmax gives a distribution over the vocabulary.
/// After the last cycle this is exactly the model's output distribution.
/// </summary>
public sealed class LogitLens
{
    private readonly LlamaWeights _weights;
    private readonly LlamaConfig _config;
    private readonly float[] _normed;
    private readonly float[] _probabilities;

    /// <summary>A lens over <paramref name="transformer"/>'s final norm and output head.</summary>
    public LogitLens(Transformer transformer)
    {
        _weights = transformer.Weights;
        _config = transformer.Config;
        _normed = new float[_config.Dim];
        _probabilities = new float[_config.VocabSize];
    }

    /// <summary>softmax(output_head(rmsnorm(residual))) over the vocabulary. The span is overwritten by the next call.</summary>
    public ReadOnlySpan<float> Probabilities(ReadOnlySpan<float> residual)
    {
        if (residual.Length != _config.Dim)
            throw new ArgumentException($"the residual stream has {residual.Length} values, expected dim {_config.Dim}", nameof(residual));
        Transformer.RmsNorm(_normed, residual, _weights.FinalNorm, _config.RmsEpsilon);
        MatVec.Multiply(_weights.Output, _normed, _probabilities, null, _weights.Kernels);
        Transformer.Softmax(_probabilities);
        return _probabilities;
    }

    /// <summary>The <paramref name="k"/> most likely tokens after <paramref name="residual"/>, most likely first.</summary>
    public TokenProbability[] Top(ReadOnlySpan<float> residual, int k) => TopK(Probabilities(residual), k);

    /// <summary>The <paramref name="k"/> largest entries of <paramref name="probabilities"/>, largest first (ties: lower id first).</summary>
    public static TokenProbability[] TopK(ReadOnlySpan<float> probabilities, int k)
    {
        k = Math.Clamp(k, 0, probabilities.Length);
        var top = new TokenProbability[k];
        int count = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            float p = probabilities[i];
            if (count == k && (k == 0 || p <= top[k - 1].Probability)) continue;
            int at = count < k ? count++ : k - 1;
            while (at > 0 && top[at - 1].Probability < p) { top[at] = top[at - 1]; at--; }
            top[at] = new TokenProbability(i, p);
        }
        return top;
    }
}
