namespace ClockLM.Models;

/// <summary>
/// The model computed NaN or infinity where a finite number was needed (logits, hidden states): its weights hold NaN
/// or infinity, or its activations overflowed. No token can be chosen from such logits, and neither their
/// log-probabilities nor such an embedding can be reported.
/// </summary>
public sealed class NonFiniteOutputException(string what, int position, int index, float value)
    : Exception($"the model computed {Describe(value)} {what} (entry {index} at position {position}): " +
        "its weights hold NaN or infinity, or its activations overflow")
{
    /// <summary>The position whose output was computed.</summary>
    public int Position { get; } = position;

    /// <summary>The entry of the first bad value (a vocabulary id for logits; -1 when every logit is -infinity).</summary>
    public int Index { get; } = index;

    /// <summary>
    /// Throws when <paramref name="logits"/> (vocab) hold NaN or +infinity, or no finite value. -infinity alone is
    /// allowed: it is how a token is ruled out.
    /// </summary>
    public static void ThrowIfBadLogits(ReadOnlySpan<float> logits, int position)
    {
        bool anyFinite = false;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (float.IsNaN(v) || float.IsPositiveInfinity(v)) throw new NonFiniteOutputException("logit", position, i, v);
            anyFinite |= !float.IsNegativeInfinity(v);
        }
        if (!anyFinite) throw new NonFiniteOutputException("logits", position, -1, float.NegativeInfinity);
    }

    /// <summary>Throws when any of <paramref name="values"/> is NaN or infinite.</summary>
    public static void ThrowIfNotFinite(ReadOnlySpan<float> values, string what, int position)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) throw new NonFiniteOutputException(what, position, i, values[i]);
    }

    // "the model computed NaN for a logit", "... -infinity for every logit".
    private static string Describe(float v) =>
        float.IsNaN(v) ? "NaN for a" : float.IsPositiveInfinity(v) ? "+infinity for a" : "-infinity for every";
}
