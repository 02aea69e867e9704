using LLama;
using LLama.Common;
using LLama.Native;

namespace ClockLM.Tests.Oracle;

/// <summary>
/// llama.cpp (through LLamaSharp's native build) as a reference implementation: logits and greedy tokens for given
/// token ids, bypassing its tokenizer. One context at a time: tests using it are in one collection, run serially.
/// </summary>
public sealed class LlamaCppOracle : IDisposable
{
    private static readonly object Gate = new();
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;

    public LlamaCppOracle(string modelPath, int contextSize = 256, int threads = 2)
    {
        lock (Gate)
        {
            if (!_logConfigured)
            {
                NativeLogConfig.llama_log_set((level, message) => { });
                _logConfigured = true;
            }
        }
        var parameters = new ModelParams(modelPath)
        {
            ContextSize = (uint)contextSize,
            BatchSize = (uint)contextSize,
            GpuLayerCount = 0,
            Threads = threads,
            // An F32 KV cache and no flash attention, as ClockLM computes attention: llama.cpp's default F16 cache
            // and its flash-attention kernel round keys, values and queries to F16 (about 1e-3 relative error).
            TypeK = GGMLType.GGML_TYPE_F32,
            TypeV = GGMLType.GGML_TYPE_F32,
            FlashAttention = false,
        };
        _weights = LLamaWeights.LoadFromFile(parameters);
        _context = _weights.CreateContext(parameters);
    }

    private static bool _logConfigured;

    /// <summary>Evaluates <paramref name="tokens"/> from position 0 (a fresh KV cache) and returns the logits after the last one.</summary>
    public float[] PromptLogits(IReadOnlyList<int> tokens)
    {
        _context.NativeHandle.MemoryClear();
        return Evaluate(tokens, 0);
    }

    /// <summary>Evaluates tokens at positions startPos, startPos+1, … on top of the cache and returns the last logits.</summary>
    public float[] Evaluate(IReadOnlyList<int> tokens, int startPos)
    {
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Count; i++)
            batch.Add((LLamaToken)tokens[i], (LLamaPos)(startPos + i), LLamaSeqId.Zero, i == tokens.Count - 1);
        var result = _context.NativeHandle.Decode(batch);
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {result}");
        return _context.NativeHandle.GetLogitsIth(batch.TokenCount - 1).ToArray();
    }

    /// <summary>
    /// Applies a control vector as llama.cpp's <c>--control-vector</c> does (<c>llama_set_adapter_cvec</c>):
    /// <paramref name="data"/> holds n_embd floats per layer from layer 1 on (see <see cref="LlamaCppControlVector"/>),
    /// added after layers <paramref name="firstLayer"/> to <paramref name="lastLayer"/>; null removes it.
    /// </summary>
    public unsafe void SetControlVector(float[]? data, int nEmbd, int firstLayer, int lastLayer)
    {
        fixed (float* p = data)
        {
            int result = NativeApi.llama_set_adapter_cvec(_context.NativeHandle, p, (nuint)(data?.Length ?? 0), nEmbd, firstLayer, lastLayer);
            if (result != 0) throw new InvalidOperationException($"llama.cpp refused the control vector ({result})");
        }
    }

    /// <summary>Evaluates the prompt, then <paramref name="count"/> greedy tokens one at a time.</summary>
    public List<int> Greedy(IReadOnlyList<int> prompt, int count)
    {
        var logits = PromptLogits(prompt);
        var output = new List<int>();
        for (int i = 0; i < count; i++)
        {
            int next = ArgMax(logits);
            output.Add(next);
            if (i < count - 1) logits = Evaluate([next], prompt.Count + i);
        }
        return output;
    }

    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}

/// <summary>Tests that run llama.cpp share this collection so that only one native context runs at a time.</summary>
[CollectionDefinition("llama.cpp", DisableParallelization = true)]
public sealed class LlamaCppCollection;
