namespace ClockLM.Generation;

/// <summary>Proposes the tokens likely to follow a sequence, for the model to verify in one pass
/// (<see cref="SpeculativeDecoder"/>). A drafter may be wrong as often as it likes: a wrong draft costs time, never
/// changes the output.</summary>
public interface IDrafter
{
    /// <summary>Writes up to <paramref name="draft"/>.Length tokens that may follow <paramref name="tokens"/> (the whole
    /// sequence so far: the prompt, the tokens generated, and last the token about to run) and returns how many.</summary>
    int Draft(ReadOnlySpan<int> tokens, Span<int> draft);
}
