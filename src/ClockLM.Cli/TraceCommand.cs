using System.CommandLine;
using System.Globalization;
using ClockLM.Clock;
using ClockLM.Features;
using ClockLM.Models;
using ClockLM.Tokenizers;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm trace`: runs a prompt and its greedy continuation cycle by cycle and prints, per token, a table of the
/// cycles (stage times, share of the token, GB/s and GFLOP/s achieved, the logit lens's top token), then a summary
/// against this machine's roofline. `--step` opens the step debugger instead; `--perfetto` and `--html` export.
/// </summary>
internal static class TraceCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var prompt = new Argument<string>("prompt") { Description = "Text to run" };
        var maxNew = new Option<int>("-n", "--max-new-tokens") { Description = "Greedy tokens to generate after the prompt", DefaultValueFactory = _ => 8 };
        var topK = new Option<int>("--lens-top") { Description = "Tokens the logit lens shows per cycle", DefaultValueFactory = _ => 3 };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context length (default: the model's)" };
        var step = new Option<bool>("--step") { Description = "Step debugger: reads commands from stdin (type 'help')" };
        var perfetto = new Option<string?>("--perfetto") { Description = "Write Chrome/Perfetto trace-event JSON to this file" };
        var html = new Option<string?>("--html") { Description = "Write a self-contained HTML report to this file" };
        var attention = new Option<bool>("--attention") { Description = "Print each head's strongest position and entropy per cycle" };
        var cache = RooflineCommand.CacheOption();
        var sae = new Option<string[]>("--sae") { Description = "A sparse autoencoder in SAELens's format (its directory or cfg.json); each token shows its most active features; repeatable", HelpName = "DIR" };
        var saeTop = new Option<int>("--sae-top") { Description = "Features shown per token and autoencoder", DefaultValueFactory = _ => 5 };
        var steerFeature = new Option<string[]>("--steer-feature") { Description = "Add feature IDX's decoder direction of the (first) --sae, times SCALE, to the residual stream; repeatable", HelpName = "IDX:SCALE" };

        var command = new Command("trace", "Run a prompt cycle by cycle: timings per stage, logit lens, attention, roofline");
        model.AddTo(command);
        foreach (var o in new Option[] { maxNew, topK, ctx, step, perfetto, html, attention, cache, sae, saeTop, steerFeature })
            command.Options.Add(o);
        command.Arguments.Add(prompt);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int n = result.GetValue(maxNew);
            if (n < 0) throw new UsageException($"-n is {n}, expected 0 or more");
            int k = result.GetValue(topK);
            if (k < 1 || k > 100) throw new UsageException($"--lens-top is {k}, expected 1 to 100");
            int? contextLength = result.GetValue(ctx);
            if (contextLength is <= 0) throw new UsageException($"--ctx is {contextLength}, expected a positive number");
            string? perfettoPath = result.GetValue(perfetto), htmlPath = result.GetValue(html);
            if (result.GetValue(step) && (perfettoPath ?? htmlPath) is not null)
                throw new UsageException("--step is interactive; --perfetto and --html export a non-interactive trace, use them without --step");
            if (result.GetValue(step) && (result.GetValue(sae) ?? []).Length > 0)
                throw new UsageException("--sae shows features in the trace's tables and exports; use it without --step (--steer-feature works with --step)");
            int threads = result.GetValue(model.Threads);
            int featureTop = result.GetValue(saeTop);
            if (featureTop < 1 || featureTop > 100) throw new UsageException($"--sae-top is {featureTop}, expected 1 to 100");
            string[] steerings = result.GetValue(steerFeature) ?? [];

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            var transformer = m.CreateTransformer(contextLength, pool);
            int[] promptIds = m.Tokenizer.Encode(result.GetValue(prompt)!).ToArray();
            if (promptIds.Length == 0) throw new UsageException("the prompt is empty (no tokens, and the tokenizer adds no BOS)");
            if (promptIds.Length >= transformer.ContextLength)
                throw new UsageException($"the prompt is {promptIds.Length} tokens but the context holds {transformer.ContextLength}");
            var saes = (result.GetValue(sae) ?? []).Select(path => LoadSae(path, m)).ToArray();
            if (steerings.Length > 0)
            {
                if (saes.Length == 0) throw new UsageException("--steer-feature needs a --sae: the features are its");
                transformer.Steering = ResidualSteering.Create(m.Config, steerings.Select(text => SteeringTerm(text, saes[0], m)));
            }

            if (result.GetValue(step))
                return new StepDebugger(m, transformer, promptIds, n, k, Console.In, Console.Out).Run();

            var roofline = RooflineCommand.Load(result.GetValue(cache) ?? Roofline.DefaultCachePath, refresh: false);
            var trace = ClockTrace.Run(transformer, promptIds, n, k, m.Tokenizer.IsEndOfGeneration, saes, featureTop);
            string Text(int id) => TokenText(m.Tokenizer, id);
            PrintTables(trace, Text, result.GetValue(attention), Console.Out);
            PrintSummary(m, trace, roofline, threads, Console.Out);
            if (perfettoPath is not null)
            {
                PerfettoTrace.Write(trace, Text, perfettoPath);
                Console.Out.WriteLine($"perfetto trace: {perfettoPath} (open in ui.perfetto.dev or chrome://tracing)");
            }
            if (htmlPath is not null)
            {
                HtmlReport.Write(trace, Text, $"ClockLM trace of {Path.GetFileName(m.Path)}", htmlPath);
                Console.Out.WriteLine($"html report: {htmlPath}");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>Reads a sparse autoencoder and checks it reads a hook point of <paramref name="model"/>.</summary>
    private static SparseAutoencoder LoadSae(string path, Model model)
    {
        SparseAutoencoder sae;
        try
        {
            sae = SparseAutoencoder.Load(path);
        }
        catch (InvalidDataException e)
        {
            throw new UsageException($"--sae {path}: {e.Message}");
        }
        try
        {
            ClockTrace.FeaturePoint(sae, model.Config);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--sae {path}: {e.Message}");
        }
        return sae;
    }

    /// <summary>--steer-feature IDX:SCALE as a steering term of <paramref name="sae"/>'s feature.</summary>
    private static SteeringTerm SteeringTerm(string text, SparseAutoencoder sae, Model model)
    {
        string[] parts = text.Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int feature)
            || !float.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out float scale) || !float.IsFinite(scale))
            throw new UsageException($"--steer-feature is '{text}', expected IDX:SCALE, e.g. 123:4");
        try
        {
            return FeatureSteering.Term(sae, feature, scale, model.Config);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--steer-feature {text}: {e.Message}");
        }
    }

    /// <summary>A token's text for display: its decoded bytes, or its piece when those are not text on their own.</summary>
    public static string TokenText(Tokenizer tokenizer, int id)
    {
        string text = tokenizer.Decode([id]);
        string piece = tokenizer.GetPiece(id);
        if (text.Length == 0 || text.Contains('\uFFFD')) return piece;
        // SentencePiece drops a word's leading space when a token is decoded alone; a trace should show it.
        return piece.StartsWith('\u2581') && !text.StartsWith(' ') ? " " + text : text;
    }

    /// <summary>Quoted and shortened to <paramref name="width"/> characters, control characters escaped.</summary>
    public static string Quote(string text, int width = 12)
    {
        var escaped = new System.Text.StringBuilder("'");
        foreach (char c in text)
            escaped.Append(c switch { '\n' => "\\n", '\t' => "\\t", '\r' => "\\r", _ when char.IsControl(c) => $"\\x{(int)c:x2}", _ => c.ToString() });
        escaped.Append('\'');
        string s = escaped.ToString();
        return s.Length <= width ? s : s[..(width - 2)] + "…'";
    }

    private static void PrintTables(ClockTrace trace, Func<int, string> text, bool attention, TextWriter output)
    {
        foreach (var p in trace.Passes)
        {
            double micros = p.Timing.Seconds * 1e6;
            string what = p.Rows == 1
                ? $"token {p.Position} {Quote(text(p.Tokens[0]), 20)} ({(p.Generated ? "generated" : "prompt")})"
                : $"prompt {p.Position}-{p.LastPosition} ({p.Rows} tokens in one pass: {Quote(string.Concat(p.Tokens.Select(text)), 40)})";
            output.WriteLine($"{what}: {micros:F1} µs = embed {Micros(p.Timing.EmbeddingTicks):F1} + cycles {p.Cycles.Sum(c => c.Seconds) * 1e6:F1} + commit {Micros(p.Timing.CommitTicks):F1}");
            // The lens column is the pass's last token's: what the model would say next after each cycle.
            var last = trace.Tokens[p.LastPosition];
            output.WriteLine($"  {"cycle",-5} {"fetch",7} {"decode",7} {"memory",7} {"execute",8} {"write-back",10} {"total µs",9} {"share",6} {"GB/s",7} {"GFLOP/s",8}  logit lens");
            foreach (var c in p.Cycles)
            {
                var s = c.StageSeconds;
                string lens = string.Join("  ", last.Lens[c.Layer].Select(t => $"{Quote(text(t.Token))} {t.Probability:F2}"));
                output.WriteLine($"  L{c.Layer,-4} {s[0] * 1e6,7:F2} {s[1] * 1e6,7:F2} {s[2] * 1e6,7:F2} {s[3] * 1e6,8:F2} {s[4] * 1e6,10:F2} " +
                    $"{c.Seconds * 1e6,9:F2} {c.Seconds * 1e6 / micros,6:P0} {c.GigabytesPerSecond,7:F2} {c.Gflops,8:F2}  " +
                    lens);
            }
            // Per token of the pass, each autoencoder's most active features: #feature activation.
            for (int pos = p.Position; pos <= p.LastPosition; pos++)
                foreach (var f in trace.Tokens[pos].Features)
                    output.WriteLine($"  features @{pos,-4} {f.Hook}: " + (f.Top.Length == 0 ? "(none active)" : string.Join("  ", f.Top.Select(a => $"#{a.Feature} {a.Activation:F2}"))));
            if (attention)
            {
                // Per token of the pass and cycle, each head's most attended position (and its weight) and the entropy
                // of its weights in nats.
                for (int pos = p.Position; pos <= p.LastPosition; pos++)
                    foreach (var layer in trace.Tokens[pos].Attention)
                        output.WriteLine($"  attn L{layer[0].Layer,-3} @{pos,-4} " + string.Join(" ", layer.Select(h =>
                            $"H{h.Head}->{h.Strongest.Position}:{h.Strongest.Weight:F2}/{h.Entropy:F2}")));
            }
            output.WriteLine();
        }
    }

    private static void PrintSummary(Model model, ClockTrace trace, Roofline roofline, int threads, TextWriter output)
    {
        // Decode speed is the generated tokens' (each runs alone); with none, the prompt's per token.
        var timed = trace.Passes.Where(p => p.Generated).ToArray();
        if (timed.Length == 0) timed = trace.Passes;
        int tokens = timed.Sum(p => p.Rows);
        double seconds = timed.Sum(p => p.Timing.Seconds) / tokens;
        long weightBytes = ClockTrace.WeightBytesPerToken(model.Weights);
        long flops = timed.Sum(p => p.Cycles.Sum(c => c.Flops) + p.Timing.CommitFlops) / tokens;
        double achievedGbps = weightBytes / seconds / 1e9;
        double bandwidth = roofline.BandwidthAt(threads);
        double memoryCeiling = bandwidth * 1e9 / weightBytes;
        double computeCeiling = roofline.PeakGflops * 1e9 / flops;
        double ceiling = Math.Min(memoryCeiling, computeCeiling);

        output.WriteLine("summary");
        output.WriteLine($"  tokens traced        {trace.Tokens.Length} ({trace.Tokens.Count(t => t.Generated)} generated) in {trace.Passes.Length} passes, {threads} thread(s)");
        output.WriteLine($"  time per token       {seconds * 1e6:F1} µs = {1 / seconds:F1} tokens/s");
        output.WriteLine($"  weights per token    {weightBytes / 1e6:F3} MB; {flops / 1e6:F3} MFLOP");
        output.WriteLine($"  achieved             {achievedGbps:F2} GB/s of weights, {flops / seconds / 1e9:F2} GFLOP/s");
        output.WriteLine($"  roofline             {bandwidth:F2} GB/s read ({threads} thread(s)), {roofline.PeakGflops:F1} GFLOP/s peak");
        output.WriteLine($"  bandwidth used       {achievedGbps / bandwidth:P0} of the measured memory bandwidth");
        output.WriteLine($"  ceiling              {ceiling:F0} tokens/s on this machine (memory bound {memoryCeiling:F0}, compute bound {computeCeiling:F0}); " +
                         $"reached {1 / seconds / ceiling:P0}");
        if (achievedGbps > bandwidth)
            output.WriteLine("  note                 the weights fit in the CPU caches, so reads beat main-memory bandwidth; the ceiling binds only models larger than the caches");
    }

    private static double Micros(long ticks) => ticks * 1e6 / System.Diagnostics.Stopwatch.Frequency;
}
