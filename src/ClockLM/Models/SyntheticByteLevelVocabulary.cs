using ClockLM.Gguf;

namespace ClockLM.Models;

/// <summary>
/// A byte-level BPE vocabulary of a chosen size built from a real one, for random-weight models of families whose
/// vocabulary file is not at hand (Qwen 2's 151,936 entries). The real vocabulary's tokens and merges come first; new
/// tokens are the concatenations of two real tokens, each with the merge that makes it, so every token stays reachable
/// by BPE; then Qwen's layout: <c>&lt;|endoftext|&gt;</c>, <c>&lt;|im_start|&gt;</c>, <c>&lt;|im_end|&gt;</c> as control
/// tokens, <c>&lt;tool_call&gt;</c> and <c>&lt;/tool_call&gt;</c> as user-defined ones, and <c>[PADn]</c> entries to the end.
/// Deterministic for a seed.
/// </summary>
public sealed class SyntheticByteLevelVocabulary
{
    private const int Normal = 1, Control = 3, UserDefined = 4, Unused = 5;

    private SyntheticByteLevelVocabulary(string[] tokens, int[] types, string[] merges, int endOfText)
    {
        Tokens = tokens;
        Types = types;
        Merges = merges;
        EndOfTextId = endOfText;
    }

    /// <summary>Entries in the byte-to-unicode alphabet GGUF files use.</summary>
    public string[] Tokens { get; }

    /// <summary>GGUF token types.</summary>
    public int[] Types { get; }

    /// <summary>Merge rules, "left right", in priority order.</summary>
    public string[] Merges { get; }

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c> (BOS and EOS).</summary>
    public int EndOfTextId { get; }

    /// <summary>Builds a vocabulary of <paramref name="size"/> entries, <paramref name="regular"/> of them BPE tokens,
    /// from the byte-level (<c>gpt2</c>) vocabulary of the GGUF file at <paramref name="sourcePath"/>.</summary>
    /// <exception cref="GgufFormatException">The file has no byte-level vocabulary, or it is larger than asked.</exception>
    public static SyntheticByteLevelVocabulary Build(string sourcePath, int size, int regular, ulong seed)
    {
        using var file = GgufFile.Open(sourcePath);
        string model = file.GetString("tokenizer.ggml.model");
        if (model != "gpt2")
            throw new GgufFormatException(sourcePath, $"tokenizer.ggml.model is '{model}'; a byte-level ('gpt2') vocabulary is needed");
        var tokens = file.GetArray<string>("tokenizer.ggml.tokens").ToList();
        var types = file.Has("tokenizer.ggml.token_type") ? file.GetArray<int>("tokenizer.ggml.token_type").ToList() : Enumerable.Repeat(Normal, tokens.Count).ToList();
        var merges = file.GetArray<string>("tokenizer.ggml.merges").ToList();
        // Keep the ordinary tokens only: the source's own special tokens would clash with the layout below.
        var ordinary = Enumerable.Range(0, tokens.Count).Where(i => types[i] == Normal).ToList();
        if (ordinary.Count > regular)
            throw new GgufFormatException(sourcePath, $"the vocabulary has {ordinary.Count} ordinary tokens, more than the {regular} asked for");
        var result = ordinary.Select(i => tokens[i]).ToList();
        var known = new HashSet<string>(result);
        // Short word pieces of the first 60,000 tokens (the more frequent ones) make the new tokens.
        var parts = result.Take(60_000).Where(t => t.Length is >= 2 and <= 7).ToArray();
        ulong state = seed * 0x9E3779B97F4A7C15UL + 1;
        int Next(int n)
        {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
            return (int)((state * 0x2545F4914F6CDD1DUL >> 33) % (ulong)n);
        }
        while (result.Count < regular)
        {
            string left = parts[Next(parts.Length)], right = parts[Next(parts.Length)];
            string joined = left + right;
            if (!known.Add(joined)) continue;
            result.Add(joined);
            merges.Add(left + " " + right);
        }
        var resultTypes = Enumerable.Repeat(Normal, result.Count).ToList();
        int endOfText = result.Count;
        foreach (var (text, type) in new[] { ("<|endoftext|>", Control), ("<|im_start|>", Control), ("<|im_end|>", Control),
                                              ("<tool_call>", UserDefined), ("</tool_call>", UserDefined) })
        {
            if (result.Count >= size) break;
            result.Add(text);
            resultTypes.Add(type);
        }
        while (result.Count < size)
        {
            result.Add($"[PAD{result.Count}]");
            resultTypes.Add(Unused);
        }
        return new SyntheticByteLevelVocabulary(result.ToArray(), resultTypes.ToArray(), merges.ToArray(), endOfText);
    }

    /// <summary>Adds the <c>tokenizer.ggml.*</c> keys (model gpt2, pre-tokenizer qwen2).</summary>
    public void AddTo(GgufWriter writer)
    {
        writer.Set("tokenizer.ggml.model", "gpt2");
        writer.Set("tokenizer.ggml.pre", "qwen2");
        writer.Set("tokenizer.ggml.tokens", GgufValue.From(Tokens));
        writer.Set("tokenizer.ggml.token_type", GgufValue.From(Types));
        writer.Set("tokenizer.ggml.merges", GgufValue.From(Merges));
        writer.Set("tokenizer.ggml.bos_token_id", (uint)EndOfTextId);
        writer.Set("tokenizer.ggml.eos_token_id", (uint)EndOfTextId);
        writer.Set("tokenizer.ggml.padding_token_id", (uint)EndOfTextId);
        writer.Set("tokenizer.ggml.add_bos_token", false);
    }
}
