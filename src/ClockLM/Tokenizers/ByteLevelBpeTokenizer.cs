using System.Collections.Concurrent;
using System.Text;
using ClockLM.Gguf;
using ClockLM.Tokenizers.PreTokenizers;

namespace ClockLM.Tokenizers;

/// <summary>
/// Byte-level BPE (GGUF <c>tokenizer.ggml.model = "gpt2"</c>), tokenizing exactly as llama.cpp does.
/// The pipeline: special tokens written in the text are cut out (<see cref="SpecialTokenSplitter"/>); the rest is
/// split into words by the <see cref="PreTokenizer"/> named in <c>tokenizer.ggml.pre</c>; each word's UTF-8 bytes
/// start as one symbol per byte and adjacent symbols are merged, lowest merge rank first (leftmost on ties), until
/// no ranked pair is left; each final symbol is its vocabulary entry.
/// </summary>
public sealed class ByteLevelBpeTokenizer : Tokenizer
{
    // The word cache holds up to CacheLimit words (then starts afresh), each at most MaxCachedWord chars.
    private const int CacheLimit = 1 << 16;
    private const int MaxCachedWord = 256;

    private readonly string[] _pieces;
    private readonly TokenKind[] _kinds;
    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _idsBySpan;

    // Symbols are interned strings of the byte alphabet: each single byte, and both halves and the result of every merge.
    private readonly int[] _byteSymbol = new int[256];
    private readonly Dictionary<long, (int Rank, int Merged)> _merges = new(new PairKeyComparer());
    private readonly int[] _symbolToken;
    private readonly byte[][] _decoded;

    private readonly SpecialTokenSplitter _specials;
    private readonly ConcurrentDictionary<string, int[]> _wordCache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _wordCacheBySpan;
    private int _wordCacheSize;

