using System.Text;
using ClockLM.Gguf;

namespace ClockLM.Tokenizers;

/// <summary>
/// SentencePiece-style BPE over a scored vocabulary, as llama.cpp runs its "llama" vocabulary type
/// (LLaMA 1/2, Mistral, Phi-3, TinyLlama, llama2.c models).
/// </summary>
/// <remarks>
/// <para>Encoding: the text is first cut around special tokens (control and unknown tokens only when
/// <c>parseSpecial</c> is set, user-defined tokens always). Each remaining piece of text gets a leading space when it
/// starts the input or follows a special token (<see cref="AddSpacePrefix"/>), has its spaces written as U+2581 '▁',
/// and is split into one symbol per character. Then, over and over, the adjacent pair of symbols whose concatenation
/// is a vocabulary entry with the highest score is merged (the leftmost pair wins a tie). A symbol left that is not in
/// the vocabulary is spelled with byte tokens <c>&lt;0xNN&gt;</c>, one per UTF-8 byte.</para>
/// <para>Decoding: '▁' becomes a space, a byte token is its byte, control and unknown tokens give no text, and the
/// space added in front of the text is dropped again from the first piece (at the start or right after BOS).</para>
/// <para>An instance does not change after construction and may be shared between threads.</para>
/// </remarks>
public sealed class SentencePieceTokenizer : Tokenizer
{
    /// <summary>The character SentencePiece writes in place of a space (U+2581 LOWER ONE EIGHTH BLOCK).</summary>
    public const char SpaceMarker = '\u2581';

    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly TokenKind[] _kinds;
    private readonly byte[][] _output;                       // bytes each token contributes to decoded text
    private readonly Dictionary<string, int> _ids;           // piece -> id (a later duplicate wins, as in llama.cpp)
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _idsBySpan;
    private readonly int[] _byteTokens = new int[256];       // byte -> its <0xNN> token, or -1
    private readonly int[] _specialTokens;                   // control, user-defined and unknown ids, longest first
    private readonly bool[] _stripRight;                     // special tokens that swallow the whitespace after them

