using ClockLM.Gguf;
using ClockLM.Tokenizers;

namespace ClockLM.Models;

/// <summary>A named model shape for <see cref="SyntheticModel"/>. <paramref name="ByteLevelVocab"/>: the size of a
/// byte-level BPE vocabulary built for it (<see cref="SyntheticByteLevelVocabulary"/>), or null to take a
/// SentencePiece vocabulary from a file as it is.</summary>
public sealed record ModelShape(string Name, int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int ContextLength, bool SeparateOutput,
    int? ByteLevelVocab = null, float RopeBase = 10000f)
{
    /// <summary>The configuration with a vocabulary of <paramref name="vocabSize"/>.</summary>
    public LlamaConfig Config(int vocabSize) => new(Dim, HiddenDim, Layers, Heads, KvHeads, vocabSize, ContextLength, RopeBase: RopeBase);

    /// <summary>The vocabulary file a shape is built with unless another is named.</summary>
    public string DefaultVocab => ByteLevelVocab is null ? "../shared/vocab/ggml-vocab-llama-spm.gguf" : "../shared/vocab/ggml-vocab-deepseek-llm.gguf";
}

/// <summary>
/// Random-weight llama models of realistic shapes, for tests and benchmarks: weights N(0, 0.02), norms 1,
/// and a real vocabulary. Deterministic for a seed.
/// </summary>
public static class SyntheticModel
{
    /// <summary>The named shapes.</summary>
    public static readonly ModelShape[] Shapes =
    [
        new("tiny", Dim: 256, HiddenDim: 768, Layers: 4, Heads: 4, KvHeads: 2, ContextLength: 512, SeparateOutput: true),
        new("llama-110m", Dim: 768, HiddenDim: 2048, Layers: 12, Heads: 12, KvHeads: 12, ContextLength: 1024, SeparateOutput: true),
        new("tinyllama-1.1b", Dim: 2048, HiddenDim: 5632, Layers: 22, Heads: 32, KvHeads: 4, ContextLength: 2048, SeparateOutput: true),
        // Qwen2-0.5B's dimensions and 151,936-entry byte-level vocabulary (151,643 BPE tokens, then special and padding
        // entries), written as a llama-architecture file (no attention biases), embeddings tied to the output.
        new("qwen2-0.5b", Dim: 896, HiddenDim: 4864, Layers: 24, Heads: 14, KvHeads: 2, ContextLength: 4096, SeparateOutput: false,
            ByteLevelVocab: 151_936, RopeBase: 1_000_000f),
    ];

    /// <summary>The shape called <paramref name="name"/>; an unknown name is an ArgumentException listing the known ones.</summary>
    public static ModelShape Shape(string name) =>
        Shapes.FirstOrDefault(s => s.Name == name)
        ?? throw new ArgumentException($"unknown shape '{name}'; expected one of {string.Join(", ", Shapes.Select(s => s.Name))}");

    /// <summary>Writes a random-weight model with <paramref name="vocabulary"/>'s tokens.</summary>
    public static void Write(string path, LlamaConfig config, bool separateOutput, SentencePieceTokenizer vocabulary,
        QuantizationScheme scheme, ulong seed = 1, float std = 0.02f)
    {
        if (config.VocabSize != vocabulary.VocabSize)
            throw new ArgumentException($"the configuration has {config.VocabSize} tokens, the vocabulary {vocabulary.VocabSize}");
        LlamaGgufExport.Write(path, $"synthetic {scheme.Name}", config, vocabulary, separateOutput,
            name => scheme.TypeFor(name, name.Contains("ffn_down") ? config.HiddenDim : config.Dim, config.Layers),
            RandomRows(seed, std), fileType: scheme.FileType);
    }

    /// <summary>Rows of N(0, std) weights (norms 1), each row from its own stream so the order rows are made in does not matter.</summary>
    private static TensorRowSource RandomRows(ulong seed, float std) => (name, row, destination) =>
    {
        if (name.EndsWith("norm.weight", StringComparison.Ordinal))
        {
            destination.Fill(1.0f);
            return;
        }
        var rng = new GaussianRandom(seed ^ StableHash(name) * 0x9E3779B97F4A7C15UL ^ (ulong)(row + 1) * 0xD1B54A32D192ED03UL);
        for (int i = 0; i < destination.Length; i++) destination[i] = std * rng.Next();
    };

    /// <summary>Writes a model of a named shape with the vocabulary of the GGUF file at <paramref name="vocabPath"/>
    /// (for a byte-level shape: the vocabulary it is built from).</summary>
    public static void Write(string path, ModelShape shape, string vocabPath, QuantizationScheme scheme, ulong seed = 1)
    {
        if (shape.ByteLevelVocab is { } size)
        {
            // As in Qwen 2: 293 special and padding entries after the BPE tokens (151,643 of 151,936).
            var built = SyntheticByteLevelVocabulary.Build(vocabPath, size, regular: size - 293, seed);
            var config = shape.Config(size);
            LlamaGgufExport.Write(path, $"synthetic {shape.Name} {scheme.Name}", config, built.AddTo, shape.SeparateOutput,
                name => scheme.TypeFor(name, name.Contains("ffn_down") ? config.HiddenDim : config.Dim, config.Layers),
                RandomRows(seed, std: 0.02f), fileType: scheme.FileType);
            return;
        }
        SentencePieceTokenizer vocabulary;
        using (var file = GgufFile.Open(vocabPath))
            vocabulary = SentencePieceTokenizer.FromGguf(file);
        Write(path, shape.Config(vocabulary.VocabSize), shape.SeparateOutput, vocabulary, scheme, seed);
    }

    /// <summary>FNV-1a of a string: the same in every process (string.GetHashCode is not).</summary>
    public static ulong StableHash(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in s)
        {
            h ^= c;
            h *= 1099511628211UL;
        }
        return h;
    }
}

/// <summary>Deterministic standard normal samples (xorshift64* and Box-Muller).</summary>
public sealed class GaussianRandom(ulong seed)
{
    private ulong _state = seed == 0 ? 0x853C49E6748FEA9BUL : seed;
    private float? _spare;

    /// <summary>The next N(0, 1) sample.</summary>
    public float Next()
    {
        if (_spare is { } s)
        {
            _spare = null;
            return s;
        }
        double u1 = (NextBits() + 1.0) / 9007199254740993.0, u2 = NextBits() / 9007199254740992.0;
        double r = Math.Sqrt(-2 * Math.Log(u1));
        _spare = (float)(r * Math.Sin(2 * Math.PI * u2));
        return (float)(r * Math.Cos(2 * Math.PI * u2));
    }

    private ulong NextBits()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return (_state * 0x2545F4914F6CDD1DUL) >> 11;
    }
}
