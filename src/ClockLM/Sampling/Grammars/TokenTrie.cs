using System.Runtime.CompilerServices;
using ClockLM.Tokenizers;

namespace ClockLM.Sampling.Grammars;

/// <summary>
/// A model's vocabulary as a trie of the tokens' bytes, laid out in depth-first order so that a grammar can be walked
/// down it in one forward pass: node i has a byte, a depth and the index just past its subtree, so a prefix the
/// grammar rejects skips its whole subtree (every token that starts with it) in one jump. Tokens whose text is empty
/// (control tokens) are not in the trie; end-of-generation tokens are listed apart.
/// Built once per tokenizer (<see cref="For"/>) and shared; immutable.
/// </summary>
public sealed class TokenTrie
{
    private static readonly ConditionalWeakTable<Tokenizer, TokenTrie> Built = new();

    // Nodes in depth-first order (the root is implicit, before node 0).
    private readonly byte[] _byte;          // (nodes) the byte leading into the node
    private readonly int[] _depth;          // (nodes) 1 for the root's children
    private readonly int[] _subtreeEnd;     // (nodes) first node after this node's subtree
    private readonly int[] _tokenStart;     // (nodes + 1) tokens ending at node i are _tokens[_tokenStart[i].._tokenStart[i+1]]
    private readonly int[] _tokens;
    // Each token's bytes.
    private readonly byte[] _bytes;
    private readonly int[] _bytesStart;     // (vocab + 1)

    private TokenTrie(Tokenizer tokenizer, int vocabSize)
    {
        VocabSize = vocabSize;
        int known = Math.Min(vocabSize, tokenizer.VocabSize);
        var all = new List<byte>();
        _bytesStart = new int[vocabSize + 1];
        var pieces = new List<byte>();
        var endIds = new List<int>();
        // Each token as it reads after an ordinary token (so SentencePiece keeps its leading space).
        int ordinary = tokenizer.BosId == 0 ? 1 : 0;
        for (int id = 0; id < vocabSize; id++)
        {
            _bytesStart[id] = all.Count;
            if (id >= known) continue;
            if (tokenizer.IsEndOfGeneration(id)) { endIds.Add(id); continue; }
            pieces.Clear();
            tokenizer.AppendBytes(id, ordinary, pieces);
            all.AddRange(pieces);
        }
        _bytesStart[vocabSize] = all.Count;
        _bytes = all.ToArray();
        EndOfGenerationIds = endIds.ToArray();

        // Sorted by bytes, tokens come in depth-first order of the trie; each adds the nodes past its common prefix
        // with the token before it.
        var order = Enumerable.Range(0, vocabSize).Where(id => _bytesStart[id + 1] > _bytesStart[id]).ToArray();
        Array.Sort(order, (a, b) =>
        {
            int c = TokenBytes(a).SequenceCompareTo(TokenBytes(b));
            return c != 0 ? c : a.CompareTo(b);
        });
        var nodeByte = new List<byte>();
        var depth = new List<int>();
        var end = new List<int>();
        var tokenStart = new List<int>();
        var tokens = new List<int>(order.Length);
        var open = new List<int>(); // open[d - 1] = node at depth d on the current path
        ReadOnlySpan<byte> previous = default;
        foreach (int id in order)
        {
            var bytes = TokenBytes(id);
            int common = 0;
            while (common < previous.Length && common < bytes.Length && previous[common] == bytes[common]) common++;
            for (int d = open.Count; d > common; d--) end[open[d - 1]] = nodeByte.Count;
            open.RemoveRange(common, open.Count - common);
            for (int d = common; d < bytes.Length; d++)
            {
                open.Add(nodeByte.Count);
                nodeByte.Add(bytes[d]);
                depth.Add(d + 1);
                end.Add(0);
                tokenStart.Add(tokens.Count);
            }
            tokens.Add(id);
            previous = bytes;
        }
        foreach (int node in open) end[node] = nodeByte.Count;
        tokenStart.Add(tokens.Count);
        _byte = nodeByte.ToArray();
        _depth = depth.ToArray();
        _subtreeEnd = end.ToArray();
        _tokenStart = tokenStart.ToArray();
        _tokens = tokens.ToArray();
        MaxDepth = _depth.Length == 0 ? 0 : _depth.Max();
    }

    /// <summary>The trie of <paramref name="tokenizer"/>'s vocabulary for a model of <paramref name="vocabSize"/> logits
    /// (ids the tokenizer lacks are never allowed); built on first use and kept while the tokenizer lives.</summary>
    public static TokenTrie For(Tokenizer tokenizer, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        lock (Built)
        {
            if (Built.TryGetValue(tokenizer, out var trie) && trie.VocabSize == vocabSize) return trie;
            trie = new TokenTrie(tokenizer, vocabSize);
            Built.AddOrUpdate(tokenizer, trie);
            return trie;
        }
    }

    /// <summary>Logits (token ids) the model has.</summary>
    public int VocabSize { get; }

    /// <summary>Nodes below the root.</summary>
    public int NodeCount => _byte.Length;

    /// <summary>The longest token, in bytes.</summary>
    public int MaxDepth { get; }

    /// <summary>Tokens that end the generation (allowed when the grammar is complete).</summary>
    public int[] EndOfGenerationIds { get; }

    /// <summary>The bytes of token <paramref name="id"/> (empty for control and end-of-generation tokens).</summary>
    public ReadOnlySpan<byte> TokenBytes(int id) => _bytes.AsSpan(_bytesStart[id], _bytesStart[id + 1] - _bytesStart[id]);

    internal ReadOnlySpan<byte> NodeBytes => _byte;
    internal ReadOnlySpan<int> NodeDepths => _depth;
    internal ReadOnlySpan<int> SubtreeEnds => _subtreeEnd;
    internal ReadOnlySpan<int> TokenStarts => _tokenStart;
    internal ReadOnlySpan<int> Tokens => _tokens;
}
