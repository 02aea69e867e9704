using ClockLM.Gguf;

namespace ClockLM.Tokenizers;

/// <summary>
/// The <c>tokenizer.ggml.*</c> keys every vocabulary type shares, read once with llama.cpp's rules: entries, their
/// kinds and scores; special-token ids (a key naming an id outside the vocabulary keeps the default, with a warning);
/// chat and fill-in-the-middle markers spelled as such become control tokens; and the set of ids that end generation.
/// SentencePiece, byte-level BPE and WordPiece all load through it, so they agree on these.
/// </summary>
internal sealed class GgufVocabulary
{
    private readonly GgufFile _file;
    private readonly List<string> _warnings = [];

    private GgufVocabulary(GgufFile file, string[] pieces, TokenKind[] kinds, float[] scores)
    {
        _file = file;
        Pieces = pieces;
        Kinds = kinds;
        Scores = scores;
    }

    /// <summary>Entries (<c>tokenizer.ggml.tokens</c>); an empty entry is renamed <c>[EMPTY_id]</c>, as llama.cpp does.</summary>
    public string[] Pieces { get; }

    /// <summary>Kinds (<c>tokenizer.ggml.token_type</c>; all <see cref="TokenKind.Normal"/> when absent), with
    /// end-of-turn and fill-in-the-middle markers made <see cref="TokenKind.Control"/>.</summary>
    public TokenKind[] Kinds { get; }

    /// <summary>Merge scores (<c>tokenizer.ggml.scores</c>; zeros when absent).</summary>
    public float[] Scores { get; }

    /// <summary>What was read with a fallback (special ids outside the vocabulary), one line each.</summary>
    public IReadOnlyList<string> Warnings => _warnings;

    /// <summary>Reads the shared keys of a file whose <c>tokenizer.ggml.model</c> is <paramref name="model"/>.</summary>
    /// <exception cref="GgufFormatException">The model type differs, the token list is missing or empty, an array has
    /// the wrong length, or a token type lies outside llama.cpp's enum (0 to 6).</exception>
    public static GgufVocabulary Read(GgufFile file, string model, string description)
    {
        string actual = file.GetString("tokenizer.ggml.model");
        if (actual != model)
            throw new GgufFormatException(file.Path, $"tokenizer.ggml.model is '{actual}'; {description} is '{model}'");
        if (!file.Has("tokenizer.ggml.tokens"))
            throw new GgufFormatException(file.Path, "tokenizer.ggml.tokens is missing; the vocabulary cannot be read");
        string[] pieces = file.GetArray<string>("tokenizer.ggml.tokens");
        int n = pieces.Length;
        if (n == 0)
            throw new GgufFormatException(file.Path, "tokenizer.ggml.tokens is empty");
        for (int i = 0; i < n; i++)
            if (pieces[i].Length == 0)
                pieces[i] = $"[EMPTY_{i}]"; // an empty entry could never be matched; llama.cpp renames it the same way

        var kinds = new TokenKind[n];
        Array.Fill(kinds, TokenKind.Normal);
        if (file.Has("tokenizer.ggml.token_type"))
        {
            int[] types = ReadInt32s(file, "tokenizer.ggml.token_type");
            if (types.Length != n)
                throw new GgufFormatException(file.Path, $"tokenizer.ggml.token_type has {types.Length} entries but tokenizer.ggml.tokens has {n}");
            for (int i = 0; i < n; i++)
                kinds[i] = types[i] is >= (int)TokenKind.Undefined and <= (int)TokenKind.Byte
                    ? (TokenKind)types[i]
                    : throw new GgufFormatException(file.Path,
                        $"tokenizer.ggml.token_type[{i}] (token '{pieces[i]}') is {types[i]}; expected 0 to 6 (undefined, normal, unknown, control, user-defined, unused, byte)");
        }

        float[] scores = file.Has("tokenizer.ggml.scores") ? file.GetArray<float>("tokenizer.ggml.scores") : new float[n];
        if (scores.Length != n)
            throw new GgufFormatException(file.Path, $"tokenizer.ggml.scores has {scores.Length} entries but tokenizer.ggml.tokens has {n}");

        var vocabulary = new GgufVocabulary(file, pieces, kinds, scores);
        vocabulary.MarkControlLookingTokens();
        return vocabulary;
    }

    /// <summary>A token id key: <paramref name="fallback"/> (or -1 when the vocabulary is too small for it) when absent;
    /// when the key names an id outside the vocabulary, the fallback too, as llama.cpp does, with a warning.</summary>
    public int Id(string key, int fallback)
    {
        int n = Pieces.Length;
        int usable = fallback >= 0 && fallback < n ? fallback : -1;
        if (!_file.Has(key)) return usable;
        long id = _file.GetInteger(key);
        if (id >= 0 && id < n) return (int)id;
        _warnings.Add($"{_file.Path}: {key} is {id}, outside the vocabulary of {n} entries; using {(usable < 0 ? "none" : usable.ToString())}");
        return usable;
    }

