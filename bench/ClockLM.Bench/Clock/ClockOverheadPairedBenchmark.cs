using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using ClockLM.Models;

namespace ClockLM.Bench.Clock;

/// <summary>
/// The same comparison as <see cref="ClockOverheadBenchmark"/>, paired so that a busy machine does not decide it: every
/// invocation decodes 64 tokens with the plain forward and 64 with the clock-driven one, back to back, in alternating
/// order, and records the ratio of the two times. BenchmarkDotNet times the pair; the cleanup prints the median ratio
/// (clock / plain) and the median per-token times of each side over all invocations.
/// </summary>
[SimpleJob(warmupCount: 5, iterationCount: 40)]
public class ClockOverheadPairedBenchmark
{
    private const int Tokens = 64;
    private Model _model = null!;
    private Transformer _clocked = null!;
    private PlainTransformer _plain = null!;
    private int[] _ids = [];
    private readonly List<(double Plain, double Clocked)> _pairs = new();
    private int _invocation;

    [GlobalSetup]
    public void Load()
    {
        _model = Model.Load(ClockOverheadBenchmark.Stories260KPath());
        _clocked = _model.CreateTransformer(Tokens);
        _plain = new PlainTransformer(_model.Config, _model.Weights, Tokens);
        var random = new Random(3);
        _ids = Enumerable.Range(0, Tokens).Select(_ => random.Next(_model.Config.VocabSize)).ToArray();
    }

    [GlobalCleanup]
    public void Report()
    {
        _model.Dispose();
        if (_pairs.Count == 0) return;
        // Skip the first fifth: warm-up and pilot invocations.
        var kept = _pairs.Skip(_pairs.Count / 5).ToArray();
        double Median(IEnumerable<double> values)
        {
            var sorted = values.Order().ToArray();
            return sorted[sorted.Length / 2];
        }
        Console.WriteLine($"// clock overhead, paired over {kept.Length} invocations: median ratio clock/plain = {Median(kept.Select(p => p.Clocked / p.Plain)):F4}; " +
            $"median per token plain {Median(kept.Select(p => p.Plain)) * 1e6 / Tokens:F2} us, clock {Median(kept.Select(p => p.Clocked)) * 1e6 / Tokens:F2} us");
    }

    [Benchmark(OperationsPerInvoke = 2 * Tokens, Description = "plain and clock-driven forward, alternating (time per token)")]
    public float Pair()
    {
        bool plainFirst = _invocation++ % 2 == 0;
        float sum = 0;
        double plain = 0, clocked = 0;
        for (int round = 0; round < 2; round++)
        {
            long start = Stopwatch.GetTimestamp();
            if (plainFirst == (round == 0))
            {
                for (int pos = 0; pos < Tokens; pos++) sum += _plain.Forward(_ids[pos], pos)[0];
                plain = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            else
            {
                for (int pos = 0; pos < Tokens; pos++) sum += _clocked.Forward(_ids[pos], pos)[0];
                clocked = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
        }
        _pairs.Add((plain, clocked));
        return sum;
    }
}
