using ClockLM.Gguf;

namespace ClockLM.Tokenizers;

/// <summary>Reads the <c>tokenizer.ggml.*</c> keys that every vocabulary type shares, with llama.cpp's defaults and fix-ups.</summary>
internal static class GgufVocabulary
{
    /// <summary>Entries (<c>tokenizer.ggml.tokens</c>) and their kinds (<c>tokenizer.ggml.token_type</c>; all
    /// <see cref="TokenKind.Normal"/> when absent).</summary>
    public static void ReadVocabulary(GgufFile file, out string[] pieces, out TokenKind[] kinds)
    {
        if (!file.Has("tokenizer.ggml.tokens"))
            throw new GgufFormatException(file.Path, "tokenizer.ggml.tokens is missing; the vocabulary cannot be read");
        pieces = file.GetArray<string>("tokenizer.ggml.tokens");
        if (pieces.Length == 0)
            throw new GgufFormatException(file.Path, "tokenizer.ggml.tokens is empty");
        kinds = new TokenKind[pieces.Length];
        Array.Fill(kinds, TokenKind.Normal);
        if (file.Has("tokenizer.ggml.token_type"))
        {
            int[] types = file.GetArray<int>("tokenizer.ggml.token_type");
            if (types.Length != pieces.Length)
                throw new GgufFormatException(file.Path,
                    $"tokenizer.ggml.token_type has {types.Length} entries but tokenizer.ggml.tokens has {pieces.Length}");
            for (int i = 0; i < types.Length; i++)
                kinds[i] = types[i] is >= 1 and <= 6 ? (TokenKind)types[i] : TokenKind.Undefined;
        }
        for (int i = 0; i < pieces.Length; i++)
            if (pieces[i].Length == 0)
                pieces[i] = $"[EMPTY_{i}]"; // an empty entry could never be matched; llama.cpp renames it the same way
    }

    /// <summary>A token id key: <paramref name="fallback"/> when absent or out of range.</summary>
    public static int ReadId(GgufFile file, string key, int fallback, int vocabSize)
    {
        long id = file.GetInteger(key, fallback);
        return id >= 0 && id < vocabSize ? (int)id : fallback < vocabSize ? fallback : -1;
    }

    private static readonly string[] EndOfTurnTexts =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "<｜end▁of▁sentence｜>"];
    private static readonly string[] EndOfGenerationTexts =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"];
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

    /// <summary>Chat and fill-in-the-middle markers (<c>&lt;|im_end|&gt;</c>, <c>&lt;｜fim▁begin｜&gt;</c>, ...) that a
    /// converter left as normal or user-defined entries become control entries, as llama.cpp makes them: they then
    /// match in text only when special tokens are parsed, and decode to nothing.</summary>
    public static void MarkControlLookingTokens(GgufFile file, string[] pieces, TokenKind[] kinds)
    {
        foreach (var (key, texts) in AutoDetected)
        {
            if (file.Has(key))
                continue;
            for (int id = 0; id < pieces.Length; id++)
                if (texts.Contains(pieces[id]))
                {
                    kinds[id] = TokenKind.Control;
                    break;
                }
        }
        for (int id = 0; id < pieces.Length; id++)
            if (EndOfGenerationTexts.Contains(pieces[id]))
                kinds[id] = TokenKind.Control;
    }

    /// <summary>Tokens that swallow neighbouring white space when found in text, per llama.cpp's per-model rules
    /// (Jina v2's <c>&lt;mask&gt;</c> strips on its left; in Phi-3 models special tokens strip on their right).</summary>
    public static void StripRules(GgufFile file, string[] pieces, TokenKind[] kinds, out HashSet<int> stripLeft, out HashSet<int> stripRight)
    {
        stripLeft = [];
        stripRight = [];
        string pre = file.GetStringOrNull("tokenizer.ggml.pre") ?? "";
        string name = (file.GetStringOrNull("general.name") ?? "").ToLowerInvariant();
        int Find(string text) => Array.LastIndexOf(pieces, text);
        if (pre.Contains("jina-v2-de") || pre.Contains("jina-v2-es") || pre.Contains("jina-v2-code"))
        {
            if (Find("<mask>") is >= 0 and int mask)
                stripLeft.Add(mask);
        }
        else if (name.Contains("phi-3") || name.Contains("phi3"))
        {
            for (int id = 0; id < pieces.Length; id++)
                if (kinds[id] is TokenKind.Control or TokenKind.UserDefined or TokenKind.Unknown)
                    stripRight.Add(id);
            if (Find("</s>") is >= 0 and int end)
                stripRight.Add(end);
            foreach (string text in new[] { "<unk>", "<s>", "<|endoftext|>" })
                if (Find(text) is >= 0 and int id)
                    stripRight.Remove(id);
        }
    }
}
