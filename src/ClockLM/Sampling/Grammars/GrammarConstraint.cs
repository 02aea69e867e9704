namespace ClockLM.Sampling.Grammars;

/// <summary>Counts of the work a <see cref="GrammarConstraint"/> did, for benchmarks and /metrics.</summary>
/// <param name="MaskComputations">Allowed-token sets computed by walking the token trie.</param>
/// <param name="MaskCacheHits">Allowed-token sets found in the cache (the state was seen before).</param>
/// <param name="TrieNodesVisited">Trie nodes the walks visited.</param>
/// <param name="States">Grammar states interned.</param>
/// <param name="Resets">Times the sequence moved to fresh state tables because the shared ones had grown too large.</param>
public sealed record GrammarConstraintStats(long MaskComputations, long MaskCacheHits, long TrieNodesVisited, int States, int Resets);

/// <summary>
/// Constrains one sequence to a <see cref="Grammar"/>. The tokens allowed at a state are found by walking the
/// vocabulary's <see cref="TokenTrie"/> together with the grammar's automaton: one step per trie node, and a prefix
/// the grammar rejects skips every token that starts with it. The result is cached per grammar state, and states
/// repeat (inside a JSON string every ordinary character leads back to the same state), so most steps cost one lookup.
/// Sequences that follow the same grammar object over the same vocabulary share these caches.
/// </summary>
public sealed class GrammarConstraint : TokenConstraint
{
    private GrammarTables _tables;
    private readonly TokenTrie _trie;
    private readonly int _words;
    private readonly int[] _walkStates;
    private int _state;
    private bool _ended;
    private long _computed, _hits, _visited;
    private int _resets;

    /// <summary>A constraint at the start of <paramref name="grammar"/>, over <paramref name="vocabulary"/>'s tokens.</summary>
    public GrammarConstraint(Grammar grammar, TokenTrie vocabulary)
    {
        ArgumentNullException.ThrowIfNull(grammar);
        ArgumentNullException.ThrowIfNull(vocabulary);
        Grammar = grammar;
        _trie = vocabulary;
        _tables = GrammarTables.For(grammar, vocabulary);
        _words = (vocabulary.VocabSize + 63) / 64;
        _walkStates = new int[vocabulary.MaxDepth + 1];
        _state = _tables.Automaton.Start;
    }

    /// <summary>The grammar in force.</summary>
    public Grammar Grammar { get; }

    /// <inheritdoc/>
    public override bool IsComplete
    {
        get { lock (_tables.Gate) return _tables.Automaton.Accepts(_state); }
    }

    /// <summary>The work done so far for this sequence (States: the shared automaton's).</summary>
    public GrammarConstraintStats Stats => new(_computed, _hits, _visited, _tables.Automaton.StateCount, _resets);

    /// <inheritdoc/>
    public override bool Allows(int token)
    {
        if ((uint)token >= (uint)_trie.VocabSize) return false;
        var bytes = _trie.TokenBytes(token);
        if (bytes.Length == 0) return IsAllowedBit(token);
        if (_ended) return false;
        lock (_tables.Gate) return _tables.Automaton.Step(_state, bytes) >= 0;
    }

    /// <inheritdoc/>
    public override ReadOnlySpan<ulong> AllowedTokens()
    {
        lock (_tables.Gate)
        {
            if (!_ended && _tables.Masks.TryGetValue(_state, out var cached))
            {
                _hits++;
                return cached;
            }
            var mask = new ulong[_words];
            if (!_ended) Walk(mask);
            bool any = mask.AsSpan().ContainsAnyExcept(0UL);
            if (_ended || _tables.Automaton.Accepts(_state) || !any)
                foreach (int id in _trie.EndOfGenerationIds) mask[id >> 6] |= 1UL << (id & 63);
            if (!_ended)
            {
                if (_tables.Masks.Count >= _tables.MaxMasks) _tables.Masks.Clear();
                _tables.Masks[_state] = mask;
            }
            _computed++;
            return mask;
        }
    }

    /// <inheritdoc/>
    public override void Accept(int token)
    {
        if ((uint)token >= (uint)_trie.VocabSize) throw new ArgumentOutOfRangeException(nameof(token), token, "not a token id of this vocabulary");
        var bytes = _trie.TokenBytes(token);
        if (bytes.Length == 0)
        {
            if (!IsAllowedBit(token)) throw new InvalidOperationException($"token {token} is not allowed by the grammar here");
            _ended = true;
            return;
        }
        lock (_tables.Gate)
        {
            int next = _ended ? GrammarAutomaton.Dead : _tables.Automaton.Step(_state, bytes);
            if (next < 0) throw new InvalidOperationException($"token {token} is not allowed by the grammar here");
            _state = next;
            if (!_tables.IsFull) return;
        }
        // The shared tables have grown too large: carry on with fresh ones.
        var fresh = GrammarTables.For(Grammar, _trie);
        lock (_tables.Gate)
            lock (fresh.Gate)
                _state = fresh.Automaton.Adopt(_tables.Automaton, _state);
        _tables = fresh;
        _resets++;
    }

    /// <summary>Whether the token's bit is set in the allowed set (end-of-generation tokens: when the text is complete,
    /// or when nothing else can follow).</summary>
    private bool IsAllowedBit(int token) => ((AllowedTokens()[token >> 6] >> (token & 63)) & 1) != 0;

    /// <summary>Sets the bit of every token whose bytes the grammar can match from the current state.</summary>
    private void Walk(ulong[] mask)
    {
        var automaton = _tables.Automaton;
        var nodeBytes = _trie.NodeBytes;
        var depths = _trie.NodeDepths;
        var ends = _trie.SubtreeEnds;
        var tokenStarts = _trie.TokenStarts;
        var tokens = _trie.Tokens;
        var states = _walkStates;
        states[0] = _state;
        int n = nodeBytes.Length, visited = 0;
        for (int i = 0; i < n;)
        {
            visited++;
            int depth = depths[i];
            int next = automaton.Step(states[depth - 1], nodeBytes[i]);
            if (next < 0)
            {
                i = ends[i]; // no token below this prefix can match
                continue;
            }
            states[depth] = next;
            for (int t = tokenStarts[i]; t < tokenStarts[i + 1]; t++) mask[tokens[t] >> 6] |= 1UL << (tokens[t] & 63);
            i++;
        }
        _visited += visited;
    }
}
