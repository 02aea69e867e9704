using System.Diagnostics;
using System.Text.Json;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Tensors;
using LLama;
using LLama.Common;
using LLama.Native;

namespace ClockLM.Bench;

/// <summary>
/// `--vs-llamacpp`: runs the same model file through ClockLM and llama.cpp (LLamaSharp's native build) in one
/// process, alternating A and B repetitions so both see the same machine conditions, and prints per row both speeds
/// and the ClockLM/llama.cpp ratio of the medians.
/// Prompt rows (ppN) evaluate N tokens from an empty cache: ClockLM in chunks of --ubatch tokens (default: the
/// library's), llama.cpp as one batch with n_batch = n_ubatch = N. With --batch B a row tgNxB has B sequences
/// generating N tokens each together (aggregate tokens/s): ClockLM through BatchDecoder, llama.cpp as one llama_batch
/// of B tokens with sequence ids 0..B-1 per step; a line after it gives ClockLM's batched/single-sequence ratio.
/// Every timed repetition starts after a pause (--settle, default 250 ms): an engine's worker threads keep polling
/// for work for a while after its run (llama.cpp's OpenMP threads for milliseconds), and without the pause they could
/// take a core from the other engine's next repetition.
/// With --grammar FILE.gbnf (or --json-schema FILE.json, converted by ClockLM) two rows more per thread count:
/// tgN-greedy, N tokens chosen greedily from the logits by each engine's sampler, and tgN-grammar, the same under the
/// grammar (llama.cpp: LLamaSharp's DefaultSamplingPipeline with the grammar and its Basic optimization, which tries
/// the unconstrained choice first, as llama.cpp's server does). Each constrained repetition starts from a fresh
/// grammar on both engines, as a new request does; a grammar that completes starts again on the same sequence.
/// Both engines keep keys and values in the same KV cache types (--cache-type-k/-v f32|f16|q8_0, default f16 as in
/// both); llama.cpp runs its flash-attention kernel where --flash-attn says (default: only when the value cache is
/// quantized, which it requires). With --depth D (llama-bench's -d; several, comma-separated) the rows ppN @ dD and
/// tgN @ dD run after D cached tokens: each engine fills its cache once, untimed, and every repetition continues from
/// position D (llama.cpp's cache is cut back to D positions before each).
/// Usage: --model M [-p 128] [-n 64] [-t 1,2] [-r 3] [-d 0,2048] [--ubatch 32] [--batch B] [--cache-type-k T]
/// [--cache-type-v T] [--flash-attn on|off] [--grammar F | --json-schema F] [--settle MS] [--json FILE] --vs-llamacpp
/// </summary>
public static class VersusLlamaCpp
{
    private sealed record Row(string Model, string Type, int Threads, string Test, double ClockLM, double LlamaCpp, string TypeK = "f16", string TypeV = "f16", int Depth = 0)
    {
        public double Ratio => ClockLM / LlamaCpp;
    }

