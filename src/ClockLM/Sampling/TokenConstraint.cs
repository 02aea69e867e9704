namespace ClockLM.Sampling;

/// <summary>
/// A rule over which tokens may come next (a grammar, a JSON schema), consulted by a <see cref="Sampler"/> at every
/// step. One instance follows one sequence: it is told each token the sampler commits and moves its state on.
/// </summary>
public abstract class TokenConstraint
{
    /// <summary>True when <paramref name="token"/> may come next.</summary>
    public abstract bool Allows(int token);

    /// <summary>
    /// The tokens that may come next, one bit per token id (bit <c>id % 64</c> of word <c>id / 64</c>); the span stays
    /// valid until the next <see cref="Accept"/>. Never all zero: when nothing can continue, end-of-generation is allowed.
    /// </summary>
    public abstract ReadOnlySpan<ulong> AllowedTokens();

    /// <summary>Moves the state past <paramref name="token"/>, which must be allowed.</summary>
    public abstract void Accept(int token);

    /// <summary>True when the text so far is a complete match, so the sequence may end here.</summary>
    public abstract bool IsComplete { get; }
}
