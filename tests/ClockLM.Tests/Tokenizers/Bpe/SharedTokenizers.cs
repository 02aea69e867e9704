using System.Collections.Concurrent;
using ClockLM.Gguf;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>Each shared vocabulary loaded once per test run (tokenizers are immutable and thread-safe).</summary>
public static class SharedTokenizers
{
    private static readonly ConcurrentDictionary<string, Lazy<Tokenizer>> Loaded = new();

    /// <summary>The tokenizer of <c>ggml-vocab-{name}.gguf</c>, through <see cref="Tokenizer.Load"/>.</summary>
    public static Tokenizer Get(string name) => Loaded.GetOrAdd(name, n => new Lazy<Tokenizer>(() =>
    {
        using var file = GgufFile.Open(SharedData.Vocab($"ggml-vocab-{n}.gguf"));
        return Tokenizer.Load(file);
    })).Value;

    /// <summary>The shared byte-level BPE vocabularies that come with llama.cpp test vectors.</summary>
    public static TheoryData<string> ByteLevelBpe => new() { "gpt-2", "deepseek-coder", "deepseek-llm", "falcon", "mpt", "refact", "starcoder" };

    /// <summary><see cref="ByteLevelBpe"/> and the WordPiece vocabulary bert-bge.</summary>
    public static TheoryData<string> ByteLevelBpeAndWordPiece => new() { "gpt-2", "deepseek-coder", "deepseek-llm", "falcon", "mpt", "refact", "starcoder", "bert-bge" };
}
