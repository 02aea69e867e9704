using ClockLM.Formats;
using ClockLM.Gguf;
using ClockLM.Tensors;
using ClockLM.Tokenizers;

namespace ClockLM.Models;

/// <summary>
/// A model file opened for inference: its configuration, weights (memory-mapped) and tokenizer.
/// Reads GGUF files and llama2.c checkpoints (with their tokenizer.bin). Dispose to unmap the file.
/// </summary>
public sealed class Model : IDisposable
{
    private readonly IDisposable _source;

    private Model(string path, IDisposable source, LlamaConfig config, LlamaWeights weights, Tokenizer tokenizer, GgufFile? gguf)
    {
        Path = path;
        _source = source;
        Config = config;
        Weights = weights;
        Tokenizer = tokenizer;
        Gguf = gguf;
    }

    /// <summary>The model file.</summary>
    public string Path { get; }

    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }
    public Tokenizer Tokenizer { get; }

    /// <summary>The GGUF file, when the model came from one.</summary>
    public GgufFile? Gguf { get; }

    /// <summary>Size of the model file in bytes.</summary>
    public long FileBytes => new FileInfo(Path).Length;

    /// <summary>Opens a GGUF file, or a llama2.c checkpoint with its tokenizer.bin (found beside the model when
    /// <paramref name="tokenizerPath"/> is null: <c>tok{vocab}.bin</c> or <c>tokenizer.bin</c>), laid out and run as
    /// <paramref name="options"/> say (<see cref="ModelOptions.Default"/> when null).</summary>
    public static Model Load(string path, string? tokenizerPath = null, ModelOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such model file", path);
        // A .gguf file with a bad magic number gets the GGUF reader's error, not the llama2.c one.
        if (IsGguf(path) || path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            var file = GgufFile.Open(path);
            try
            {
                var config = LlamaGguf.ReadConfig(file);
                var weights = LlamaGguf.ReadWeights(file, config, options);
                var tokenizer = tokenizerPath is null ? Tokenizer.Load(file) : LoadTokenizerFile(tokenizerPath, config.VocabSize);
                if (tokenizer.VocabSize != config.VocabSize)
                    throw new GgufFormatException(path, $"the tokenizer has {tokenizer.VocabSize} tokens but the embedding has {config.VocabSize} rows");
                return new Model(path, file, config, weights, tokenizer, file);
            }
            catch
            {
                file.Dispose();
                throw;
            }
        }

        var checkpoint = Llama2cCheckpoint.Open(path);
        try
        {
            string tokPath = tokenizerPath ?? FindLlama2cTokenizer(path, checkpoint.Config.VocabSize);
            var tokenizer = LoadTokenizerFile(tokPath, checkpoint.Config.VocabSize);
            return new Model(path, checkpoint, checkpoint.Config, checkpoint.Weights, tokenizer, gguf: null);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>A processor (forward pass with its own KV cache) for this model.</summary>
    /// <param name="contextLength">Positions to hold; the model's own context length when null.</param>
    /// <param name="pool">Threads for the matrix-vector products; the calling thread alone when null.</param>
    public Transformer CreateTransformer(int? contextLength = null, WorkerPool? pool = null)
    {
        int ctx = contextLength ?? Config.ContextLength;
        if (ctx <= 0) throw new ArgumentOutOfRangeException(nameof(contextLength), ctx, "context length must be positive");
        return new Transformer(Config, Weights, ctx, pool);
    }

    private static bool IsGguf(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[4];
        return stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8);
    }

    private static Tokenizer LoadTokenizerFile(string path, int vocabSize)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such tokenizer file", path);
        if (IsGguf(path))
        {
            using var file = GgufFile.Open(path);
            return Tokenizer.Load(file);
        }
        return Llama2cTokenizer.Load(path, vocabSize);
    }

    private static string FindLlama2cTokenizer(string modelPath, int vocabSize)
    {
        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(modelPath))!;
        foreach (string name in new[] { $"tok{vocabSize}.bin", "tokenizer.bin" })
        {
            string candidate = System.IO.Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"{modelPath}: a llama2.c checkpoint needs its tokenizer; pass --tokenizer (no tok{vocabSize}.bin or tokenizer.bin beside the model)");
    }

    /// <summary>Stops fetching weights ahead and unmaps the model file.</summary>
    public void Dispose()
    {
        Weights.Fetch?.Dispose();
        _source.Dispose();
    }
}
