using ClockLM.Formats;
using ClockLM.Gguf;
using ClockLM.Tensors;
using ClockLM.Tokenizers;
using Microsoft.Extensions.Logging;

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

    /// <summary>The model's architecture (<c>general.architecture</c>; "llama" for a llama2.c checkpoint).</summary>
    public string Architecture => Gguf?.GetStringOrNull("general.architecture") ?? "llama";

    /// <summary>
    /// The LoRA adapters the model runs with (llama.cpp's <c>--lora</c>, <c>--lora-scaled</c>), for every processor of
    /// this model, those made before included; null (the default) for none. The mapped weights are never modified.
    /// Set it between tokens, not while a processor is running one.
    /// </summary>
    public LoraAdapters? Lora
    {
        get => Weights.Lora;
        set => Weights.Lora = value is { PairCount: > 0 } ? value : null;
    }

    /// <summary>Resolves <paramref name="adapters"/> against this model (<see cref="LoraAdapters.Create"/>) and runs the
    /// model with them from now on.</summary>
    /// <exception cref="ArgumentException">An adapter does not fit this model; the message says which file and tensor.</exception>
    public void UseLora(IEnumerable<ScaledLora> adapters) => Lora = CreateLora(adapters);

    /// <summary>Resolves <paramref name="adapters"/> against this model (<see cref="LoraAdapters.Create"/>) without
    /// running the model with them: for one processor (<see cref="Transformer.Lora"/>), such as a server request's.</summary>
    /// <exception cref="ArgumentException">An adapter does not fit this model; the message says which file and tensor.</exception>
    public LoraAdapters CreateLora(IEnumerable<ScaledLora> adapters) =>
        LoraAdapters.Create(Config, Weights, Architecture, adapters, _tensorNames ??= Gguf?.Tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal));

    private HashSet<string>? _tensorNames;

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
                if (file.Tensors.Count == 0 && file.Has("tokenizer.ggml.tokens"))
                    throw new GgufFormatException(path, "the file holds a vocabulary and no weights: it can tokenize and detokenize (clocklm tokenize, detokenize, and serve's /tokenize and /detokenize), not run");
                var config = LlamaGguf.ReadConfig(file);
                var weights = LlamaGguf.ReadWeights(file, config, options);
                Report(path, weights, options);
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

        var checkpoint = Llama2cCheckpoint.Open(path, options?.Kernels);
        try
        {
            Report(path, checkpoint.Weights, options);
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

    /// <summary>
    /// Reads only the tokenizer of a model file: a GGUF file's vocabulary (llama.cpp's vocabulary-only
    /// <c>ggml-vocab-*.gguf</c> files, which hold no weights, included), or a llama2.c checkpoint's tokenizer.bin.
    /// </summary>
    public static Tokenizer LoadTokenizer(string path, string? tokenizerPath = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such model file", path);
        if (tokenizerPath is null && (IsGguf(path) || path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)))
        {
            using var file = GgufFile.Open(path);
            return Tokenizer.Load(file);
        }
        using var model = Load(path, tokenizerPath); // a llama2.c tokenizer.bin needs the vocabulary size in the checkpoint
        return model.Tokenizer;
    }

    /// <summary>True when <paramref name="path"/> is a GGUF file with a vocabulary and no tensors, as llama.cpp's
    /// <c>ggml-vocab-*.gguf</c> test files are.</summary>
    public static bool IsVocabularyOnly(string path)
    {
        if (!File.Exists(path) || !IsGguf(path)) return false;
        using var file = GgufFile.Open(path);
        return file.Tensors.Count == 0 && file.Has("tokenizer.ggml.tokens");
    }

    /// <summary>A processor (forward pass with its own KV cache) for this model.</summary>
    /// <param name="contextLength">Positions to hold; the model's own context length when null.</param>
    /// <param name="pool">Threads for the matrix-vector products; the calling thread alone when null.</param>
    /// <param name="cache">The KV cache's types; F16 keys and values (<see cref="KvCacheOptions.Default"/>) when null.</param>
    public Transformer CreateTransformer(int? contextLength = null, WorkerPool? pool = null, KvCacheOptions? cache = null)
    {
        int ctx = contextLength ?? Config.ContextLength;
        if (ctx <= 0) throw new ArgumentOutOfRangeException(nameof(contextLength), ctx, "context length must be positive");
        CheckMemoryFor(ctx, 1, cache);
        return new Transformer(Config, Weights, ctx, pool, cache);
    }

    /// <summary>Logs, once per load, the kernels the weights run on and the fast paths they run without
    /// (<see cref="LlamaWeights.KernelFallbacks"/>, which counts them).</summary>
    private static void Report(string path, LlamaWeights weights, ModelOptions? options)
    {
        if (options?.Logger is not { } logger) return;
        int packed = weights.PackedStorage?.Length ?? 0;
        logger.LogInformation("{Model}: kernels {Kernels}, {Packed} matrices packed", path, weights.Kernels.Describe(), packed);
        var fallbacks = weights.KernelFallbacks;
        if (fallbacks.Count == 0) return;
        const int shown = 4;
        string more = fallbacks.Count > shown ? $"; and {fallbacks.Count - shown} more" : "";
        logger.LogWarning("{Model}: {Count} fast paths do not apply: {Fallbacks}{More}", path, fallbacks.Count, string.Join("; ", fallbacks.Take(shown)), more);
    }

    /// <summary>Bytes of one KV cache of <paramref name="contextLength"/> positions: keys and values in the types of
    /// <paramref name="cache"/> (F16 when null), (layers, positions, kv_dim) each.</summary>
    public long KvCacheBytes(int contextLength, KvCacheOptions? cache = null)
    {
        var (keyRow, valueRow) = KvRowBytes(cache ?? KvCacheOptions.Default);
        return (long)Config.Layers * contextLength * (keyRow + valueRow);
    }

    private (long Key, long Value) KvRowBytes(KvCacheOptions cache) =>
        (GgmlTypeInfo.RowBytes(cache.KeyType, Config.KvDim), GgmlTypeInfo.RowBytes(cache.ValueType, Config.KvDim));

    /// <summary>
    /// Checks that <paramref name="sequences"/> KV caches of <paramref name="contextLength"/> positions, of the types of
    /// <paramref name="cache"/>, fit in the memory this process can still use, before any is allocated (an allocation
    /// that does not fit ends the process).
    /// </summary>
    /// <exception cref="InsufficientMemoryException">They do not fit; the message gives the bytes needed and available.</exception>
    public void CheckMemoryFor(int contextLength, int sequences, KvCacheOptions? cache = null)
    {
        cache ??= KvCacheOptions.Default;
        long perSequence = KvCacheBytes(contextLength, cache);
        // Each layer's keys and values are one byte array each, which .NET caps at Array.MaxLength bytes.
        var (keyRow, valueRow) = KvRowBytes(cache);
        long widestRow = Math.Max(keyRow, valueRow);
        long arrayBytes = contextLength * widestRow;
        double needed = (double)perSequence * sequences;
        long available = AvailableMemoryBytes();
        if (arrayBytes <= Array.MaxLength && needed <= available) return;
        string what = sequences == 1 ? $"{contextLength} positions" : $"{sequences} sequences x {contextLength} positions";
        string limit = arrayBytes > Array.MaxLength
            ? $"one cache may hold at most {Array.MaxLength / widestRow} positions"
            : $"this machine has {FormatBytes(available)} available";
        throw new InsufficientMemoryException(
            $"the KV cache needs {FormatBytes(needed)} ({what} x {Config.Layers} layers, {cache}) but {limit}; " +
            "lower the context length (--ctx), the number of sequences (--parallel) or the cache types (--cache-type-k/-v)");
    }

    /// <summary>Memory the process may still allocate: the runtime's limit (physical memory or the container's) less
    /// what the heap holds, and on Linux no more than the kernel's MemAvailable.</summary>
    private static long AvailableMemoryBytes()
    {
        var info = GC.GetGCMemoryInfo();
        long available = info.TotalAvailableMemoryBytes - GC.GetTotalMemory(false);
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)
                    && long.TryParse(line["MemAvailable:".Length..].Trim().Split(' ')[0], out long kb))
                    available = Math.Min(available, kb * 1024);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Math.Max(available, 0);
    }

    private static string FormatBytes(double bytes) =>
        bytes >= 1L << 40 ? $"{bytes / (1L << 40):F1} TiB" : bytes >= 1 << 30 ? $"{bytes / (1 << 30):F1} GiB" : $"{bytes / (1 << 20):F1} MiB";

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
