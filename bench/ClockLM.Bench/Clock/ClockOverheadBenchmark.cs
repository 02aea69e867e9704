using BenchmarkDotNet.Attributes;
using ClockLM.Models;

namespace ClockLM.Bench.Clock;

/// <summary>
/// The cost of the clock machinery with nothing attached: decoding 64 tokens on stories260K (dim 64, 5 layers, the
/// smallest model and so the worst case for per-stage overhead) with the clock-driven <see cref="Transformer"/> and no
/// observer or hook, against <see cref="PlainTransformer"/>, the forward pass as it was before the clock. One thread.
/// The reported time is per token.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 5, iterationCount: 30)]
public class ClockOverheadBenchmark
{
    private const int Tokens = 64;
    private Model _model = null!;
    private Transformer _clocked = null!;
    private PlainTransformer _plain = null!;
    private int[] _ids = [];

    [GlobalSetup]
    public void Load()
    {
        _model = Model.Load(Stories260KPath());
        _clocked = _model.CreateTransformer(Tokens);
        _plain = new PlainTransformer(_model.Config, _model.Weights, Tokens);
        var random = new Random(3);
        _ids = Enumerable.Range(0, Tokens).Select(_ => random.Next(_model.Config.VocabSize)).ToArray();
    }

    [GlobalCleanup]
    public void Close() => _model.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = Tokens, Description = "plain forward (before the clock)")]
    public float Plain()
    {
        float sum = 0;
        for (int pos = 0; pos < Tokens; pos++) sum += _plain.Forward(_ids[pos], pos)[0];
        return sum;
    }

    [Benchmark(OperationsPerInvoke = Tokens, Description = "clock-driven forward, no observer")]
    public float Clocked()
    {
        float sum = 0;
        for (int pos = 0; pos < Tokens; pos++) sum += _clocked.Forward(_ids[pos], pos)[0];
        return sum;
    }

    /// <summary>stories260K.bin in $CLOCKLM_SHARED or ../shared beside the repository.</summary>
    internal static string Stories260KPath()
    {
        string? shared = Environment.GetEnvironmentVariable("CLOCKLM_SHARED");
        if (string.IsNullOrEmpty(shared))
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir != null && !File.Exists(Path.Combine(dir.FullName, "ClockLM.slnx"))) dir = dir.Parent;
            if (dir == null) throw new InvalidOperationException($"no ClockLM.slnx above {AppContext.BaseDirectory}; set CLOCKLM_SHARED");
            shared = Path.Combine(dir.FullName, "..", "shared");
        }
        return Path.GetFullPath(Path.Combine(shared, "models", "stories260K", "stories260K.bin"));
    }
}
