using System.Runtime.CompilerServices;

namespace ClockLM.Sampling.Grammars;

/// <summary>
/// What the sequences following one grammar over one vocabulary share: the automaton's states and transitions, and
/// the allowed-token set of every state walked so far. A server answering many requests with the same schema computes
/// each set once. Every use holds <see cref="Gate"/>. When the tables grow past <see cref="MaxStates"/> they are
/// retired: new sequences get fresh tables, and a sequence still on them moves its state over (<see cref="GrammarAutomaton.Adopt"/>).
/// </summary>
internal sealed class GrammarTables
{
    /// <summary>States above which tables are retired (the transition rows cost about 1 KB per state stepped from).</summary>
    public const int MaxStates = 65_536;

    private static readonly ConditionalWeakTable<Grammar, Dictionary<TokenTrie, GrammarTables>> Current = new();

    private GrammarTables(Grammar grammar, TokenTrie trie)
    {
        Automaton = new GrammarAutomaton(grammar);
        Trie = trie;
        // At most 32 MB of cached sets.
        MaxMasks = Math.Max(16, (32 << 20) / (((trie.VocabSize + 63) / 64) * 8));
    }

    public GrammarAutomaton Automaton { get; }
    public TokenTrie Trie { get; }
    public Dictionary<int, ulong[]> Masks { get; } = new();
    public int MaxMasks { get; }
    public object Gate { get; } = new();

    /// <summary>True once the automaton holds more than <see cref="MaxStates"/> states.</summary>
    public bool IsFull => Automaton.StateCount > MaxStates;

    /// <summary>The shared tables of <paramref name="grammar"/> over <paramref name="trie"/> (fresh ones when the
    /// current ones are full).</summary>
    public static GrammarTables For(Grammar grammar, TokenTrie trie)
    {
        var byTrie = Current.GetOrCreateValue(grammar);
        lock (byTrie)
        {
            if (byTrie.TryGetValue(trie, out var tables))
                lock (tables.Gate)
                    if (!tables.IsFull) return tables;
            tables = new GrammarTables(grammar, trie);
            byTrie[trie] = tables;
            return tables;
        }
    }
}