    /// <summary>Builds a tokenizer from a vocabulary given as plain arrays (index = token id).</summary>
    /// <param name="pieces">Vocabulary entries as SentencePiece writes them: spaces as '▁', bytes as <c>&lt;0xNN&gt;</c>.</param>
    /// <param name="scores">Merge priority of each entry (higher merges first).</param>
    /// <param name="kinds">Kind of each entry; <see cref="TokenKind.Byte"/> entries must read <c>&lt;0xNN&gt;</c>.</param>
    /// <param name="bosId">Beginning-of-sequence id, or -1.</param>
    /// <param name="eosId">End-of-sequence id, or -1.</param>
    /// <param name="unknownId">Id used for a character that has neither an entry nor byte tokens, or -1.</param>
    /// <param name="paddingId">Padding id, or -1.</param>
    /// <param name="addBos">Whether <see cref="Encode"/> with addSpecial puts BOS first.</param>
    /// <param name="addEos">Whether <see cref="Encode"/> with addSpecial puts EOS last.</param>
    /// <param name="addSpacePrefix">Whether text gets a leading space before encoding (and loses it in decoding).</param>
    /// <param name="stripRightOfSpecial">Ids of special tokens that swallow the whitespace after them when found in text
    /// (llama.cpp sets this for Phi-3's chat tokens); null for none.</param>
    /// <param name="endOfGeneration">Ids that end generation; null for just <paramref name="eosId"/>.</param>
    /// <exception cref="ArgumentException">Arrays of different lengths, an empty vocabulary, an id out of range, or a
    /// byte entry that does not read <c>&lt;0xNN&gt;</c>.</exception>
    public SentencePieceTokenizer(
        IReadOnlyList<string> pieces, IReadOnlyList<float> scores, IReadOnlyList<TokenKind> kinds,
        int bosId = 1, int eosId = 2, int unknownId = 0, int paddingId = -1,
        bool addBos = true, bool addEos = false, bool addSpacePrefix = true,
        IEnumerable<int>? stripRightOfSpecial = null, IEnumerable<int>? endOfGeneration = null)
    {
        int n = pieces.Count;
        if (n == 0)
            throw new ArgumentException("the vocabulary is empty", nameof(pieces));
        if (scores.Count != n)
            throw new ArgumentException($"{scores.Count} scores for {n} pieces", nameof(scores));
        if (kinds.Count != n)
            throw new ArgumentException($"{kinds.Count} token kinds for {n} pieces", nameof(kinds));
        CheckId(bosId, n, nameof(bosId));
        CheckId(eosId, n, nameof(eosId));
        CheckId(unknownId, n, nameof(unknownId));
        CheckId(paddingId, n, nameof(paddingId));

        _pieces = new string[n];
        _scores = new float[n];
        _kinds = new TokenKind[n];
        _output = new byte[n][];
        _ids = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (int id = 0; id < n; id++)
        {
            string piece = pieces[id] ?? throw new ArgumentException($"piece {id} is null", nameof(pieces));
            if (piece.Length == 0)
                piece = $"[EMPTY_{id}]"; // as llama.cpp names empty entries, so that every id keeps a distinct text
            _pieces[id] = piece;
            _scores[id] = scores[id];
            _kinds[id] = kinds[id];
            _ids[piece] = id;
        }
        _idsBySpan = _ids.GetAlternateLookup<ReadOnlySpan<char>>();

        for (int id = 0; id < n; id++)
            _output[id] = OutputBytes(id);

        // Byte fallback: <0xNN> when present, else (for ASCII) the character itself, as llama.cpp falls back.
        for (int b = 0; b < 256; b++)
        {
            _byteTokens[b] = -1;
            if (_ids.TryGetValue($"<0x{b:X2}>", out int id) || (b < 0x80 && _ids.TryGetValue(((char)b).ToString(), out id)))
                _byteTokens[b] = id;
        }

        _specialTokens = Enumerable.Range(0, n)
            .Where(id => _kinds[id] is TokenKind.Control or TokenKind.UserDefined or TokenKind.Unknown)
            .OrderByDescending(id => _pieces[id].Length)
            .ThenBy(id => id)
            .ToArray();
        _stripRight = new bool[n];
        foreach (int id in stripRightOfSpecial ?? [])
            _stripRight[CheckListedId(id, n, nameof(stripRightOfSpecial))] = true;

        var endIds = new HashSet<int>();
        foreach (int id in endOfGeneration ?? (eosId >= 0 ? [eosId] : []))
            endIds.Add(CheckListedId(id, n, nameof(endOfGeneration)));
        EndOfGenerationIds = endIds;

        BosId = bosId;
        EosId = eosId;
        UnknownId = unknownId;
        PaddingId = paddingId;
        AddBos = addBos;
        AddEos = addEos;
        AddSpacePrefix = addSpacePrefix;
    }

    private static void CheckId(int id, int vocabSize, string name)
    {
        if (id < -1 || id >= vocabSize)
            throw new ArgumentException($"{name} is {id}, but the vocabulary has {vocabSize} entries (use -1 for none)", name);
    }

    private static int CheckListedId(int id, int vocabSize, string name)
    {
        if (id < 0 || id >= vocabSize)
            throw new ArgumentException($"{name} lists id {id}, but the vocabulary has {vocabSize} entries", name);
        return id;
    }

    private byte[] OutputBytes(int id)
    {
        string piece = _pieces[id];
        switch (_kinds[id])
        {
            case TokenKind.Normal:
                return Encoding.UTF8.GetBytes(piece.Replace(SpaceMarker, ' '));
            case TokenKind.UserDefined:
                return Encoding.UTF8.GetBytes(piece); // written out as is, like llama.cpp
            case TokenKind.Byte:
                if (TryParseByte(piece, out byte value))
                    return [value];
                throw new ArgumentException($"token {id} is a byte token but reads '{piece}', expected <0xNN> with two hex digits");
            default:
                return []; // control, unknown, unused and undefined entries give no text
        }
    }

