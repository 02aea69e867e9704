using System.Buffers.Binary;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Formats;

/// <summary>
/// A llama2.c checkpoint (the legacy <c>.bin</c> written by export.py's legacy format): a header of seven int32
/// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the
/// classifier is stored separately), then float32 weights in a fixed order. The file is memory-mapped.
/// </summary>
public sealed class Llama2cCheckpoint : IDisposable
{
    private const int HeaderBytes = 7 * sizeof(int);
    private readonly MappedFile _file;

    private Llama2cCheckpoint(MappedFile file, LlamaConfig config, LlamaWeights weights, bool sharedClassifier)
    {
        _file = file;
        Config = config;
        Weights = weights;
        SharedClassifier = sharedClassifier;
    }

    public LlamaConfig Config { get; }
    public LlamaWeights Weights { get; }

    /// <summary>True when the output head is the token embedding.</summary>
    public bool SharedClassifier { get; }

    /// <summary>The checkpoint's path.</summary>
    public string Path => _file.Path;

    /// <summary>Opens a checkpoint, its weights to run on <paramref name="kernels"/> (<see cref="KernelOptions.Best"/>
    /// when null); an invalid one is a <see cref="ModelFormatException"/>.</summary>
    public static Llama2cCheckpoint Open(string path, KernelOptions? kernels = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        long length = new FileInfo(path).Length;
        if (length < HeaderBytes)
            throw new ModelFormatException(path, $"file is {length} bytes, too short for a llama2.c header ({HeaderBytes} bytes)");
        var file = new MappedFile(path);
        try
        {
            var header = new int[7];
            for (int i = 0; i < header.Length; i++)
                header[i] = BinaryPrimitives.ReadInt32LittleEndian(file.Span(4 * i, 4));
            int Field(int i) => header[i];
            int vocab = Field(5);
            bool shared = vocab > 0;
            var config = new LlamaConfig(Field(0), Field(1), Field(2), Field(3), Field(4), vocab == int.MinValue ? 0 : Math.Abs(vocab), Field(6));
            if (config.Validate() is { } problem)
                throw new ModelFormatException(path, $"header is not a llama2.c checkpoint: {problem}");

            // Weight layout, in file order (run.c's memory_map_weights).
            int dim = config.Dim, hidden = config.HiddenDim, layers = config.Layers, kvDim = config.KvDim;
            long d = dim, vocabRows = config.VocabSize;
            long offset = HeaderBytes;
            long expected = HeaderBytes + 4 * (vocabRows * d
                + layers * (d + d * d + 2 * d * kvDim + d * d + d + 3 * d * hidden)
                + d + (long)config.ContextLength * config.HeadSize)
                + (shared ? 0 : 4 * vocabRows * d);
            if (length < expected)
                throw new ModelFormatException(path, $"file is {length} bytes but its header (dim {dim}, layers {layers}, vocab {config.VocabSize}) needs {expected}: truncated?");
            // Bytes past the weights mean the header does not describe the file (more layers than n_layers, say).
            if (length > expected)
                throw new ModelFormatException(path, $"file is {length} bytes but its header (dim {dim}, layers {layers}, vocab {config.VocabSize}, " +
                    $"{(shared ? "shared" : "separate")} classifier) describes {expected}: {length - expected} bytes are not accounted for");

            TensorView Next(int rows, int cols)
            {
                var view = file.View(offset, GgmlType.F32, rows, cols);
                offset += 4L * rows * cols;
                return view;
            }
            float[] NextVector(int n) => Floats(Next(1, n));

            var embedding = Next(config.VocabSize, dim);
            var attnNorm = Enumerable.Range(0, layers).Select(_ => NextVector(dim)).ToArray();
            var wq = Enumerable.Range(0, layers).Select(_ => Next(dim, dim)).ToArray();
            var wk = Enumerable.Range(0, layers).Select(_ => Next(kvDim, dim)).ToArray();
            var wv = Enumerable.Range(0, layers).Select(_ => Next(kvDim, dim)).ToArray();
            var wo = Enumerable.Range(0, layers).Select(_ => Next(dim, dim)).ToArray();
            var ffnNorm = Enumerable.Range(0, layers).Select(_ => NextVector(dim)).ToArray();
            var w1 = Enumerable.Range(0, layers).Select(_ => Next(hidden, dim)).ToArray();
            var w2 = Enumerable.Range(0, layers).Select(_ => Next(dim, hidden)).ToArray();
            var w3 = Enumerable.Range(0, layers).Select(_ => Next(hidden, dim)).ToArray();
            var finalNorm = NextVector(dim);
            offset += 4L * config.ContextLength * config.HeadSize; // freq_cis_real and freq_cis_imag (legacy, unused)
            var output = shared ? embedding : Next(config.VocabSize, dim);

            var weights = new LlamaWeights
            {
                TokenEmbedding = embedding,
                Layers = Enumerable.Range(0, layers).Select(l => new LlamaLayerWeights
                {
                    AttnNorm = attnNorm[l], Wq = wq[l], Wk = wk[l], Wv = wv[l], Wo = wo[l],
                    FfnNorm = ffnNorm[l], W1 = w1[l], W2 = w2[l], W3 = w3[l],
                }).ToArray(),
                FinalNorm = finalNorm,
                Output = output,
                Kernels = kernels ?? KernelOptions.Best,
            };
            return new Llama2cCheckpoint(file, config, weights, shared);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static float[] Floats(TensorView view)
    {
        var result = new float[view.Cols];
        view.DequantizeRow(0, result);
        return result;
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose() => _file.Dispose();
}
