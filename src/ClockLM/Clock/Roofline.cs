using System.Diagnostics;
using System.Numerics;
using System.Text.Json;
using System.Text.Json.Serialization;
using ClockLM.Tensors;

namespace ClockLM.Clock;

/// <summary>Memory read bandwidth with a given number of threads.</summary>
/// <param name="Threads">Threads reading at once.</param>
/// <param name="GigabytesPerSecond">Bytes read per second, over all threads, in GB/s (10^9).</param>
/// <param name="Read">The read loop that reached it (<see cref="Roofline.ReadLoops"/>); null in older measurements.</param>
public sealed record BandwidthPoint(int Threads, double GigabytesPerSecond, string? Read = null);

/// <summary>
/// This machine's limits: how fast memory can be read (per thread count) and how many floating-point operations per
/// second the cores can do. A token that must read B bytes of weights cannot finish faster than B / bandwidth: decode is
/// bound by memory, and the roofline says how close the engine gets.
/// </summary>
public sealed record Roofline
{
    /// <summary>Read bandwidth for 1, 2, … threads.</summary>
    public required BandwidthPoint[] Bandwidth { get; init; }

    /// <summary>Peak single-precision rate over all cores, in GFLOP/s (fused multiply-add counted as two).</summary>
    public required double PeakGflops { get; init; }

    /// <summary>Peak rate of one core, GFLOP/s.</summary>
    public required double PeakGflopsOneThread { get; init; }

    /// <summary>Bytes of the buffer read for the bandwidth measurement (larger than the caches).</summary>
    public required long BufferBytes { get; init; }

    /// <summary>When the measurement was taken (UTC).</summary>
    public required DateTime MeasuredAt { get; init; }

    /// <summary>Logical processors of the machine that was measured.</summary>
    public required int ProcessorCount { get; init; }

    /// <summary>How the bandwidth was measured: <see cref="CurrentMethod"/> for measurements of this version, 0 for
    /// those of the first one (a single read loop, timed over all its passes), which read a third below what the
    /// machine delivers; a cache of an older method is measured again.</summary>
    public int Method { get; init; }

    /// <summary>The method <see cref="Measure"/> uses: the best of several read loops and runs, see <see cref="ReadBandwidth"/>.</summary>
    public const int CurrentMethod = 2;

    /// <summary>The best bandwidth over all thread counts, GB/s.</summary>
    [JsonIgnore]
    public double PeakBandwidth => Bandwidth.Max(b => b.GigabytesPerSecond);

    /// <summary>Bandwidth measured with <paramref name="threads"/> threads (the nearest measured count).</summary>
    public double BandwidthAt(int threads) =>
        Bandwidth.OrderBy(b => Math.Abs(b.Threads - threads)).First().GigabytesPerSecond;

    /// <summary>Measures the machine: a few seconds per thread count for bandwidth, under a second for arithmetic.</summary>
    /// <param name="maxThreads">Most threads to try; the processor count when null.</param>
    /// <param name="bufferBytes">Bytes streamed for bandwidth, split among the threads (<see cref="DefaultBufferBytes"/>
    /// when null).</param>
    /// <param name="secondsPerPoint">Time spent per arithmetic measurement.</param>
    public static Roofline Measure(int? maxThreads = null, long? bufferBytes = null, double secondsPerPoint = 0.4)
    {
        int max = Math.Max(1, maxThreads ?? Environment.ProcessorCount);
        long buffer = bufferBytes ?? DefaultBufferBytes;
        var bandwidth = new List<BandwidthPoint>();
        for (int threads = 1; threads <= max; threads++)
            bandwidth.Add(ReadBandwidth(threads, buffer));
        double one = ArithmeticRate(1, secondsPerPoint);
        double all = max == 1 ? one : ArithmeticRate(max, secondsPerPoint);
        return new Roofline
        {
            Bandwidth = bandwidth.ToArray(), PeakGflops = Math.Max(one, all), PeakGflopsOneThread = one,
            BufferBytes = buffer, MeasuredAt = DateTime.UtcNow, ProcessorCount = Environment.ProcessorCount,
            Method = CurrentMethod,
        };
    }

    /// <summary>The bytes the bandwidth measurement streams by default: 1 GiB, far more than any cache (32 MiB of L3 on
    /// the EPYC measured), or a quarter of the memory available when that is less.</summary>
    public static long DefaultBufferBytes => Math.Min(1L << 30, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4);

    /// <summary>The read loops the bandwidth measurement tries, by name, with how far ahead each prefetches (0: loads
    /// alone, what a plain streaming loop does; 2 KB and 4 KB: the distances of ClockLM's streaming kernels).</summary>
    public static IReadOnlyList<(string Name, int PrefetchAhead)> ReadLoops { get; } =
        StreamingRead.CanPrefetch
            ? [("loads", 0), ("prefetch 2 KB", 2048), ("prefetch 4 KB", 4096)]
            : [("loads", 0)];