    public static int Run(string[] args)
    {
        string? model = null, json = null, gbnf = null;
        int prompt = 128, gen = 64, reps = 3, batch = 0, settle = 250;
        int? ubatch = null;
        int[] threads = [1, 2], depths = [0];
        var cache = KvCacheOptions.Default;
        bool? flashAttention = null;
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--model" or "-m": model = Next(); break;
                    case "-p": prompt = int.Parse(Next()); break;
                    case "-n": gen = int.Parse(Next()); break;
                    case "-r": reps = int.Parse(Next()); break;
                    case "-t": threads = Next().Split(',').Select(int.Parse).ToArray(); break;
                    case "--json": json = Next(); break;
                    case "--ubatch": ubatch = int.Parse(Next()); break;
                    case "--batch": batch = int.Parse(Next()); break;
                    case "--settle": settle = int.Parse(Next()); break;
                    case "--grammar": gbnf = File.ReadAllText(Next()); break;
                    case "--json-schema": gbnf = ClockLM.Sampling.Grammars.JsonSchemaGrammar.ToGbnf(File.ReadAllText(Next())); break;
                    case "-d" or "--depth": depths = Next().Split(',').Select(int.Parse).ToArray(); break;
                    case "--cache-type-k" or "-ctk": cache = cache with { KeyType = KvCacheOptions.ParseType(Next()) }; break;
                    case "--cache-type-v" or "-ctv": cache = cache with { ValueType = KvCacheOptions.ParseType(Next()) }; break;
                    case "--flash-attn" or "-fa":
                        string onOff = Next();
                        flashAttention = onOff is "on" or "1" ? true : onOff is "off" or "0" ? false : throw new ArgumentException($"--flash-attn is '{onOff}', expected on or off");
                        break;
                    case "--vs-llamacpp": break;
                    default: throw new ArgumentException($"unknown argument '{args[i]}'");
                }
            }
            if (model is null) throw new ArgumentException("--model is required");
            if (prompt < 0 || gen < 0 || reps < 1 || threads.Any(t => t < 1) || ubatch < 1 || batch < 0 || depths.Any(d => d < 0)) throw new ArgumentException("counts must be positive");
            if (flashAttention == false && cache.ValueType != GgmlType.F16 && cache.ValueType != GgmlType.F32)
                throw new ArgumentException("llama.cpp needs --flash-attn on for a quantized value cache");
        }
        catch (Exception e) when (e is ArgumentException or FormatException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }

        NativeLogConfig.llama_log_set((level, message) => { });
        using var clockModel = Model.Load(model);
        string type = clockModel.Weights.Layers[0].Wq.Type.ToString();
        string name = Path.GetFileName(model);
        var rows = new List<Row>();
        bool fa = flashAttention ?? (cache.ValueType is not (GgmlType.F16 or GgmlType.F32));
        string typeK = KvCacheOptions.Name(cache.KeyType), typeV = KvCacheOptions.Name(cache.ValueType);
        Console.WriteLine($"KV cache: keys {typeK}, values {typeV} in both; llama.cpp flash attention {(fa ? "on" : "off")}");
        Console.WriteLine($"| {"model",-28} | {"type",6} | {"threads",7} | {"test",14} | {"ClockLM t/s",12} | {"llama.cpp t/s",14} | {"ratio",6} |");
        Console.WriteLine($"| {new string('-', 28)} | {new string('-', 6)} | {new string('-', 7)} | {new string('-', 14)} | {new string('-', 12)} | {new string('-', 14)} | {new string('-', 6)} |");
        foreach (int t in threads)
            foreach (int depth in depths)
            {
                int context = depth + Math.Max(prompt, gen) + 8;
                using var pool = new WorkerPool(t - 1);
                var transformer = clockModel.CreateTransformer(Throughput.ContextFor(clockModel, context - depth, depth), pool, cache);
                if (ubatch is { } ub) transformer.MicroBatch = ub;
                uint batchSize = (uint)Math.Max(Math.Max(prompt, 1), depth > 0 ? 512 : 1);
                var parameters = new ModelParams(model)
                {
                    ContextSize = (uint)context, BatchSize = batchSize, UBatchSize = batchSize,
                    GpuLayerCount = 0, Threads = t, BatchThreads = t,
                    TypeK = LlamaCppType(cache.KeyType), TypeV = LlamaCppType(cache.ValueType), FlashAttention = fa,
                };
                using var weights = LLamaWeights.LoadFromFile(parameters);
                using var context0 = weights.CreateContext(parameters);
                // The context both run after: filled once, untimed.
                Throughput.FillContext(transformer, depth);
                LlamaCppFill(context0, Throughput.DepthIds(depth, clockModel.Config.VocabSize), (int)batchSize);
                foreach (var (isPrompt, count) in new[] { (true, prompt), (false, gen) })
                {
                    if (count == 0) continue;
                    var ids = Throughput.Ids(count, clockModel.Config.VocabSize);
                    // Warm-up both, then alternate A and B.
                    Throughput.Run(transformer, isPrompt, count, depth);
                    LlamaCppRun(context0, ids, isPrompt, depth);
                    var a = new double[reps];
                    var b = new double[reps];
                    for (int r = 0; r < reps; r++)
                    {
                        Thread.Sleep(settle);
                        a[r] = Throughput.Run(transformer, isPrompt, count, depth);
                        Thread.Sleep(settle);
                        b[r] = LlamaCppRun(context0, ids, isPrompt, depth);
                    }
                    var row = new Row(name, type, t, Throughput.TestName(isPrompt, count, depth), Throughput.Median(a), Throughput.Median(b), typeK, typeV, depth);
                    rows.Add(row);
                    Console.WriteLine($"| {name,-28} | {type,6} | {t,7} | {row.Test,14} | {row.ClockLM,12:F2} | {row.LlamaCpp,14:F2} | {row.Ratio,6:F2} |");
                }
            }
        if (gbnf is not null)
            foreach (int t in threads)
                rows.AddRange(GrammarRows(model, clockModel, name, type, t, gbnf, gen > 0 ? gen : 64, reps, settle));
        if (batch > 0)
            foreach (int t in threads)
                rows.Add(BatchRow(model, clockModel, name, type, t, batch, gen > 0 ? gen : 32, reps, settle, cache, fa));
        if (json is not null)
        {
            var output = rows.Select(r => new
            {
                model = r.Model, type = r.Type, threads = r.Threads, type_k = r.TypeK, type_v = r.TypeV, n_depth = r.Depth, test = r.Test,
                clocklm_tps = r.ClockLM, llamacpp_tps = r.LlamaCpp, ratio = r.Ratio,
            });
            File.WriteAllText(json, JsonSerializer.Serialize(output, new JsonSerializerOptions { WriteIndented = true }));
        }
        return 0;
    }

    /// <summary>B sequences generating n tokens each together, on both engines; then ClockLM's single-sequence speed.</summary>
    private static Row BatchRow(string model, Model clockModel, string name, string type, int t, int batch, int n, int reps, int settle,
        KvCacheOptions cache, bool flashAttention)
    {
        using var pool = new WorkerPool(t - 1);
        var decoder = new BatchDecoder(clockModel.Config, clockModel.Weights, pool);
        int context = Math.Min(clockModel.Config.ContextLength, n + 8);
        var sequences = Enumerable.Range(0, batch).Select(_ => decoder.CreateSequence(context, cache)).ToArray();
        var single = clockModel.CreateTransformer(context, pool, cache);
        var parameters = new ModelParams(model)
        {
            ContextSize = (uint)(batch * (n + 8)), BatchSize = (uint)Math.Max(batch, 8), UBatchSize = (uint)Math.Max(batch, 8),
            SeqMax = (uint)batch, GpuLayerCount = 0, Threads = t, BatchThreads = t,
            TypeK = LlamaCppType(cache.KeyType), TypeV = LlamaCppType(cache.ValueType), FlashAttention = flashAttention,
        };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var llama = weights.CreateContext(parameters);
        var ids = Throughput.Ids(n + batch, clockModel.Config.VocabSize);
        Throughput.BatchGenerationTokensPerSecond(decoder, sequences, n);
        LlamaCppBatchRun(llama, ids, batch, n);
        Throughput.Run(single, false, n);
        var a = new double[reps];
        var b = new double[reps];
        var c = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            Thread.Sleep(settle);
            a[r] = Throughput.BatchGenerationTokensPerSecond(decoder, sequences, n);
            Thread.Sleep(settle);
            b[r] = LlamaCppBatchRun(llama, ids, batch, n);
            Thread.Sleep(settle);
            c[r] = Throughput.Run(single, false, n);
        }
        var row = new Row(name, type, t, $"tg{n}x{batch}", Throughput.Median(a), Throughput.Median(b), KvCacheOptions.Name(cache.KeyType), KvCacheOptions.Name(cache.ValueType));
        Console.WriteLine($"| {name,-28} | {type,6} | {t,7} | {row.Test,14} | {row.ClockLM,12:F2} | {row.LlamaCpp,14:F2} | {row.Ratio,6:F2} |");
        Console.WriteLine($"  ClockLM {batch} sequences together vs one alone (tg{n}, {Throughput.Median(c):F2} t/s): {row.ClockLM / Throughput.Median(c):F2}x aggregate");
        return row;
    }

    /// <summary>Greedy decoding through each engine's sampler, without and with the grammar.</summary>
    private static List<Row> GrammarRows(string model, Model clockModel, string name, string type, int t, string gbnf, int n, int reps, int settle)
    {
        using var pool = new WorkerPool(t - 1);
        var transformer = clockModel.CreateTransformer(Math.Min(clockModel.Config.ContextLength, n + 8), pool);
        var parameters = new ModelParams(model) { ContextSize = (uint)(n + 8), BatchSize = 8, UBatchSize = 8, GpuLayerCount = 0, Threads = t, BatchThreads = t };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var llama = weights.CreateContext(parameters);
        int bos = clockModel.Tokenizer.BosId >= 0 ? clockModel.Tokenizer.BosId : 0;
        var rows = new List<Row>();
        foreach (bool constrained in new[] { false, true })
        {
            double ClockRun() => Throughput.SampledGenerationTokensPerSecond(transformer, clockModel, n,
                constrained ? ClockLM.Sampling.Grammars.Grammar.Parse(gbnf) : null, out _);
            double LlamaRun() => LlamaCppSampledRun(llama, bos, n, constrained ? gbnf : null);
            ClockRun();
            LlamaRun();
            var a = new double[reps];
            var b = new double[reps];
            for (int r = 0; r < reps; r++)
            {
                Thread.Sleep(settle);
                a[r] = ClockRun();
                Thread.Sleep(settle);
                b[r] = LlamaRun();
            }
            var row = new Row(name, type, t, $"tg{n}-{(constrained ? "grammar" : "greedy")}", Throughput.Median(a), Throughput.Median(b));
            rows.Add(row);
            Console.WriteLine($"| {name,-28} | {type,6} | {t,7} | {row.Test,7} | {row.ClockLM,12:F2} | {row.LlamaCpp,14:F2} | {row.Ratio,6:F2} |");
        }
        Console.WriteLine($"  grammar/greedy: ClockLM {rows[1].ClockLM / rows[0].ClockLM:F3}, llama.cpp {rows[1].LlamaCpp / rows[0].LlamaCpp:F3}");
        return rows;
    }

    /// <summary>One llama.cpp repetition of n tokens from BOS, each chosen greedily by LLamaSharp's sampling pipeline
    /// (under <paramref name="gbnf"/> when given; a completed grammar starts again).</summary>
    private static double LlamaCppSampledRun(LLamaContext context, int bos, int n, string? gbnf)
    {
        context.NativeHandle.MemoryClear();
        var pipeline = new LLama.Sampling.DefaultSamplingPipeline
        {
            Temperature = 0,
            Grammar = gbnf is null ? null : new LLama.Sampling.Grammar(gbnf, "root"),
            GrammarOptimization = LLama.Sampling.DefaultSamplingPipeline.GrammarOptimizationMode.Basic,
        };
        var vocab = context.NativeHandle.ModelHandle.Vocab;
        var batch = new LLamaBatch();
        var token = (LLamaToken)bos;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < n; i++)
        {
            batch.Clear();
            batch.Add(token, (LLamaPos)i, LLamaSeqId.Zero, true);
            Check(context.NativeHandle.Decode(batch));
            token = pipeline.Sample(context.NativeHandle, 0);
            if (gbnf is not null && token.IsEndOfGeneration(vocab))
            {
                pipeline.Reset();
                token = pipeline.Sample(context.NativeHandle, 0);
            }
        }
        double perSecond = n / clock.Elapsed.TotalSeconds;
        pipeline.Dispose();
        return perSecond;
    }

    /// <summary>One llama.cpp repetition of <paramref name="batch"/> sequences (ids 0..B-1) decoding n tokens each in one batch per step.</summary>
    private static double LlamaCppBatchRun(LLamaContext context, int[] ids, int batch, int n)
    {
        context.NativeHandle.MemoryClear();
        var clock = Stopwatch.StartNew();
        var step = new LLamaBatch();
        for (int i = 0; i < n; i++)
        {
            step.Clear();
            for (int s = 0; s < batch; s++) step.Add((LLamaToken)ids[i + s], (LLamaPos)i, (LLamaSeqId)s, true);
            Check(context.NativeHandle.Decode(step));
        }
        return (double)batch * n / clock.Elapsed.TotalSeconds;
    }

    /// <summary>One llama.cpp repetition after the first <paramref name="depth"/> cached positions (the rest of the cache
    /// removed first): the whole prompt as one batch, or tokens one at a time.</summary>
    private static double LlamaCppRun(LLamaContext context, int[] ids, bool prompt, int depth)
    {
        if (depth == 0) context.NativeHandle.MemoryClear();
        else context.NativeHandle.MemorySequenceRemove(LLamaSeqId.Zero, (LLamaPos)depth, (LLamaPos)(-1));
        var clock = Stopwatch.StartNew();
        if (prompt)
        {
            var batch = new LLamaBatch();
            for (int i = 0; i < ids.Length; i++) batch.Add((LLamaToken)ids[i], (LLamaPos)(depth + i), LLamaSeqId.Zero, i == ids.Length - 1);
            Check(context.NativeHandle.Decode(batch));
        }
        else
        {
            var batch = new LLamaBatch();
            for (int i = 0; i < ids.Length; i++)
            {
                batch.Clear();
                batch.Add((LLamaToken)ids[i], (LLamaPos)(depth + i), LLamaSeqId.Zero, true);
                Check(context.NativeHandle.Decode(batch));
            }
        }
        return ids.Length / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Fills llama.cpp's cache with <paramref name="ids"/> at positions 0.. in batches of <paramref name="batchSize"/>.</summary>
    private static void LlamaCppFill(LLamaContext context, int[] ids, int batchSize)
    {
        context.NativeHandle.MemoryClear();
        var batch = new LLamaBatch();
        for (int start = 0; start < ids.Length; start += batchSize)
        {
            batch.Clear();
            int n = Math.Min(batchSize, ids.Length - start);
            for (int i = 0; i < n; i++) batch.Add((LLamaToken)ids[start + i], (LLamaPos)(start + i), LLamaSeqId.Zero, start + i == ids.Length - 1);
            Check(context.NativeHandle.Decode(batch));
        }
    }

    /// <summary>llama.cpp's name for a KV cache type.</summary>
    private static GGMLType LlamaCppType(GgmlType type) => type switch
    {
        GgmlType.F32 => GGMLType.GGML_TYPE_F32,
        GgmlType.F16 => GGMLType.GGML_TYPE_F16,
        GgmlType.Q8_0 => GGMLType.GGML_TYPE_Q8_0,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "a KV cache is F32, F16 or Q8_0"),
    };

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {result}");
    }
}
