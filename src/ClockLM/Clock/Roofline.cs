using System.Diagnostics;
using System.Numerics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ClockLM.Clock;

/// <summary>Memory read bandwidth with a given number of threads.</summary>
/// <param name="Threads">Threads reading at once.</param>
/// <param name="GigabytesPerSecond">Bytes read per second, over all threads, in GB/s (10^9).</param>
public sealed record BandwidthPoint(int Threads, double GigabytesPerSecond);

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

    /// <summary>The best bandwidth over all thread counts, GB/s.</summary>
    [JsonIgnore]
    public double PeakBandwidth => Bandwidth.Max(b => b.GigabytesPerSecond);

    /// <summary>Bandwidth measured with <paramref name="threads"/> threads (the nearest measured count).</summary>
    public double BandwidthAt(int threads) =>
        Bandwidth.OrderBy(b => Math.Abs(b.Threads - threads)).First().GigabytesPerSecond;

    /// <summary>Measures the machine: about a second per thread count for bandwidth and for arithmetic.</summary>
    /// <param name="maxThreads">Most threads to try; the processor count when null.</param>
    /// <param name="bufferBytes">Size of the buffer streamed for bandwidth.</param>
    /// <param name="secondsPerPoint">Time spent per measurement.</param>
    public static Roofline Measure(int? maxThreads = null, long bufferBytes = 256L << 20, double secondsPerPoint = 0.4)
    {
        int max = Math.Max(1, maxThreads ?? Environment.ProcessorCount);
        var buffer = new float[bufferBytes / sizeof(float)];
        for (int i = 0; i < buffer.Length; i += 1024) buffer[i] = 1; // touch every page
        var bandwidth = new List<BandwidthPoint>();
        for (int threads = 1; threads <= max; threads++)
        {
            double seconds = RunThreads(threads, secondsPerPoint, index =>
            {
                var (start, end) = (buffer.Length / threads * index, buffer.Length / threads * (index + 1));
                return ReadSum(buffer.AsSpan(start, end - start));
            }, out long passes);
            bandwidth.Add(new BandwidthPoint(threads, passes * (double)(buffer.Length / threads * threads) * sizeof(float) / seconds / 1e9));
        }
        double one = ArithmeticRate(1, secondsPerPoint);
        double all = max == 1 ? one : ArithmeticRate(max, secondsPerPoint);
        return new Roofline
        {
            Bandwidth = bandwidth.ToArray(), PeakGflops = Math.Max(one, all), PeakGflopsOneThread = one,
            BufferBytes = bufferBytes, MeasuredAt = DateTime.UtcNow, ProcessorCount = Environment.ProcessorCount,
        };
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

    /// <summary>The cached measurement at <paramref name="path"/>, or a new one (saved there) when there is none or
    /// <paramref name="refresh"/> is set.</summary>
    public static Roofline LoadOrMeasure(string path, bool refresh = false, int? maxThreads = null)
    {
        if (!refresh && Load(path) is { } cached) return cached;
        var measured = Measure(maxThreads);
        measured.Save(path);
        return measured;
    }


    /// <summary>Sums a span with several independent vector accumulators: a pure streaming read.</summary>
    private static float ReadSum(ReadOnlySpan<float> data)
    {
        int width = Vector<float>.Count;
        Vector<float> a = default, b = default, c = default, d = default;
        int i = 0;
        for (; i + 4 * width <= data.Length; i += 4 * width)
        {
            a += new Vector<float>(data.Slice(i));
            b += new Vector<float>(data.Slice(i + width));
            c += new Vector<float>(data.Slice(i + 2 * width));
            d += new Vector<float>(data.Slice(i + 3 * width));
        }
        float sum = Vector.Sum(a + b + c + d);
        for (; i < data.Length; i++) sum += data[i];
        return sum;
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
