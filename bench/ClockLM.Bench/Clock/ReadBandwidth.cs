using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Bench.Clock;

/// <summary>
/// `--bandwidth`: the read bandwidth `clocklm roofline` measures beside two others, same machine, same run, per thread
/// count: a plain streaming loop (four 256-bit accumulators, no prefetching, written here on its own) and what F16
/// decoding of a model streams (its weight bytes per token times tokens per second, KV cache left out). The roofline is
/// a ceiling, so it must read at least as much as either; the last column says whether it does.
/// </summary>
/// <remarks>
/// <c>--bandwidth [--model tinyllama-F16.gguf] [-t 1,2] [-n 16] [-r 5] [--rounds 2] [--buffer-mb 1024]</c>. Each figure
/// is the best of <c>-r</c> runs (the roofline's own policy: a slower run is the machine busy, not a property of it);
/// the three measurements take turns, <c>--rounds</c> times in alternating order, and the best of all rounds is printed.
/// Without <c>--model</c> the decode column is left out. F16 decode reads every weight once per token, the way the
/// roofline's loops read their buffers, so it is the engine's own streaming rate.
/// </remarks>
public static unsafe class ReadBandwidth
{
    public static int Run(string[] args)
    {
        string? model = Value(args, "--model");
        int[] threads = (Value(args, "-t") ?? "1,2").Split(',').Select(int.Parse).ToArray();
        int tokens = int.Parse(Value(args, "-n") ?? "16");
        int runs = int.Parse(Value(args, "-r") ?? "5");
        int rounds = int.Parse(Value(args, "--rounds") ?? "2");
        long buffer = long.Parse(Value(args, "--buffer-mb") ?? "1024") << 20;

        Console.WriteLine($"# read bandwidth, best of {runs} runs x {rounds} rounds; buffers of {buffer >> 20} MiB{(model is null ? "" : $"; F16 decode of {Path.GetFileName(model)}, {tokens} tokens a run")}");
        using var m = model is null ? null : Model.Load(model);
        if (m is not null && m.Weights.Layers[0].Wq.Type != GgmlType.F16)
            Console.WriteLine($"# note: {Path.GetFileName(model)} holds {m.Weights.Layers[0].Wq.Type} weights, not F16");
        Console.WriteLine($"| {"threads",7} | {"roofline GB/s",14} | {"best read loop",14} | {"plain loop GB/s",15} | {"decode GB/s",11} | {"decode t/s",10} | {"roofline >= both",16} |");
        Console.WriteLine($"| {new string('-', 7)} | {new string('-', 14)} | {new string('-', 14)} | {new string('-', 15)} | {new string('-', 11)} | {new string('-', 10)} | {new string('-', 16)} |");
        foreach (int t in threads)
        {
            BandwidthPoint roofline = new(t, 0);
            double plain = 0, decode = 0, tokensPerSecond = 0;
            for (int round = 0; round < rounds; round++)
            {
                // Alternate the order, so that no measurement always runs first (or right after the model's pages).
                var steps = new List<Action>
                {
                    () => { var p = Roofline.ReadBandwidth(t, buffer, runs); if (p.GigabytesPerSecond > roofline.GigabytesPerSecond) roofline = p; },
                    () => plain = Math.Max(plain, PlainLoop(t, buffer, runs)),
                };
                if (m is not null)
                    steps.Add(() =>
                    {
                        var (gbs, tps) = Decode(m, t, tokens, runs);
                        if (gbs > decode) (decode, tokensPerSecond) = (gbs, tps);
                    });
                if (round % 2 == 1) steps.Reverse();
                foreach (var step in steps) step();
            }
            bool ok = roofline.GigabytesPerSecond >= plain && roofline.GigabytesPerSecond >= decode;
            string decodeText = m is null ? "-" : $"{decode:F2}", tpsText = m is null ? "-" : $"{tokensPerSecond:F2}";
            Console.WriteLine($"| {t,7} | {roofline.GigabytesPerSecond,14:F2} | {roofline.Read,14} | {plain,15:F2} | {decodeText,11} | {tpsText,10} | {(ok ? "yes" : "NO"),16} |");
        }
        return 0;
    }

    /// <summary>The best GB/s of <paramref name="threads"/> threads summing their own shares of <paramref name="bytes"/>
    /// with a plain loop: four 256-bit float accumulators, one load each per step, no prefetching.</summary>
    private static double PlainLoop(int threads, long bytes, int runs)
    {
        long share = bytes / threads / 128 * 128;
        var seconds = new double[runs + 1];
        using var start = new Barrier(threads);
        using var end = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(index => new Thread(() =>
        {
            float* p = (float*)NativeMemory.AlignedAlloc((nuint)share, 4096);
            for (long i = 0; i < share / 4; i += 1024) p[i] = 1; // every page, touched by its reader
            float sink = 0;
            for (int run = 0; run <= runs; run++)
            {
                start.SignalAndWait();
                long t0 = Stopwatch.GetTimestamp();
                sink += Sum(p, share / 4);
                end.SignalAndWait();
                if (index == 0) seconds[run] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            }
            NativeMemory.AlignedFree(p);
            GC.KeepAlive(sink);
        })).ToArray();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        return share * (double)threads / seconds.Skip(1).Min() / 1e9;
    }

    /// <summary>The plain read loop: four independent 256-bit sums over n floats (n a multiple of 32).</summary>
    internal static float Sum(float* p, long n)
    {
        Vector256<float> a = default, b = default, c = default, d = default;
        for (long i = 0; i < n; i += 32)
        {
            a += Vector256.Load(p + i);
            b += Vector256.Load(p + i + 8);
            c += Vector256.Load(p + i + 16);
            d += Vector256.Load(p + i + 24);
        }
        return Vector256.Sum((a + b) + (c + d));
    }

    /// <summary>The best decode rate over <paramref name="runs"/> runs of <paramref name="tokens"/> tokens on
    /// <paramref name="threads"/> threads: weight bytes read per token times tokens per second, and the tokens per second.</summary>
    private static (double GigabytesPerSecond, double TokensPerSecond) Decode(Model model, int threads, int tokens, int runs)
    {
        // Every matrix and vector of every layer, and the output head; the embedding row and the KV cache are left out.
        double bytesPerToken = model.Weights.Layers.Sum(l => (double)l.ByteCount) + model.Weights.Output.ByteCount;
        using var pool = threads > 1 ? new WorkerPool(threads - 1) : null;
        var transformer = model.CreateTransformer(8 + tokens * (runs + 1), pool);
        int vocab = model.Config.VocabSize, pos = 0;
        double best = double.MaxValue;
        for (int run = 0; run <= runs; run++) // run 0 warms up: the pages, the compiled code, the pool
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < tokens; i++, pos++) transformer.Forward((pos * 7919 + 13) % vocab, pos);
            double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (run > 0) best = Math.Min(best, seconds);
        }
        return (bytesPerToken * tokens / best / 1e9, tokens / best);
    }

    private static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
