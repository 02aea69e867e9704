using System.Diagnostics;
using CsCheck;
using Xunit.Abstractions;

namespace ClockLM.Tests.Fuzzing;

/// <summary>
/// The time each fuzz target runs for: 3 seconds in an ordinary <c>dotnet test</c> (six targets, under 20 s in all),
/// or <c>CLOCKLM_FUZZ_SECONDS</c> seconds each when that variable is set, for a longer run:
/// <c>CLOCKLM_FUZZ_SECONDS=600 dotnet test -c Release --filter FullyQualifiedName~Fuzzing</c>.
/// Each target counts its executions and prints them (visible with <c>--logger "console;verbosity=detailed"</c>).
/// </summary>
public static class FuzzBudget
{
    public static int Seconds { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("CLOCKLM_FUZZ_SECONDS"), out int s) && s > 0 ? s : 3;

    /// <summary>A directory for the files fuzzed inputs are written to: in memory (/dev/shm) where there is one, since a
    /// file on disk costs milliseconds per input.</summary>
    public static TempDir Scratch() => new(Directory.Exists("/dev/shm") ? "/dev/shm" : null);

    /// <summary>Runs <paramref name="check"/> on inputs of <paramref name="gen"/> for the budget, on one thread (the
    /// other test classes run beside it), and reports how many inputs it tried. A failure is shrunk by CsCheck and
    /// thrown with the input and its seed.</summary>
    public static long Run<T>(ITestOutputHelper output, string target, Gen<T> gen, Action<T> check, Func<T, string>? print = null)
    {
        long executions = 0;
        var clock = Stopwatch.StartNew();
        gen.Sample(input =>
        {
            Interlocked.Increment(ref executions);
            check(input);
        }, writeLine: null, time: Seconds, threads: 1, print: print);
        output.WriteLine($"fuzz {target}: {executions} executions in {clock.Elapsed.TotalSeconds:F1} s, no failure");
        Assert.True(executions > 0);
        return executions;
    }
}
