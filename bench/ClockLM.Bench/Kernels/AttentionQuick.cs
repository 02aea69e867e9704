using System.Diagnostics;
using ClockLM.Tensors;

namespace ClockLM.Bench.Kernels;

/// <summary>
/// `--attention-quick`: a stopwatch measurement of one layer's decoding attention over a cache of D positions, for A/B
/// comparisons between builds and cache types: the scores, softmax and weighted sums of every query head, grouped by
/// key/value head (<see cref="GroupedAttention"/>, as the forward pass runs them) for each cache type, and, as the
/// reference, the one-query F32 kernels head by head (<see cref="AttentionKernels"/>, as before grouping). One thread;
/// the cache of one layer (D × kv_dim per K and V) stays in the caches as it would between the heads of a step.
/// Usage: --attention-quick [--depth 2048] [--heads 32] [--kv-heads 4] [--head-size 64] [--ms 1500]
/// Prints the median time per layer and the cache bytes read per second; for the F16 cache also each phase alone
/// (scores, softmax, value sums), the scores and sums on the exact widening of every half and on the three-operation
/// widening of finite halves taken in turns, with their ratio.
/// </summary>
public static class AttentionQuick
{
    public static int Run(string[] args)
    {
        int depth = 2048, heads = 32, kvHeads = 4, headSize = 64, ms = 1500;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--depth": depth = int.Parse(args[++i]); break;
                case "--heads": heads = int.Parse(args[++i]); break;
                case "--kv-heads": kvHeads = int.Parse(args[++i]); break;
                case "--head-size": headSize = int.Parse(args[++i]); break;
                case "--ms": ms = int.Parse(args[++i]); break;
            }
        }
        int kvDim = kvHeads * headSize, group = heads / kvHeads;
        var rng = new Random(1);
        float[] Random(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var q = Random(heads * headSize);
        var keys = Random(depth * kvDim);
        var values = Random(depth * kvDim);
        var output = new float[heads * headSize];
        var scores = new float[group * (depth + 32)];
        Console.WriteLine($"attention of {heads} heads over {kvHeads} key/value heads of {headSize}, {depth} positions, one thread ({KernelOptions.BestPath})");
        Console.WriteLine($"| {"cache",6} | {"kernel",-22} | {"µs per layer",12} | {"cache GB/s",10} |");

        Measure("f32", "one query at a time", depth * kvDim * 8L, () =>
        {
            for (int h = 0; h < heads; h++)
            {
                int kv = h / group * headSize;
                var att = scores.AsSpan(0, depth);
                AttentionKernels.Scores(q.AsSpan(h * headSize, headSize), keys.AsSpan(kv), kvDim, 0.125f, att);
                AttentionKernels.Softmax(att);
                AttentionKernels.WeightedSum(att, values.AsSpan(kv), kvDim, output.AsSpan(h * headSize, headSize));
            }
        }, ms);
        foreach (var type in new[] { GgmlType.F32, GgmlType.F16, GgmlType.Q8_0 })
        {
            int rowBytes = (int)GgmlTypeInfo.RowBytes(type, kvDim);
            var k = new byte[depth * rowBytes];
            var v = new byte[depth * rowBytes];
            for (int t = 0; t < depth; t++)
            {
                CacheRows.Store(type, keys.AsSpan(t * kvDim, kvDim), k.AsSpan(t * rowBytes, rowBytes));
                CacheRows.Store(type, values.AsSpan(t * kvDim, kvDim), v.AsSpan(t * rowBytes, rowBytes));
            }
            Measure(type.ToString().ToLowerInvariant(), "grouped", 2L * depth * rowBytes, () =>
            {
                for (int j = 0; j < kvHeads; j++)
                {
                    var group0 = q.AsSpan(j * group * headSize, group * headSize);
                    GroupedAttention.Scores(group0, headSize, new CacheRows(k, type, rowBytes, j * headSize, depth), 0.125f, scores, depth);
                    for (int g = 0; g < group; g++) AttentionKernels.Softmax(scores.AsSpan(g * depth, depth));
                    GroupedAttention.WeightedSums(scores, depth, new CacheRows(v, type, rowBytes, j * headSize, depth),
                        output.AsSpan(j * group * headSize, group * headSize), headSize);
                }
            }, ms);
            if (type != GgmlType.F16) continue;
            // Where an F16 layer's time goes, each phase alone over the same rows, on the exact widening of every half
            // and on the three-operation widening of finite ones (the cache vouching for them), taken in turns.
            int stride = (depth + 15) / 16 * 16 + 16; // as the forward pass lays out a group's scores
            void Scores(bool finite)
            {
                for (int j = 0; j < kvHeads; j++)
                    GroupedAttention.Scores(q.AsSpan(j * group * headSize, group * headSize), headSize,
                        new CacheRows(k, type, rowBytes, j * headSize, depth, finite), 0.125f, scores, stride);
            }
            void Sums(bool finite)
            {
                for (int j = 0; j < kvHeads; j++)
                    GroupedAttention.WeightedSums(scores, stride, new CacheRows(v, type, rowBytes, j * headSize, depth, finite),
                        output.AsSpan(j * group * headSize, group * headSize), headSize);
            }
            MeasurePair("f16", "scores", depth * rowBytes, () => Scores(false), () => Scores(true), ms);
            var weights = scores.ToArray();
            Measure("f16", "  softmax only", 0, () =>
            {
                for (int j = 0; j < kvHeads; j++)
                {
                    weights.CopyTo(scores, 0);
                    for (int g = 0; g < group; g++) AttentionKernels.Softmax(scores.AsSpan(g * depth, depth));
                }
            }, ms);
            MeasurePair("f16", "sums", depth * rowBytes, () => Sums(false), () => Sums(true), ms);
        }
        return 0;
    }

    /// <summary>Times <paramref name="exact"/> and <paramref name="finite"/> in turns (which goes first alternating), so
    /// that a load shared with other work weighs on both alike.</summary>
    private static void MeasurePair(string cache, string phase, long bytes, Action exact, Action finite, int ms)
    {
        for (int i = 0; i < 3; i++) { exact(); finite(); }
        var a = new List<double>();
        var b = new List<double>();
        var total = Stopwatch.StartNew();
        for (int i = 0; total.ElapsedMilliseconds < 2 * ms || a.Count < 10; i++)
        {
            if (i % 2 == 0) { a.Add(Time(exact)); b.Add(Time(finite)); }
            else { b.Add(Time(finite)); a.Add(Time(exact)); }
        }
        a.Sort();
        b.Sort();
        double ma = a[a.Count / 2], mb = b[b.Count / 2];
        Console.WriteLine($"| {cache,6} | {"  " + phase + ", exact halves",-22} | {ma * 1e6,12:F1} | {bytes / ma / 1e9,10:F2} |");
        Console.WriteLine($"| {cache,6} | {"  " + phase + ", finite",-22} | {mb * 1e6,12:F1} | {bytes / mb / 1e9,10:F2} | {ma / mb:F2}x");
    }

    private static double Time(Action layer)
    {
        long t0 = Stopwatch.GetTimestamp();
        layer();
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    private static void Measure(string cache, string kernel, long bytes, Action layer, int ms)
    {
        for (int i = 0; i < 3; i++) layer(); // warm-up
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (total.ElapsedMilliseconds < ms || times.Count < 10)
        {
            long t0 = Stopwatch.GetTimestamp();
            layer();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        times.Sort();
        double median = times[times.Count / 2];
        Console.WriteLine($"| {cache,6} | {kernel,-22} | {median * 1e6,12:F1} | {bytes / median / 1e9,10:F2} |");
    }
}
