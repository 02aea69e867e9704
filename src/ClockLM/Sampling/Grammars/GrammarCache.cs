namespace ClockLM.Sampling.Grammars;

/// <summary>
/// Compiled grammars by their GBNF text, so that requests with the same schema share one <see cref="Grammar"/> and
/// with it the cached allowed-token sets of its states. Holds at most <see cref="Capacity"/> grammars (cleared when full).
/// </summary>
public static class GrammarCache
{
    /// <summary>Most grammars kept.</summary>
    public const int Capacity = 64;

    private static readonly Dictionary<string, Grammar> Compiled = new();

    /// <summary>The compiled grammar of <paramref name="gbnf"/>, compiled on first use.</summary>
    /// <exception cref="GrammarException">The text is not a valid grammar.</exception>
    public static Grammar Get(string gbnf)
    {
        ArgumentNullException.ThrowIfNull(gbnf);
        lock (Compiled)
            if (Compiled.TryGetValue(gbnf, out var known)) return known;
        var grammar = Grammar.Parse(gbnf);
        lock (Compiled)
        {
            if (Compiled.Count >= Capacity) Compiled.Clear();
            Compiled[gbnf] = grammar;
        }
        return grammar;
    }
}
