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
/// <c>--observer-overhead [--model M]... [--observer totals|recorder|both|bare|all] [--tokens 64] [--rounds 100] [-t 1]</c>:
/// each round decodes positions 0..tokens-1 on both sides. Without <c>--model</c> it runs stories260K (dim 64, 5 layers:
/// about 25 µs a token, the worst case for a cost paid per stage) and a random-weight llama-110m Q4_0 (what
/// <c>clocklm synth --shape llama-110m --type Q4_0</c> writes) made in a temporary directory. <c>totals</c> is
/// <see cref="CycleTotals"/> (the server's clock summary), <c>recorder</c> a <see cref="CycleRecorder"/> (a trace),
/// <c>bare</c> an observer that ignores its reports (what the engine's timestamps alone cost). First it prints what one
/// <see cref="Stopwatch.GetTimestamp"/> costs on the machine, and per model the timestamps a token takes and what they
/// come to at that cost: the floor of timing the stages.
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
            "bare" => ["bare"],
            "all" => ["bare", "totals", "recorder"],
            _ => throw new ArgumentException($"--observer is totals, recorder, both, bare or all, not '{observers}'"),
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
            var (tight, betweenWork) = TimestampCost();
            Console.WriteLine($"Stopwatch.GetTimestamp: {tight:F1} ns in a tight loop, {betweenWork:F1} ns between pieces of work (medians)");
            foreach (string path in models)
                foreach (string kind in kinds)
                    Measure(path, kind, tokens, rounds, pool, betweenWork);
        }
        finally
        {
            if (temporary is not null) Directory.Delete(temporary, recursive: true);
        }
        return 0;
    }

    private static void Measure(string path, string kind, int tokens, int rounds, WorkerPool? pool, double timestampNanoseconds)
    {
        using var model = Model.Load(path);
        var plain = model.CreateTransformer(tokens, pool);
        var observed = model.CreateTransformer(tokens, pool);
        var recorder = new CycleRecorder(tokens, model.Config.Layers);
        observed.Observer = kind switch
        {
            "totals" => new CycleTotals(model.Config.Layers),
            "bare" => new IgnoredReports(),
            _ => recorder,
        };
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
            recorder.Clear(); // keeps its capacity: recording a round allocates nothing
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
        double unobserved = Median(plainTimes);
        Console.WriteLine($"{Path.GetFileName(path)}, {kind}: median ratio {Quantile(sorted, 0.5):F4} (quartiles {Quantile(sorted, 0.25):F4}..{Quantile(sorted, 0.75):F4}) " +
            $"over {sorted.Length} pairs; per token unobserved {unobserved * 1e6:F2} us, observed {Median(observedTimes) * 1e6:F2} us");
        if (kind != "bare") return;
        int timestamps = TimestampsPerToken(model, tokens);
        Console.WriteLine($"{Path.GetFileName(path)}: {timestamps} timestamps a token x {timestampNanoseconds:F1} ns = {timestamps * timestampNanoseconds / 1000:F2} us " +
            $"= {timestamps * timestampNanoseconds * 1e-9 / unobserved:P2} of the unobserved token");
    }

    /// <summary>An observer that ignores its reports: what remains is the engine's side, the timestamps.</summary>
    private sealed class IgnoredReports : ICycleObserver
    {
        public void OnStage(in StageEvent e) { }
        public void OnToken(in TokenEvent e) { }
        public void OnReport(CycleReport report) { }
    }

    /// <summary>Timestamps one decoded token takes: the pass's start, the embeddings' end and the commit's, and the end
    /// of every stage that took one (a stage that took none ends where it began: 0 ticks).</summary>
    private static int TimestampsPerToken(Model model, int tokens)
    {
        var t = model.CreateTransformer(tokens);
        var recorder = new CycleRecorder(tokens, model.Config.Layers);
        t.Observer = recorder;
        t.Forward(1, 0);
        t.Forward(1, 1); // every layer fetched by now
        return 3 + recorder.Stages.Count(e => e.Position == 1 && e.ElapsedTicks != 0);
    }

    /// <summary>
    /// What one <see cref="Stopwatch.GetTimestamp"/> costs: in a tight loop, and between pieces of work (a 256-float dot
    /// product, about the size of a small model's row) as the engine takes them, the difference of the work with and
    /// without a timestamp after each piece. Medians over batches of 200 calls, so a preempted batch does not decide it.
    /// </summary>
    private static (double Tight, double BetweenWork) TimestampCost()
    {
        const int calls = 200, batches = 5000;
        var a = new float[256];
        var b = new float[256];
        for (int i = 0; i < a.Length; i++) (a[i], b[i]) = (i * 1e-3f, 1 - i * 1e-3f);
        var tight = new double[batches];
        var work = new double[batches];
        var both = new double[batches];
        long sink = 0;
        float sum = 0;
        for (int k = 0; k < batches; k++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < calls; i++) sink += Stopwatch.GetTimestamp();
            long t1 = Stopwatch.GetTimestamp();
            for (int i = 0; i < calls; i++) sum += Dot(a, b, i);
            long t2 = Stopwatch.GetTimestamp();
            for (int i = 0; i < calls; i++)
            {
                sum += Dot(a, b, i);
                sink += Stopwatch.GetTimestamp();
            }
            long t3 = Stopwatch.GetTimestamp();
            (tight[k], work[k], both[k]) = (Nanoseconds(t1 - t0) / calls, Nanoseconds(t2 - t1) / calls, Nanoseconds(t3 - t2) / calls);
        }
        GC.KeepAlive((sink, sum));
        double medianWork = Median([.. work]);
        return (Median([.. tight]), Median([.. both]) - medianWork);
    }

    // A dot product that depends on the call, so the loop cannot be folded.
    private static float Dot(float[] a, float[] b, int call)
    {
        a[call & 255] += 1e-9f;
        var sum = System.Runtime.Intrinsics.Vector256<float>.Zero;
        for (int i = 0; i < a.Length; i += 8)
            sum += System.Runtime.Intrinsics.Vector256.Create(a, i) * System.Runtime.Intrinsics.Vector256.Create(b, i);
        return System.Runtime.Intrinsics.Vector256.Sum(sum);
    }

    private static double Nanoseconds(long ticks) => ticks * 1e9 / Stopwatch.Frequency;

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return Quantile(sorted, 0.5);
    }

    private static double Quantile(double[] sorted, double q) => sorted[(int)Math.Round(q * (sorted.Length - 1))];
}