    private ByteLevelBpeTokenizer(string[] pieces, TokenKind[] kinds, string[] merges, PreTokenizer preTokenizer,
        ISet<int> stripLeft, ISet<int> stripRight)
    {
        _pieces = pieces;
        _kinds = kinds;
        PreTokenizer = preTokenizer;
        IgnoreMerges = preTokenizer.IgnoresMerges;

        _ids = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        for (int id = 0; id < pieces.Length; id++)
            _ids[pieces[id]] = id; // a repeated piece maps to its last id
        _idsBySpan = _ids.GetAlternateLookup<ReadOnlySpan<char>>();

        var symbols = new Dictionary<string, int>(StringComparer.Ordinal);
        var symbolTexts = new List<string>();
        int Intern(string s)
        {
            if (!symbols.TryGetValue(s, out int id))
            {
                id = symbolTexts.Count;
                symbols.Add(s, id);
                symbolTexts.Add(s);
            }
            return id;
        }
        for (int b = 0; b < 256; b++)
            _byteSymbol[b] = Intern(ByteLevelAlphabet.Encode((byte)b).ToString());
        for (int rank = 0; rank < merges.Length; rank++)
        {
            string merge = merges[rank];
            int space = merge.Length > 1 ? merge.IndexOf(' ', 1) : -1;
            if (space < 0)
                continue;
            string left = merge[..space], right = merge[(space + 1)..];
            long key = PairKey(Intern(left), Intern(right));
            _merges.TryAdd(key, (rank, Intern(left + right))); // the first rank of a repeated merge wins
        }
        _symbolToken = new int[symbolTexts.Count];
        for (int s = 0; s < symbolTexts.Count; s++)
            _symbolToken[s] = _ids.TryGetValue(symbolTexts[s], out int id) ? id : -1;

        _decoded = new byte[pieces.Length][];
        _specials = new SpecialTokenSplitter(pieces, kinds, stripLeft, stripRight);
        _wordCacheBySpan = _wordCache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The word splitter named by <c>tokenizer.ggml.pre</c>.</summary>
    public PreTokenizer PreTokenizer { get; }

    /// <summary>Whether a word that is itself a vocabulary entry is taken whole, without merging (Llama 3).</summary>
    public bool IgnoreMerges { get; }

    /// <summary>Unknown-token id (<c>tokenizer.ggml.unknown_token_id</c>), or -1.</summary>
    public int UnknownId { get; init; } = -1;

    /// <summary>Padding id (<c>tokenizer.ggml.padding_token_id</c>), or -1.</summary>
    public int PaddingId { get; init; } = -1;

    /// <inheritdoc/>
    public override int VocabSize => _pieces.Length;

    /// <summary>Reads the vocabulary from a GGUF file whose <c>tokenizer.ggml.model</c> is "gpt2".</summary>
    /// <exception cref="GgufFormatException">The tokenizer keys are missing, inconsistent or name an unknown pre-tokenizer.</exception>
    public static ByteLevelBpeTokenizer FromGguf(GgufFile file)
    {
        var vocabulary = GgufVocabulary.Read(file, "gpt2", "a byte-level BPE vocabulary");
        if (!file.Has("tokenizer.ggml.merges"))
            throw new GgufFormatException(file.Path, "tokenizer.ggml.merges is missing; a 'gpt2' vocabulary needs its merge list");
        string[] merges = file.GetArray<string>("tokenizer.ggml.merges");

        string? preName = file.GetStringOrNull("tokenizer.ggml.pre");
        PreTokenizer pre = PreTokenizer.ForName(preName)
            ?? throw new GgufFormatException(file.Path,
                $"tokenizer.ggml.pre is '{preName}'; ClockLM knows {string.Join(", ", PreTokenizer.KnownNames)}");

        // Llama 3, Tekken and Chameleon vocabularies add BOS unless the file says otherwise; other BPE vocabularies do not.
        bool addBos = pre.Name is "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "chameleon" or "tekken";
        // Without ids in the file, llama.cpp's BPE default is 11 for both (ChatGLM: no BOS).
        int bos = vocabulary.Id("tokenizer.ggml.bos_token_id", pre.Name is "chatglm-bpe" ? -1 : 11);
        int eos = vocabulary.Id("tokenizer.ggml.eos_token_id", 11);

        vocabulary.StripRules(out var stripLeft, out var stripRight);
        return new ByteLevelBpeTokenizer(vocabulary.Pieces, vocabulary.Kinds, merges, pre, stripLeft, stripRight)
        {
            BosId = bos,
            EosId = eos,
            UnknownId = vocabulary.Id("tokenizer.ggml.unknown_token_id", -1),
            PaddingId = vocabulary.Id("tokenizer.ggml.padding_token_id", -1),
            AddBos = file.GetBool("tokenizer.ggml.add_bos_token", addBos),
            AddEos = file.GetBool("tokenizer.ggml.add_eos_token", false),
            EndOfGenerationIds = vocabulary.EndOfGeneration(eos),
            LoadWarnings = vocabulary.Warnings,
        };
    }

    /// <inheritdoc/>
    public override string GetPiece(int id) => _pieces[CheckId(id)];

    /// <inheritdoc/>
    public override TokenKind GetKind(int id) => _kinds[CheckId(id)];

    /// <summary>The id of a vocabulary entry by its stored text, or -1.</summary>
    public int FindPiece(string piece) => _ids.TryGetValue(piece, out int id) ? id : -1;

    /// <inheritdoc/>
    public override List<int> Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>();
        if (addSpecial && AddBos)
            output.Add(BosId >= 0 ? BosId : throw new InvalidOperationException("the vocabulary asks for BOS but has no BOS id"));
        foreach (TextFragment fragment in _specials.Split(text, parseSpecial))
        {
            if (fragment.IsText)
                EncodeText(text.AsSpan(fragment.Start, fragment.Length), output);
            else
                output.Add(fragment.TokenId);
        }
        if (addSpecial && AddEos)
            output.Add(EosId >= 0 ? EosId : throw new InvalidOperationException("the vocabulary asks for EOS but has no EOS id"));
        return output;
    }

    /// <summary>Appends the ids of plain text (no special-token handling, no BOS/EOS).</summary>
    public void EncodeText(ReadOnlySpan<char> text, List<int> output)
    {
        int[] codepoints = UnicodeClasses.ToCodepoints(text);
        int[] utf16Start = Utf16Starts(text, codepoints.Length);
        int start = 0;
        foreach (int length in PreTokenizer.Split(codepoints))
        {
            ReadOnlySpan<char> word = text[utf16Start[start]..utf16Start[start + length]];
            if (word.Length > MaxCachedWord)
            {
                output.AddRange(EncodeWord(codepoints.AsSpan(start, length)));
            }
            else if (_wordCacheBySpan.TryGetValue(word, out int[]? cached))
            {
                output.AddRange(cached);
            }
            else
            {
                int[] ids = EncodeWord(codepoints.AsSpan(start, length));
                // (ConcurrentDictionary.Count takes every lock, so the size is counted here.)
                if (Interlocked.Increment(ref _wordCacheSize) > CacheLimit)
                {
                    _wordCache.Clear();
                    Interlocked.Exchange(ref _wordCacheSize, 0);
                }
                _wordCacheBySpan.TryAdd(word, ids);
                output.AddRange(ids);
            }
            start += length;
        }
    }

    /// <inheritdoc/>
    public override void AppendBytes(int id, int previous, List<byte> output)
    {
        byte[] bytes = _decoded[CheckId(id)] ??= DecodePiece(id);
        output.AddRange(bytes);
    }

