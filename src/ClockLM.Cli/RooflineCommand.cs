using System.CommandLine;
using ClockLM.Clock;

namespace ClockLM.Cli;

/// <summary>`clocklm roofline`: this machine's memory read bandwidth per thread count and peak arithmetic rate, cached.</summary>
internal static class RooflineCommand
{
    public static Option<string?> CacheOption() =>
        new("--roofline-cache") { Description = $"Roofline cache file (default {Roofline.DefaultCachePath})" };

    public static Command Create()
    {
        var refresh = new Option<bool>("--refresh") { Description = "Measure again even when a cached result exists" };
        var cache = CacheOption();
        var threads = new Option<int?>("--threads", "-t") { Description = "Most threads to measure (default: every processor)" };
        var buffer = new Option<int?>("--buffer-mb") { Description = $"MiB streamed to measure bandwidth (default {Roofline.DefaultBufferBytes >> 20}, far more than the caches)" };
        var command = new Command("roofline", "Measure memory bandwidth and peak arithmetic rate (cached)");
        command.Options.Add(refresh);
        command.Options.Add(cache);
        command.Options.Add(threads);
        command.Options.Add(buffer);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int? max = result.GetValue(threads);
            if (max is < 1 or > 1024) throw new UsageException($"--threads is {max}, expected 1 to 1024");
            int? mb = result.GetValue(buffer);
            if (mb is < 1 or > 1 << 20) throw new UsageException($"--buffer-mb is {mb}, expected 1 to {1 << 20}");
            string path = result.GetValue(cache) ?? Roofline.DefaultCachePath;
            var (roofline, measured) = Load(path, result.GetValue(refresh), max, (long?)mb << 20);
            Print(roofline, Console.Out);
            Console.Out.WriteLine(measured ? $"saved to {path}" : $"cached in {path} (measured {roofline.MeasuredAt:yyyy-MM-dd HH:mm} UTC; --refresh to measure again)");
            return 0;
        }));
        return command;
    }

    /// <summary>The cached roofline, or a fresh measurement saved to the cache (when there is none, when it was measured
    /// by an older method, or with <paramref name="refresh"/>); a corrupt cache file is a usage error.</summary>
    public static Roofline Load(string path, bool refresh) => Load(path, refresh, null, null).Roofline;

    private static (Roofline Roofline, bool Measured) Load(string path, bool refresh, int? maxThreads, long? bufferBytes)
    {
        try
        {
            var cached = refresh ? null : Roofline.Load(path);
            if (cached is { Method: Roofline.CurrentMethod }) return (cached, false);
            if (!refresh)
                Console.Error.WriteLine(cached is null ? "measuring this machine's roofline (a few seconds)…"
                    : $"{path} was measured by an older method that reads below the machine's bandwidth; measuring again (a few seconds)…");
            return (Roofline.LoadOrMeasure(path, refresh: true, maxThreads, bufferBytes), true);
        }
        catch (InvalidDataException e)
        {
            throw new UsageException(e.Message);
        }
    }

    public static void Print(Roofline roofline, TextWriter output)
    {
        output.WriteLine($"{"threads",7}  {"read GB/s",10}  best read loop");
        foreach (var b in roofline.Bandwidth)
            output.WriteLine($"{b.Threads,7}  {b.GigabytesPerSecond,10:F2}  {b.Read ?? "-"}");
        output.WriteLine($"peak arithmetic: {roofline.PeakGflops:F1} GFLOP/s ({roofline.PeakGflopsOneThread:F1} on one thread)");
        output.WriteLine($"ridge point: {roofline.PeakGflops / roofline.PeakBandwidth:F1} FLOP/byte " +
                         "(below it a kernel is bound by memory, above it by arithmetic)");
    }
}
