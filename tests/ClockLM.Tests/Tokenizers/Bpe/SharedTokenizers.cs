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
}
