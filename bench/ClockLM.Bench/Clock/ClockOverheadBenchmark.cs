using BenchmarkDotNet.Attributes;
using ClockLM.Clock;
using ClockLM.Models;

namespace ClockLM.Bench.Clock;

/// <summary>
/// What watching the clock costs: decoding 64 tokens on stories260K (dim 64, 5 layers, the smallest model and so the
/// worst case for per-stage overhead) with nothing attached, with a <see cref="CycleTotals"/> observer (the server's
/// clock summary) and with a <see cref="CycleRecorder"/> (a trace), all on the one forward pass. One thread. The
/// reported time is per token. The cost of the clock's structure itself (the stages as the seams of the one forward
/// pass) is measured against a build of an earlier commit with the --vs-llamacpp harness, not here.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 5, iterationCount: 30)]
public class ClockOverheadBenchmark
{
    private const int Tokens = 64;
    private Model _model = null!;
    private Transformer _transformer = null!;
    private int[] _ids = [];

    [GlobalSetup]
    public void Load()
    {
        _model = Model.Load(Stories260KPath());
        _transformer = _model.CreateTransformer(Tokens);
        var random = new Random(3);
        _ids = Enumerable.Range(0, Tokens).Select(_ => random.Next(_model.Config.VocabSize)).ToArray();
    }

    [GlobalCleanup]
    public void Close() => _model.Dispose();

    private float Decode(ICycleObserver? observer)
    {
        _transformer.Observer = observer;
        float sum = 0;
        for (int pos = 0; pos < Tokens; pos++) sum += _transformer.Forward(_ids[pos], pos)[0];
        _transformer.Observer = null;
        return sum;
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Tokens, Description = "forward, no observer")]
    public float Unobserved() => Decode(null);

    [Benchmark(OperationsPerInvoke = Tokens, Description = "forward, CycleTotals observer")]
    public float Totals() => Decode(new CycleTotals(_model.Config.Layers));

    [Benchmark(OperationsPerInvoke = Tokens, Description = "forward, CycleRecorder observer")]
    public float Recorded() => Decode(new CycleRecorder(Tokens, _model.Config.Layers));

    /// <summary>stories260K.bin in $CLOCKLM_SHARED or ../shared beside the repository.</summary>
    internal static string Stories260KPath() => SharedPath("models", "stories260K", "stories260K.bin");

    /// <summary>A file under $CLOCKLM_SHARED, or ../shared beside the repository.</summary>
    internal static string SharedPath(params string[] parts)
    {
        string? shared = Environment.GetEnvironmentVariable("CLOCKLM_SHARED");
        if (string.IsNullOrEmpty(shared))
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir != null && !File.Exists(Path.Combine(dir.FullName, "ClockLM.slnx"))) dir = dir.Parent;
            if (dir == null) throw new InvalidOperationException($"no ClockLM.slnx above {AppContext.BaseDirectory}; set CLOCKLM_SHARED");
            shared = Path.Combine(dir.FullName, "..", "shared");
        }
        return Path.GetFullPath(Path.Combine([shared, .. parts]));
    }
}
