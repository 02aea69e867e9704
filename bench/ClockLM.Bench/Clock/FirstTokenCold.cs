using System.Diagnostics;
using System.Runtime.InteropServices;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Bench.Clock;

/// <summary>
/// Time to the first token with the model file out of the page cache: what a user waits for after a reboot or when
/// the file was evicted. Each repetition drops the file from the page cache (posix_fadvise DONTNEED on it, after the
/// previous model was unmapped), then times Model.Load, the prompt and the first token's logits, alternating the fetch
/// stage's read-ahead on (ModelOptions.FetchAhead = 2) and off (0). Prints every repetition and the medians.
/// </summary>
/// <remarks>
/// <c>--first-token-cold --model M [--prompt-tokens 32] [-r 5] [-t 2] [--no-packing]</c>. Reading a dropped file goes to
/// the disk, so the figures are the disk's as much as the engine's; A and B alternate so both see the same disk.
/// </remarks>
public static class FirstTokenCold
{
    [DllImport("libc", SetLastError = true)]
    private static extern int posix_fadvise(int fd, long offset, long length, int advice);

    private const int DontNeed = 4; // POSIX_FADV_DONTNEED on Linux

    public static int Run(string[] args)
    {
        string model = Value(args, "--model") ?? throw new ArgumentException("--model M is required");
        int promptTokens = int.Parse(Value(args, "--prompt-tokens") ?? "32");
        int repetitions = int.Parse(Value(args, "-r") ?? "5");
        int threads = int.Parse(Value(args, "-t") ?? "2");
        bool pack = !args.Contains("--no-packing");
        using var pool = threads > 1 ? new WorkerPool(threads - 1) : null;

        Console.WriteLine($"# first token, {model} dropped from the page cache before each run; {promptTokens} prompt tokens, {threads} thread(s), packing {(pack ? "on" : "off")}");
        Measure(model, promptTokens, pool, pack, fetchAhead: 2, drop: false); // warm-up: compile everything once
        var times = new Dictionary<int, List<double>> { [2] = [], [0] = [] };
        for (int r = 0; r < repetitions; r++)
            foreach (int fetch in r % 2 == 0 ? new[] { 2, 0 } : new[] { 0, 2 })
            {
                double seconds = Measure(model, promptTokens, pool, pack, fetch, drop: true);
                times[fetch].Add(seconds);
                Console.WriteLine($"run {r + 1} fetch-ahead {fetch}: {seconds * 1e3:F0} ms");
            }
        double on = Median(times[2]), off = Median(times[0]);
        Console.WriteLine($"median first token: fetch-ahead on {on * 1e3:F0} ms, off {off * 1e3:F0} ms, ratio off/on {off / on:F2}");
        return 0;
    }

    private static double Measure(string path, int promptTokens, WorkerPool? pool, bool pack, int fetchAhead, bool drop)
    {
        if (drop) DropFromPageCache(path);
        long start = Stopwatch.GetTimestamp();
        using var model = Model.Load(path, options: new ModelOptions { PackWeights = pack, FetchAhead = fetchAhead });
        var t = model.CreateTransformer(promptTokens + 1, pool);
        var prompt = Enumerable.Range(0, promptTokens).Select(i => (i * 7919 + 13) % model.Config.VocabSize).ToArray();
        t.Evaluate(prompt, 0);
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    private static void DropFromPageCache(string path)
    {
        using var file = File.OpenHandle(path);
        int fd = (int)file.DangerousGetHandle();
        if (posix_fadvise(fd, 0, 0, DontNeed) != 0)
            throw new IOException($"{path}: posix_fadvise(DONTNEED) failed (errno {Marshal.GetLastPInvokeError()})");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
