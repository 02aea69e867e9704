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
/// Usage: --model M [-p 128] [-n 64] [-t 1,2] [-r 3] [--json FILE] --vs-llamacpp
/// </summary>
public static class VersusLlamaCpp
{
    private sealed record Row(string Model, string Type, int Threads, string Test, double ClockLM, double LlamaCpp)
    {
        public double Ratio => ClockLM / LlamaCpp;
    }

    public static int Run(string[] args)
    {
        string? model = null, json = null;
        int prompt = 128, gen = 64, reps = 3;
        int[] threads = [1, 2];
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
                    case "--vs-llamacpp": break;
                    default: throw new ArgumentException($"unknown argument '{args[i]}'");
                }
            }
            if (model is null) throw new ArgumentException("--model is required");
            if (prompt < 0 || gen < 0 || reps < 1 || threads.Any(t => t < 1)) throw new ArgumentException("counts must be positive");
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }

        NativeLogConfig.llama_log_set((level, message) => { });
        using var clockModel = Model.Load(model);
        string type = clockModel.Weights.Layers[0].Wq.Type.ToString();
        string name = Path.GetFileName(model);
        var rows = new List<Row>();
        Console.WriteLine($"| {"model",-28} | {"type",6} | {"threads",7} | {"test",7} | {"ClockLM t/s",12} | {"llama.cpp t/s",14} | {"ratio",6} |");
        Console.WriteLine($"| {new string('-', 28)} | {new string('-', 6)} | {new string('-', 7)} | {new string('-', 7)} | {new string('-', 12)} | {new string('-', 14)} | {new string('-', 6)} |");
        foreach (int t in threads)
        {
            int context = Math.Max(prompt, gen) + 8;
            using var pool = new WorkerPool(t - 1);
            var transformer = clockModel.CreateTransformer(Math.Min(clockModel.Config.ContextLength, context), pool);
            var parameters = new ModelParams(model)
            {
                ContextSize = (uint)context, BatchSize = (uint)Math.Max(prompt, 1), UBatchSize = (uint)Math.Max(prompt, 1),
                GpuLayerCount = 0, Threads = t, BatchThreads = t,
            };
            using var weights = LLamaWeights.LoadFromFile(parameters);
            using var context0 = weights.CreateContext(parameters);
            foreach (var (isPrompt, count) in new[] { (true, prompt), (false, gen) })
            {
                if (count == 0) continue;
                var ids = Throughput.Ids(count, clockModel.Config.VocabSize);
                // Warm-up both, then alternate A and B.
                Throughput.Run(transformer, isPrompt, count);
                LlamaCppRun(context0, ids, isPrompt);
                var a = new double[reps];
                var b = new double[reps];
                for (int r = 0; r < reps; r++)
                {
                    a[r] = Throughput.Run(transformer, isPrompt, count);
                    b[r] = LlamaCppRun(context0, ids, isPrompt);
                }
                var row = new Row(name, type, t, (isPrompt ? "pp" : "tg") + count, Throughput.Median(a), Throughput.Median(b));
                rows.Add(row);
                Console.WriteLine($"| {name,-28} | {type,6} | {t,7} | {row.Test,7} | {row.ClockLM,12:F2} | {row.LlamaCpp,14:F2} | {row.Ratio,6:F2} |");
            }
        }
        if (json is not null)
        {
            var output = rows.Select(r => new { model = r.Model, type = r.Type, threads = r.Threads, test = r.Test, clocklm_tps = r.ClockLM, llamacpp_tps = r.LlamaCpp, ratio = r.Ratio });
            File.WriteAllText(json, JsonSerializer.Serialize(output, new JsonSerializerOptions { WriteIndented = true }));
        }
        return 0;
    }

    /// <summary>One llama.cpp repetition from an empty cache: the whole prompt as one batch, or tokens one at a time.</summary>
    private static double LlamaCppRun(LLamaContext context, int[] ids, bool prompt)
    {
        context.NativeHandle.MemoryClear();
        var clock = Stopwatch.StartNew();
        if (prompt)
        {
            var batch = new LLamaBatch();
            for (int i = 0; i < ids.Length; i++) batch.Add((LLamaToken)ids[i], (LLamaPos)i, LLamaSeqId.Zero, i == ids.Length - 1);
            Check(context.NativeHandle.Decode(batch));
        }
        else
        {
            var batch = new LLamaBatch();
            for (int i = 0; i < ids.Length; i++)
            {
                batch.Clear();
                batch.Add((LLamaToken)ids[i], (LLamaPos)i, LLamaSeqId.Zero, true);
                Check(context.NativeHandle.Decode(batch));
            }
        }
        return ids.Length / clock.Elapsed.TotalSeconds;
    }

    private static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {result}");
    }
}
