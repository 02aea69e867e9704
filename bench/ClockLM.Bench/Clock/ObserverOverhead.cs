using System.Diagnostics;
using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Bench.Clock;

/// <summary>
/// `--observer-overhead`: what attaching an observer costs a decoded token, paired so that a busy machine does not
/// decide it. Per model, two sequences of the same weights decode the same tokens, one with nothing attached and one
/// with an observer, taking turns token by token (which goes first alternates); each pair is the same token at the same
/// position on both, and its ratio is observed / unobserved time. A preempted token spoils one pair, not a whole run, so
/// the median ratio holds on a shared machine. Prints per model and observer the median ratio, its quartiles, and the
/// median time per token of each side.
/// </summary>
/// <remarks>
/// <c>--observer-overhead [--model M]... [--observer totals|recorder|both] [--tokens 64] [--rounds 100] [-t 1]</c>: each
/// round decodes positions 0..tokens-1 on both sides. Without <c>--model</c> it runs stories260K (dim 64, 5 layers:
/// about 25 µs a token, the worst case for a cost paid per stage) and a random-weight llama-110m Q4_0 (what
/// <c>clocklm synth --shape llama-110m --type Q4_0</c> writes) made in a temporary directory. <c>totals</c> is
/// <see cref="CycleTotals"/> (the server's clock summary), <c>recorder</c> a <see cref="CycleRecorder"/> (a trace).
/// </remarks>
public static class ObserverOverhead
{
    public static int Run(string[] args)
    {
        var models = new List<string>();
        string observers = "totals";
        int tokens = 64, rounds = 100, threads = 1;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--model": models.Add(args[++i]); break;
                case "--observer": observers = args[++i]; break;
                case "--tokens": tokens = int.Parse(args[++i]); break;
                case "--rounds": rounds = int.Parse(args[++i]); break;
                case "-t": threads = int.Parse(args[++i]); break;
            }
        }
        string[] kinds = observers switch
        {
            "totals" => ["totals"],
            "recorder" => ["recorder"],
            "both" => ["totals", "recorder"],
            _ => throw new ArgumentException($"--observer is totals, recorder or both, not '{observers}'"),
        };

        string? temporary = null;
        if (models.Count == 0)
        {
            models.Add(ClockOverheadBenchmark.Stories260KPath());
            temporary = Directory.CreateTempSubdirectory("clocklm-overhead-").FullName;
            string synthetic = Path.Combine(temporary, "llama-110m-Q4_0.gguf");
            SyntheticModel.Write(synthetic, SyntheticModel.Shape("llama-110m"), ClockOverheadBenchmark.SharedPath("vocab", "ggml-vocab-llama-spm.gguf"),
                QuantizationScheme.Parse("Q4_0"));
            models.Add(synthetic);
        }
        try
        {
            using var pool = threads > 1 ? new WorkerPool(threads - 1) : null;
            Console.WriteLine($"# observer overhead: {rounds} rounds of {tokens} tokens, {threads} thread(s); ratio = observed / unobserved time of a token");
            foreach (string path in models)
                foreach (string kind in kinds)
                    Measure(path, kind, tokens, rounds, pool);
        }
        finally
        {
            if (temporary is not null) Directory.Delete(temporary, recursive: true);
        }
        return 0;
    }

    private static void Measure(string path, string kind, int tokens, int rounds, WorkerPool? pool)
    {
        using var model = Model.Load(path);
        var plain = model.CreateTransformer(tokens, pool);
        var observed = model.CreateTransformer(tokens, pool);
        var recorder = new CycleRecorder(tokens, model.Config.Layers);
        observed.Observer = kind == "totals" ? new CycleTotals(model.Config.Layers) : recorder;
        var random = new Random(3);
        int[] ids = Enumerable.Range(0, tokens).Select(_ => random.Next(model.Config.VocabSize)).ToArray();

        double Time(Transformer t, int pos)
        {
            long start = Stopwatch.GetTimestamp();
            t.Forward(ids[pos], pos);
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        var plainTimes = new List<double>();
        var observedTimes = new List<double>();
        var ratios = new List<double>();
        var warmUp = Stopwatch.StartNew();
        for (int round = -1; round < rounds; round++)
        {
            recorder.Stages.Clear(); // keeps its capacity: recording a round allocates nothing
            recorder.Tokens.Clear();
            for (int pos = 0; pos < tokens; pos++)
            {
                bool plainFirst = (round * tokens + pos) % 2 == 0;
                double a = Time(plainFirst ? plain : observed, pos), b = Time(plainFirst ? observed : plain, pos);
                (double p, double o) = plainFirst ? (a, b) : (b, a);
                if (round < 0) continue; // warm-up: until the JIT has settled (a second, at least one round)
                plainTimes.Add(p);
                observedTimes.Add(o);
                ratios.Add(o / p);
            }
            if (round == -1 && warmUp.Elapsed.TotalSeconds < 1) round = -2;
        }
        var sorted = ratios.Order().ToArray();
        Console.WriteLine($"{Path.GetFileName(path)}, {kind}: median ratio {Quantile(sorted, 0.5):F4} (quartiles {Quantile(sorted, 0.25):F4}..{Quantile(sorted, 0.75):F4}) " +
            $"over {sorted.Length} pairs; per token unobserved {Median(plainTimes) * 1e6:F2} us, observed {Median(observedTimes) * 1e6:F2} us");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return Quantile(sorted, 0.5);
    }

    private static double Quantile(double[] sorted, double q) => sorted[(int)Math.Round(q * (sorted.Length - 1))];
}