    /// <summary>
    /// Read bandwidth of <paramref name="threads"/> threads streaming <paramref name="bufferBytes"/> between them, each
    /// its own share, allocated and first touched by itself (<see cref="ParallelRead"/>): every read loop of
    /// <see cref="ReadLoops"/> <paramref name="runs"/> times, after an untimed pass. The result is the best run of the
    /// best loop: the rate the machine can deliver (slower runs are the machine busy with something else, not a
    /// property of it), which a kernel reading as well as the best loop reaches.
    /// </summary>
    public static BandwidthPoint ReadBandwidth(int threads, long bufferBytes, int runs = 5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        long share = bufferBytes / threads / StreamingRead.StepBytes * StreamingRead.StepBytes;
        if (share <= 0) throw new ArgumentOutOfRangeException(nameof(bufferBytes), bufferBytes, $"too few bytes for {threads} threads");
        var seconds = ParallelRead.Time(threads, share, ReadLoops.Select(l => l.PrefetchAhead).ToArray(), runs);
        double best = 0;
        string read = ReadLoops[0].Name;
        for (int run = 1; run <= runs; run++)
            for (int loop = 0; loop < ReadLoops.Count; loop++)
            {
                double rate = share * (double)threads / seconds[run, loop] / 1e9;
                if (rate > best) (best, read) = (rate, ReadLoops[loop].Name);
            }
        return new BandwidthPoint(threads, best, read);
    }

    /// <summary>The cache file: <c>$XDG_CACHE_HOME/clocklm/roofline.json</c>, or <c>~/.cache/clocklm/roofline.json</c>.</summary>
    public static string DefaultCachePath
    {
        get
        {
            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            string root = !string.IsNullOrEmpty(xdg) ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "clocklm", "roofline.json");
        }
    }

    /// <summary>Reads a cached measurement; null when the file does not exist.</summary>
    /// <exception cref="InvalidDataException">The file is not a roofline written by <see cref="Save"/>.</exception>
    public static Roofline? Load(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var roofline = JsonSerializer.Deserialize(File.ReadAllText(path), RooflineJson.Default.Roofline);
            if (roofline is null || roofline.Bandwidth.Length == 0 || roofline.PeakGflops <= 0)
                throw new InvalidDataException($"{path}: not a roofline measurement (no bandwidth or peak rate); delete it or refresh it");
            return roofline;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a roofline measurement ({e.Message}); delete it or refresh it", e);
        }
    }

    /// <summary>Writes this measurement as JSON, creating the folder.</summary>
    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, JsonSerializer.Serialize(this, RooflineJson.Default.Roofline));
    }

    /// <summary>The cached measurement at <paramref name="path"/>, or a new one (saved there) when there is none, when
    /// it was measured by an older method, or when <paramref name="refresh"/> is set.</summary>
    public static Roofline LoadOrMeasure(string path, bool refresh = false, int? maxThreads = null, long? bufferBytes = null)
    {
        if (!refresh && Load(path) is { Method: CurrentMethod } cached) return cached;
        var measured = Measure(maxThreads, bufferBytes);
        measured.Save(path);
        return measured;
    }


    /// <summary>GFLOP/s of <paramref name="threads"/> threads running independent fused multiply-add chains.</summary>
    private static double ArithmeticRate(int threads, double secondsPerPoint)
    {
        const int Iterations = 1 << 16;
        double seconds = RunThreads(threads, secondsPerPoint, _ => FmaChains(Iterations), out long passes);
        // 8 chains, one FMA (2 flops per lane) each per iteration, per thread.
        double flops = (double)passes * threads * Iterations * 8 * 2 * Vector<float>.Count;
        return flops / seconds / 1e9;
    }

    private static float FmaChains(int iterations)
    {
        var m = new Vector<float>(0.999999f);
        var k = new Vector<float>(1e-7f);
        Vector<float> a = Vector<float>.One, b = a, c = a, d = a, e = a, f = a, g = a, h = a;
        for (int i = 0; i < iterations; i++)
        {
            a = Vector.FusedMultiplyAdd(a, m, k); b = Vector.FusedMultiplyAdd(b, m, k);
            c = Vector.FusedMultiplyAdd(c, m, k); d = Vector.FusedMultiplyAdd(d, m, k);
            e = Vector.FusedMultiplyAdd(e, m, k); f = Vector.FusedMultiplyAdd(f, m, k);
            g = Vector.FusedMultiplyAdd(g, m, k); h = Vector.FusedMultiplyAdd(h, m, k);
        }
        return Vector.Sum(a + b + c + d + e + f + g + h);
    }

    /// <summary>Runs <paramref name="work"/> on <paramref name="threads"/> threads in lock-step passes until
    /// <paramref name="seconds"/> have gone by (after one warm-up pass); returns the time of the timed passes.</summary>
    private static double RunThreads(int threads, double seconds, Func<int, float> work, out long passes)
    {
        float sink = 0;
        using var barrier = new Barrier(threads);
        long timedPasses = 0;
        double elapsed = 0;
        var workers = new Thread[threads];
        var stop = false;
        for (int t = 0; t < threads; t++)
        {
            int index = t;
            workers[t] = new Thread(() =>
            {
                float local = work(index); // warm-up
                long start = 0;
                for (long pass = 0; ; pass++)
                {
                    barrier.SignalAndWait();
                    if (index == 0)
                    {
                        long now = Stopwatch.GetTimestamp();
                        if (pass == 0) start = now;
                        else
                        {
                            elapsed = (now - start) / (double)Stopwatch.Frequency;
                            timedPasses = pass;
                            stop = elapsed >= seconds;
                        }
                    }
                    barrier.SignalAndWait();
                    if (Volatile.Read(ref stop)) break;
                    local += work(index);
                }
                Interlocked.Exchange(ref sink, sink + local);
            }) { IsBackground = true };
        }
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        GC.KeepAlive(sink);
        passes = timedPasses;
        return elapsed;
    }
}

/// <summary>The roofline cache's JSON (indented, snake_case), generated at build time: no reflection (native AOT).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(Roofline))]
internal sealed partial class RooflineJson : JsonSerializerContext;