    private byte[] DecodePiece(int id)
    {
        string piece = _pieces[id];
        switch (_kinds[id])
        {
            case TokenKind.Normal:
                var bytes = new List<byte>(piece.Length);
                foreach (Rune r in piece.EnumerateRunes())
                {
                    int b = r.IsBmp ? ByteLevelAlphabet.Decode((char)r.Value) : -1;
                    if (b >= 0)
                        bytes.Add((byte)b);
                    else // not a byte-alphabet character: shown the way llama.cpp shows it
                        bytes.AddRange(Encoding.UTF8.GetBytes($"[UNK_BYTE_0x{Convert.ToHexStringLower(Encoding.UTF8.GetBytes(r.ToString()))}{piece}]"));
                }
                return [.. bytes];
            case TokenKind.UserDefined:
                return Encoding.UTF8.GetBytes(piece);
            default: // control, unknown, unused, byte, undefined: no text
                return [];
        }
    }

    private int[] EncodeWord(ReadOnlySpan<int> codepoints)
    {
        int byteCount = 0;
        foreach (int cp in codepoints)
            byteCount += new Rune(cp).Utf8SequenceLength;
        var bytes = new byte[byteCount];
        int offset = 0;
        foreach (int cp in codepoints)
            offset += new Rune(cp).EncodeToUtf8(bytes.AsSpan(offset));

        if (IgnoreMerges && _idsBySpan.TryGetValue(ByteLevelAlphabet.Encode(bytes), out int whole))
            return [whole];
        return MergeBytes(bytes);
    }

    /// <summary>Merges the bytes of one word: symbols in a linked list, candidate pairs in a priority queue keyed by
    /// (rank, position); a popped pair whose symbols have changed since it was queued is skipped.</summary>
    private int[] MergeBytes(byte[] bytes)
    {
        int n = bytes.Length;
        var symbol = new int[n];
        var length = new int[n];
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            symbol[i] = _byteSymbol[bytes[i]];
            length[i] = 1;
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }

        // Priority: rank in the high half, left position in the low half, so ties go to the leftmost pair.
        var queue = new PriorityQueue<Bigram, long>();
        void Offer(int left, int right)
        {
            if (left < 0 || right < 0)
                return;
            if (_merges.TryGetValue(PairKey(symbol[left], symbol[right]), out var merge))
                queue.Enqueue(new Bigram(left, right, symbol[left], symbol[right], merge.Merged), ((long)merge.Rank << 32) | (uint)left);
        }
        for (int i = 0; i + 1 < n; i++)
            Offer(i, i + 1);

        while (queue.TryDequeue(out Bigram pair, out _))
        {
            int left = pair.Left, right = pair.Right;
            if (length[left] == 0 || length[right] == 0 || symbol[left] != pair.LeftSymbol || symbol[right] != pair.RightSymbol)
                continue;
            symbol[left] = pair.Merged;
            length[left] += length[right];
            length[right] = 0;
            next[left] = next[right];
            if (next[right] >= 0)
                prev[next[right]] = left;
            Offer(prev[left], left);
            Offer(left, next[left]);
        }

        var ids = new List<int>();
        for (int i = 0; i >= 0 && i < n; i = next[i])
        {
            int token = _symbolToken[symbol[i]];
            if (token >= 0)
            {
                ids.Add(token);
                continue;
            }
            // A symbol with no entry: llama.cpp looks up each byte of its alphabet text alone, which finds only the
            // printable ASCII bytes (the others are two UTF-8 bytes in the alphabet).
            for (int k = i; k < i + length[i]; k++)
                if (bytes[k] is >= 0x21 and <= 0x7E && _idsBySpan.TryGetValue([(char)bytes[k]], out int single))
                    ids.Add(single);
        }
        return [.. ids];
    }

    /// <summary>Adjacent symbols that a merge would join, with the symbols they held when queued.</summary>
    private readonly record struct Bigram(int Left, int Right, int LeftSymbol, int RightSymbol, int Merged);

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>long's own hash is high ^ low, which sends every pair (x, x) to the same bucket; mix the bits instead.</summary>
    private sealed class PairKeyComparer : IEqualityComparer<long>
    {
        public bool Equals(long a, long b) => a == b;
        public int GetHashCode(long key) => (int)((ulong)key * 0x9E3779B97F4A7C15UL >> 32);
    }

    private static int[] Utf16Starts(ReadOnlySpan<char> text, int codepointCount)
    {
        var starts = new int[codepointCount + 1];
        int i = 0, cp = 0;
        while (i < text.Length)
        {
            starts[cp++] = i;
            Rune.DecodeFromUtf16(text[i..], out _, out int used);
            i += used;
        }
        starts[cp] = text.Length;
        return starts;
    }

    private int CheckId(int id) =>
        (uint)id < (uint)_pieces.Length ? id : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id must be in [0, {_pieces.Length})");
}