    private static bool TryParseByte(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }

    /// <summary>Unknown-token id, or -1.</summary>
    public int UnknownId { get; }

    /// <summary>Padding id, or -1.</summary>
    public int PaddingId { get; }

    /// <summary>Whether a space is put in front of the text (and of text following a special token) before
    /// encoding, and dropped from the first decoded piece.</summary>
    public bool AddSpacePrefix { get; }

    /// <inheritdoc />
    public override int VocabSize => _pieces.Length;

    /// <inheritdoc />
    public override string GetPiece(int id) => _pieces[CheckToken(id)];

    /// <inheritdoc />
    public override TokenKind GetKind(int id) => _kinds[CheckToken(id)];

    /// <summary>The entry's merge score.</summary>
    public float GetScore(int id) => _scores[CheckToken(id)];

    /// <summary>The id of a vocabulary entry given its exact text (e.g. <c>▁the</c>), or -1.</summary>
    public int FindPiece(ReadOnlySpan<char> piece) => _idsBySpan.TryGetValue(piece, out int id) ? id : -1;

    private int CheckToken(int id)
    {
        if ((uint)id >= (uint)_pieces.Length)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id must be in [0, {_pieces.Length})");
        return id;
    }

    // ---- loading from GGUF ----------------------------------------------------------------

    /// <summary>Builds the tokenizer from a GGUF file's <c>tokenizer.ggml.*</c> metadata (read by the vocabulary
    /// reader all three tokenizers share), with llama.cpp's defaults for what is absent (scores 0, kinds Normal, BOS 1,
    /// EOS 2, UNK 0, add BOS, no EOS, add the space prefix).</summary>
    /// <exception cref="GgufFormatException"><c>tokenizer.ggml.model</c> is not "llama", the token list is missing, an
    /// array has the wrong type or length, or a byte entry does not read <c>&lt;0xNN&gt;</c>.</exception>
    public static SentencePieceTokenizer FromGguf(GgufFile file)
    {
        var vocabulary = GgufVocabulary.Read(file, "llama", "a SentencePiece vocabulary");
        int bos = vocabulary.Id("tokenizer.ggml.bos_token_id", 1);
        int eos = vocabulary.Id("tokenizer.ggml.eos_token_id", 2);
        int unk = vocabulary.Id("tokenizer.ggml.unknown_token_id", 0);
        int pad = vocabulary.Id("tokenizer.ggml.padding_token_id", -1);
        bool addBos = file.GetBool("tokenizer.ggml.add_bos_token", true);
        bool addEos = file.GetBool("tokenizer.ggml.add_eos_token", false);
        bool addSpacePrefix = file.GetBool("tokenizer.ggml.add_space_prefix", true);
        vocabulary.StripRules(out _, out var stripRight);
        try
        {
            return new SentencePieceTokenizer(vocabulary.Pieces, vocabulary.Scores, vocabulary.Kinds, bos, eos, unk, pad,
                addBos, addEos, addSpacePrefix, stripRight, vocabulary.EndOfGeneration(eos))
            {
                LoadWarnings = vocabulary.Warnings,
            };
        }
        catch (ArgumentException e)
        {
            throw new GgufFormatException(file.Path, $"tokenizer.ggml: {e.Message}");
        }
    }

    // ---- encoding ------------------------------------------------------------------------

    /// <inheritdoc />
    public override List<int> Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = ReplaceLoneSurrogates(text);
        var output = new List<int>();
        if (addSpecial && AddBos && BosId >= 0)
            output.Add(BosId);