    private static int[] ReadInt32s(GgufFile file, string key)
    {
        var value = file.Find(key)!;
        return value.Value switch
        {
            int[] ints => ints,
            uint[] uints => Array.ConvertAll(uints, u => (int)Math.Min(u, int.MaxValue)),
            _ => throw new GgufFormatException(file.Path, $"metadata key '{key}' is {value.Describe()}, expected an array of Int32"),
        };
    }

    // llama.cpp's spellings: an end-of-turn token when the file names none, and the tokens that end generation.
    private static readonly string[] EndOfTurnTexts =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>"];
    private static readonly string[] EndOfGenerationTexts =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>",
         "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>"];
    private static readonly (string Key, string[] Texts)[] AutoDetected =
    [
        ("tokenizer.ggml.eot_token_id", EndOfTurnTexts),
        ("tokenizer.ggml.eom_token_id", ["<|eom_id|>"]),
        ("tokenizer.ggml.fim_pre_token_id", ["<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"]),
        ("tokenizer.ggml.fim_suf_token_id", ["<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"]),
        ("tokenizer.ggml.fim_mid_token_id", ["<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"]),
        ("tokenizer.ggml.fim_pad_token_id", ["<|fim_pad|>", "<fim-pad>", "<PAD>"]),
        ("tokenizer.ggml.fim_rep_token_id", ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"]),
        ("tokenizer.ggml.fim_sep_token_id", ["<|file_sep|>"]),
    ];

    // The first entry spelled like each marker the file does not name (by id), and every end-of-generation spelling.
    private readonly Dictionary<string, int> _detected = [];

    /// <summary>Chat and fill-in-the-middle markers (<c>&lt;|im_end|&gt;</c>, <c>&lt;｜fim▁begin｜&gt;</c>, ...) that a
    /// converter left as normal or user-defined entries become control entries, as llama.cpp makes them: they then
    /// match in text only when special tokens are parsed, and decode to nothing.</summary>
    private void MarkControlLookingTokens()
    {
        foreach (var (key, texts) in AutoDetected)
        {
            if (_file.Has(key))
                continue;
            for (int id = 0; id < Pieces.Length; id++)
                if (texts.Contains(Pieces[id]))
                {
                    Kinds[id] = TokenKind.Control;
                    _detected[key] = id;
                    break;
                }
        }
        for (int id = 0; id < Pieces.Length; id++)
            if (EndOfGenerationTexts.Contains(Pieces[id]))
                Kinds[id] = TokenKind.Control;
    }

    /// <summary>
    /// The ids whose generation ends the text, as llama.cpp collects them: every entry spelled like an end of turn or
    /// of generation, the fill-in-the-middle pad, repository and separator markers, and EOS, EOT and EOM.
    /// </summary>
    public IReadOnlySet<int> EndOfGeneration(int eos)
    {
        var ids = new SortedSet<int>();
        for (int id = 0; id < Pieces.Length; id++)
            if (EndOfGenerationTexts.Contains(Pieces[id]))
                ids.Add(id);
        foreach (string key in new[] { "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id",
                     "tokenizer.ggml.fim_pad_token_id", "tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id" })
            if ((_detected.TryGetValue(key, out int detected) ? detected : Id(key, -1)) is >= 0 and int id)
                ids.Add(id);
        if (eos >= 0)
            ids.Add(eos);
        return ids;
    }

    /// <summary>Tokens that swallow neighbouring white space when found in text, per llama.cpp's per-model rules
    /// (Jina v2's <c>&lt;mask&gt;</c> strips on its left; in Phi-3 models special tokens strip on their right,
    /// except <c>&lt;unk&gt;</c>, <c>&lt;s&gt;</c> and <c>&lt;|endoftext|&gt;</c>, and <c>&lt;/s&gt;</c> does too).</summary>
    public void StripRules(out HashSet<int> stripLeft, out HashSet<int> stripRight)
    {
        stripLeft = [];
        stripRight = [];
        string pre = _file.GetStringOrNull("tokenizer.ggml.pre") ?? "";
        string name = (_file.GetStringOrNull("general.name") ?? "").ToLowerInvariant();
        int Find(string text) => Array.LastIndexOf(Pieces, text);
        if (pre.Contains("jina-v2-de") || pre.Contains("jina-v2-es") || pre.Contains("jina-v2-code"))
        {
            if (Find("<mask>") is >= 0 and int mask)
                stripLeft.Add(mask);
        }
        else if (name.Contains("phi-3") || name.Contains("phi3"))
        {
            for (int id = 0; id < Pieces.Length; id++)
                if (Kinds[id] is TokenKind.Control or TokenKind.UserDefined or TokenKind.Unknown)
                    stripRight.Add(id);
            if (Find("</s>") is >= 0 and int end)
                stripRight.Add(end);
            foreach (string text in new[] { "<unk>", "<s>", "<|endoftext|>" })
                if (Find(text) is >= 0 and int id)
                    stripRight.Remove(id);
        }
    }
}
