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
        var command = new Command("roofline", "Measure memory bandwidth and peak arithmetic rate (cached)");
        command.Options.Add(refresh);
        command.Options.Add(cache);
        command.Options.Add(threads);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int? max = result.GetValue(threads);
            if (max is < 1 or > 1024) throw new UsageException($"--threads is {max}, expected 1 to 1024");
            string path = result.GetValue(cache) ?? Roofline.DefaultCachePath;
            bool measured = result.GetValue(refresh) || !File.Exists(path);
            var roofline = Load(path, result.GetValue(refresh), max);
            Print(roofline, Console.Out);
            Console.Out.WriteLine(measured ? $"saved to {path}" : $"cached in {path} (measured {roofline.MeasuredAt:yyyy-MM-dd HH:mm} UTC; --refresh to measure again)");
            return 0;
        }));
        return command;
    }

    /// <summary>The cached roofline, or a fresh measurement saved to the cache; a corrupt cache file is a usage error.</summary>
    public static Roofline Load(string path, bool refresh, int? maxThreads = null)
    {
        try
        {
            if (!refresh && !File.Exists(path)) Console.Error.WriteLine("measuring this machine's roofline (a few seconds)…");
            return Roofline.LoadOrMeasure(path, refresh, maxThreads);
        }
        catch (InvalidDataException e)
        {
            throw new UsageException(e.Message);
        }
    }

    public static void Print(Roofline roofline, TextWriter output)
    {
        output.WriteLine($"{"threads",7}  {"read GB/s",10}");
        foreach (var b in roofline.Bandwidth)
            output.WriteLine($"{b.Threads,7}  {b.GigabytesPerSecond,10:F2}");
        output.WriteLine($"peak arithmetic: {roofline.PeakGflops:F1} GFLOP/s ({roofline.PeakGflopsOneThread:F1} on one thread)");
        output.WriteLine($"ridge point: {roofline.PeakGflops / roofline.PeakBandwidth:F1} FLOP/byte " +
                         "(below it a kernel is bound by memory, above it by arithmetic)");
    }
}