        bool afterSpecial = true; // the start of the text counts as following a special token
        var buffer = new TextBuffer();
        foreach (var fragment in Partition(text, parseSpecial))
        {
            if (fragment.Token >= 0)
            {
                output.Add(fragment.Token);
                afterSpecial = true;
                continue;
            }
            buffer.Clear();
            if (AddSpacePrefix && afterSpecial)
                buffer.Append(SpaceMarker);
            foreach (char c in text.AsSpan(fragment.Start, fragment.Length))
                buffer.Append(c == ' ' ? SpaceMarker : c);
            EncodeWords(buffer.Span, output);
            afterSpecial = false;
        }

        if (addSpecial && AddEos && EosId >= 0)
            output.Add(EosId);
        return output;
    }

    // A run of text or a special token found in it.
    private readonly record struct Fragment(int Start, int Length, int Token);

    // Cuts the text around special tokens, longest tokens first, as llama.cpp does: each token is searched for in the
    // text fragments the longer ones left. Control and unknown tokens only count when parseSpecial is set.
    private List<Fragment> Partition(string text, bool parseSpecial)
    {
        var fragments = new List<Fragment>();
        if (text.Length == 0)
            return fragments;
        fragments.Add(new Fragment(0, text.Length, -1));
        foreach (int special in _specialTokens)
        {
            if (!parseSpecial && _kinds[special] is TokenKind.Control or TokenKind.Unknown)
                continue;
            string piece = _pieces[special];
            for (int f = 0; f < fragments.Count; f++)
            {
                var fragment = fragments[f];
                if (fragment.Token >= 0)
                    continue;
                int match = text.IndexOf(piece, fragment.Start, fragment.Length, StringComparison.Ordinal);
                if (match < 0)
                    continue;

                int rightStart = match + piece.Length, end = fragment.Start + fragment.Length;
                if (_stripRight[special])
                    while (rightStart < end && IsCSpace(text[rightStart]))
                        rightStart++;

                // Replace the fragment by [text before] token [text after]; the loop then goes on with the text after,
                // which may hold the same token again.
                fragments.RemoveAt(f);
                if (match > fragment.Start)
                    fragments.Insert(f++, new Fragment(fragment.Start, match - fragment.Start, -1));
                fragments.Insert(f, new Fragment(match, piece.Length, special));
                if (rightStart < end)
                    fragments.Insert(f + 1, new Fragment(rightStart, end - rightStart, -1));
            }
        }
        return fragments;
    }

    // C's isspace in the "C" locale, which llama.cpp uses to strip around special tokens.
    private static bool IsCSpace(char c) => c is ' ' or '\t' or '\n' or '\v' or '\f' or '\r';

    // Encoding a C# string as UTF-8 turns an unpaired surrogate into U+FFFD; do the same up front so that the
    // merges see the characters llama.cpp would be given.
    private static string ReplaceLoneSurrogates(string text) =>
        text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0 ? text : Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));

    // One symbol of the merge: a span of the text, linked to its neighbours.
    private struct Symbol
    {
        public int Start, Length; // Length 0 once merged into the symbol on its left
        public int Prev, Next;     // neighbour indices, -1 at the ends
    }

    // A candidate merge of two adjacent symbols; Length is their total length when it was queued, so a candidate
    // made stale by a later merge is recognised and skipped.
    private readonly record struct Candidate(int Left, int Right, int Length);

    // Highest score first; among equal scores, the leftmost pair.
    private sealed class CandidateOrder : IComparer<(float Score, int Left)>
    {
        public static readonly CandidateOrder Instance = new();
        public int Compare((float Score, int Left) a, (float Score, int Left) b)
        {
            int byScore = b.Score.CompareTo(a.Score);
            return byScore != 0 ? byScore : a.Left.CompareTo(b.Left);
        }
    }

    // The BPE merge of one piece of text (spaces already written as '▁'). A priority queue keeps the best candidate
    // pair on top, so the cost is O(n log n) in the text length.
    private void EncodeWords(ReadOnlySpan<char> text, List<int> output)
    {
        if (text.IsEmpty)
            return;

        var symbols = new Symbol[text.Length];
        int count = 0;
        for (int i = 0; i < text.Length;)
        {
            int length = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            symbols[count] = new Symbol { Start = i, Length = length, Prev = count - 1, Next = i + length < text.Length ? count + 1 : -1 };
            count++;
            i += length;
        }

        var queue = new PriorityQueue<Candidate, (float, int)>(count, CandidateOrder.Instance);
        for (int i = 1; i < count; i++)
            TryQueue(text, symbols, i - 1, i, queue);

        while (queue.TryDequeue(out var pair, out _))
        {
            ref var left = ref symbols[pair.Left];
            ref var right = ref symbols[pair.Right];
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != pair.Length)
                continue; // one side has changed since this pair was queued

            left.Length += right.Length;
            right.Length = 0;
            left.Next = right.Next;
            if (right.Next >= 0)
                symbols[right.Next].Prev = pair.Left;

            TryQueue(text, symbols, left.Prev, pair.Left, queue);
            TryQueue(text, symbols, pair.Left, left.Next, queue);
        }

        for (int i = 0; i >= 0; i = symbols[i].Next)
        {
            var symbol = text.Slice(symbols[i].Start, symbols[i].Length);
            if (_idsBySpan.TryGetValue(symbol, out int id))
                output.Add(id);
            else
                AppendByteFallback(symbol, output);
        }
    }

    private void TryQueue(ReadOnlySpan<char> text, Symbol[] symbols, int left, int right, PriorityQueue<Candidate, (float, int)> queue)
    {
        if (left < 0 || right < 0)
            return;
        int length = symbols[left].Length + symbols[right].Length;
        if (_idsBySpan.TryGetValue(text.Slice(symbols[left].Start, length), out int id))
            queue.Enqueue(new Candidate(left, right, length), (_scores[id], left));
    }

    // A character that is not in the vocabulary: one byte token per UTF-8 byte.
    private void AppendByteFallback(ReadOnlySpan<char> symbol, List<int> output)
    {
        Span<byte> utf8 = stackalloc byte[8];
        int n = Encoding.UTF8.GetBytes(symbol, utf8);
        for (int i = 0; i < n; i++)
        {
            int id = _byteTokens[utf8[i]];
            if (id < 0)
                id = UnknownId;
            if (id < 0)
                throw new ArgumentException($"'{symbol}' (U+{char.ConvertToUtf32(symbol.ToString(), 0):X4}) cannot be encoded: the vocabulary has no entry for it, no byte token <0x{utf8[i]:X2}> and no unknown token");
            output.Add(id);
        }
    }

    // A growable char buffer reused across the fragments of one Encode call.
    private sealed class TextBuffer
    {
        private char[] _chars = new char[64];
        private int _length;
        public ReadOnlySpan<char> Span => _chars.AsSpan(0, _length);
        public void Clear() => _length = 0;
        public void Append(char c)
        {
            if (_length == _chars.Length)
                Array.Resize(ref _chars, _chars.Length * 2);
            _chars[_length++] = c;
        }
    }

    // ---- decoding ------------------------------------------------------------------------

    /// <inheritdoc />
    /// <remarks>Normal pieces give their text with '▁' as a space, byte tokens their byte, user-defined tokens their
    /// text as is; control and unknown tokens give nothing. With <see cref="AddSpacePrefix"/>, one leading space is
    /// dropped from the first token (<paramref name="previous"/> = -1) and from the token right after BOS.</remarks>
    public override void AppendBytes(int id, int previous, List<byte> output)
    {
        byte[] bytes = _output[CheckToken(id)];
        int skip = AddSpacePrefix && (previous < 0 || previous == BosId) && bytes.Length > 0 && bytes[0] == (byte)' ' ? 1 : 0;
        output.AddRange(bytes.AsSpan(skip));
    }
}
