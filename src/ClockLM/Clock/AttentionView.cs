namespace ClockLM.Clock;

/// <summary>One head's attention for the current token: its weights over positions 0..pos and their entropy.</summary>
/// <param name="Layer">Layer.</param>
/// <param name="Head">Query head.</param>
/// <param name="Position">Position of the attending token.</param>
/// <param name="Weights">Weights over positions 0..Position (they sum to 1).</param>
public sealed record HeadAttention(int Layer, int Head, int Position, float[] Weights)
{
    /// <summary>Shannon entropy of the weights in nats: 0 when one position takes everything, ln(pos+1) when uniform.</summary>
    public double Entropy
    {
        get
        {
            double h = 0;
            foreach (float w in Weights)
                if (w > 0) h -= w * Math.Log(w);
            return h;
        }
    }

    /// <summary>The position this head attends to most, and its weight.</summary>
    public (int Position, float Weight) Strongest
    {
        get
        {
            int best = 0;
            for (int t = 1; t < Weights.Length; t++)
                if (Weights[t] > Weights[best]) best = t;
            return (best, Weights[best]);
        }
    }

    /// <summary>Splits a captured <see cref="ActivationPoint.AttentionPattern"/> (heads, pos+1) into one view per head.</summary>
    public static HeadAttention[] FromPattern(int layer, int position, ReadOnlySpan<float> pattern, int heads)
    {
        int n = position + 1;
        if (pattern.Length != heads * n)
            throw new ArgumentException($"an attention pattern at position {position} with {heads} heads has {heads * n} values, not {pattern.Length}", nameof(pattern));
        var views = new HeadAttention[heads];
        for (int h = 0; h < heads; h++)
            views[h] = new HeadAttention(layer, h, position, pattern.Slice(h * n, n).ToArray());
        return views;
    }
}
