using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using ClockLM.Clock;
using ClockLM.Models;

namespace ClockLM.Bench.Clock;

/// <summary>
/// The observer's cost of <see cref="ClockOverheadBenchmark"/>, paired so that a busy machine does not decide it: every
/// invocation decodes 64 tokens with no observer and 64 with a <see cref="CycleTotals"/> observer, back to back, in
/// alternating order, and records the ratio of the two times. BenchmarkDotNet times the pair; the cleanup prints the
/// median ratio (observed / unobserved) and the median per-token times of each side over all invocations. Two models:
/// stories260K (the worst case: a fixed cost per stage against a 25 µs token) and a random-weight llama-110m Q4_0 (what
/// <c>clocklm synth --shape llama-110m --type Q4_0</c> writes, made in a temporary directory). The stopwatch harness
/// <see cref="ObserverOverhead"/> (<c>--observer-overhead</c>) runs the same pairs on any model in a fraction of the time.
/// </summary>
[SimpleJob(warmupCount: 5, iterationCount: 40)]
public class ClockOverheadPairedBenchmark
{
    private const int Tokens = 64;
    private string? _temporary;
    private Model _model = null!;
    private Transformer _plain = null!, _observed = null!;
    private int[] _ids = [];
    private readonly List<(double Plain, double Clocked)> _pairs = new();
    private int _invocation;

    /// <summary>The model decoded: stories260K or llama-110m-Q4_0.</summary>
    [Params("stories260K", "llama-110m-Q4_0")]
    public string ModelName { get; set; } = "stories260K";

    [GlobalSetup]
    public void Load()
    {
        string path = ClockOverheadBenchmark.Stories260KPath();
        if (ModelName != "stories260K")
        {
            _temporary = Directory.CreateTempSubdirectory("clocklm-overhead-").FullName;
            path = Path.Combine(_temporary, "llama-110m-Q4_0.gguf");
            SyntheticModel.Write(path, SyntheticModel.Shape("llama-110m"), ClockOverheadBenchmark.SharedPath("vocab", "ggml-vocab-llama-spm.gguf"),
                QuantizationScheme.Parse("Q4_0"));
        }
        _model = Model.Load(path);
        _plain = _model.CreateTransformer(Tokens);
        _observed = _model.CreateTransformer(Tokens);
        _observed.Observer = new CycleTotals(_model.Config.Layers);
        var random = new Random(3);
        _ids = Enumerable.Range(0, Tokens).Select(_ => random.Next(_model.Config.VocabSize)).ToArray();
    }

    [GlobalCleanup]
    public void Report()
    {
        _model.Dispose();
        if (_temporary is not null) Directory.Delete(_temporary, recursive: true);
        if (_pairs.Count == 0) return;
        // Skip the first fifth: warm-up and pilot invocations.
        var kept = _pairs.Skip(_pairs.Count / 5).ToArray();
        double Median(IEnumerable<double> values)
        {
            var sorted = values.Order().ToArray();
            return sorted[sorted.Length / 2];
        }
        Console.WriteLine($"// {ModelName}: observer overhead, paired over {kept.Length} invocations: median ratio observed/unobserved = {Median(kept.Select(p => p.Clocked / p.Plain)):F4}; " +
            $"median per token unobserved {Median(kept.Select(p => p.Plain)) * 1e6 / Tokens:F2} us, observed {Median(kept.Select(p => p.Clocked)) * 1e6 / Tokens:F2} us");
    }

    [Benchmark(OperationsPerInvoke = 2 * Tokens, Description = "forward without and with an observer, alternating (time per token)")]
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
                for (int pos = 0; pos < Tokens; pos++) sum += _observed.Forward(_ids[pos], pos)[0];
                clocked = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
        }
        _pairs.Add((plain, clocked));
        return sum;
    }
}
