using System.CommandLine;
using ClockLM.Generation;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm perplexity --model M --file text.txt [-c 512] [--chunks N] [--cache-type-k/-v T]
/// [--kl-divergence-base FILE [--kl-divergence]]`: llama-perplexity's measurement (<see cref="Perplexity"/>), its
/// running estimate per chunk and its final "PPL = x ± y"; with --kl-divergence-base it also saves every scored token's
/// log-probabilities, and with --kl-divergence it compares the model with such a saved run instead (<see cref="KlDivergence"/>).
/// </summary>
internal static class PerplexityCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var file = new Option<string?>("--file", "-f") { Description = "Text to score (UTF-8)" };
        var context = new Option<int>("--ctx", "-c") { Description = "Tokens per chunk; the second half of each is scored", DefaultValueFactory = _ => 512 };
        var chunks = new Option<int?>("--chunks") { Description = "Most chunks to score (default: all the text fills)" };
        var ubatch = new Option<int?>("--ubatch", "-ub") { Description = "Tokens run through the layers together (default 128)" };
        var baseFile = new Option<string?>("--kl-divergence-base") { Description = "Save every scored token's log-probabilities here (or, with --kl-divergence, read them)" };
        var compare = new Option<bool>("--kl-divergence") { Description = "Compare the model's distributions with those saved in --kl-divergence-base" };
        var cacheTypes = new CacheTypeOptions();
        var command = new Command("perplexity", "Perplexity of a text (llama-perplexity's method), and KL divergence from a saved run");
        model.AddTo(command);
        foreach (var o in new Option[] { file, context, chunks, ubatch, baseFile, compare }) command.Options.Add(o);
        cacheTypes.AddTo(command);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int n = result.GetValue(context);
            if (n < 4) throw new UsageException($"-c is {n}, expected 4 or more tokens per chunk");
            int? most = result.GetValue(chunks);
            if (most is < 1) throw new UsageException($"--chunks is {most}, expected 1 or more");
            int? ub = result.GetValue(ubatch);
            if (ub is < 1) throw new UsageException($"--ubatch is {ub}, expected at least 1");
            var cache = cacheTypes.Read(result);
            string? basePath = result.GetValue(baseFile), textPath = result.GetValue(file);
            bool kl = result.GetValue(compare);
            if (kl && basePath is null) throw new UsageException("--kl-divergence needs --kl-divergence-base FILE, the saved run to compare with");
            if (kl && textPath is not null) throw new UsageException("--file: with --kl-divergence the tokens come from the --kl-divergence-base file");
            if (!kl && textPath is null) throw new UsageException("--file is required: the text to score");

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            var stdout = Console.Out;
            if (kl)
            {
                using var reader = LogProbabilityReader.Open(basePath!);
                if (result.GetResult(context) is { Implicit: false } && n != reader.Context)
                    throw new UsageException($"-c is {n}, but {basePath} was computed with a context of {reader.Context}; leave -c out");
                Console.Error.WriteLine($"comparing with {basePath}: {reader.Chunks} chunks of {reader.Context} tokens; KV cache {cache}");
                stdout.WriteLine($"{"chunk",5} {"PPL",22} {"ln(PPL(Q)/PPL(base))",26} {"KL divergence",26} {"Δp RMS",18} {"same top p",18}");
                var summary = KlDivergence.Measure(m, reader, cache, ub, pool, (chunk, s) =>
                {
                    stdout.WriteLine($"{chunk,5} {s.Perplexity.ToString("F4"),22} {s.LogRatio.ToString("F5"),26} {s.MeanKl.ToString("F5"),26} " +
                        $"{Percent(s.RmsDeltaP),18} {Percent(s.SameTop),18}");
                    stdout.Flush();
                });
                PrintSummary(summary);
                return 0;
            }

            string text = File.ReadAllText(textPath!);
            int[] tokens = m.Tokenizer.Encode(text, addSpecial: true).ToArray();
            if (tokens.Length < 2 * n)
                throw new UsageException($"{textPath}: {tokens.Length} tokens, but a context of {n} needs at least {2 * n}; give more text or a smaller -c");
            var options = new PerplexityOptions { Context = n, Chunks = most, KvCache = cache, MicroBatch = ub };
            int count = Math.Min(most ?? int.MaxValue, Perplexity.ChunksIn(tokens.Length, n));
            Console.Error.WriteLine($"perplexity: {tokens.Length} tokens, {count} chunks of {n} (the last {LogProbabilityFile.ScoredPerChunk(n)} tokens of each scored); KV cache {cache}");
            PerplexityResult ppl;
            if (basePath is null) ppl = Perplexity.Measure(m, tokens, options, pool, Progress);
            else
            {
                // Written to a temporary name and moved into place when complete, so no half-written base is left.
                string partial = basePath + ".partial";
                try
                {
                    using (var writer = new LogProbabilityWriter(File.Create(partial)))
                        ppl = Perplexity.Measure(m, tokens, options, pool, Progress, writer);
                    File.Move(partial, basePath, overwrite: true);
                }
                finally
                {
                    File.Delete(partial);
                }
                Console.Error.WriteLine($"saved the log-probabilities of {ppl.Tokens} tokens to {basePath}");
            }
            stdout.WriteLine();
            stdout.WriteLine($"Final estimate: PPL = {ppl.Value:F4} ± {ppl.Uncertainty:F5}");
            return 0;

            void Progress(PerplexityProgress p)
            {
                if (p.Chunk == 1)
                    Console.Error.WriteLine($"{p.Elapsed.TotalSeconds:F2} seconds per pass, about {p.Elapsed.TotalSeconds * p.Chunks / 60:F2} minutes in all");
                stdout.Write($"[{p.Chunk}]{p.Estimate:F4},");
                stdout.Flush();
            }
        }));
        return command;
    }

    private static string Percent(Estimate e) => $"{100 * e.Value:F3} ± {100 * e.Uncertainty:F3} %";

    private static void PrintSummary(KlDivergenceSummary s)
    {
        var o = Console.Out;
        o.WriteLine();
        o.WriteLine($"tokens compared               : {s.Tokens}");
        o.WriteLine($"Mean PPL(Q)                   : {s.Perplexity.ToString("F6")}");
        o.WriteLine($"Mean PPL(base)                : {s.BasePerplexity.ToString("F6")}");
        o.WriteLine($"Cor(ln(PPL(Q)), ln(PPL(base))): {100 * s.Correlation:F2}%");
        o.WriteLine($"Mean ln(PPL(Q)/PPL(base))     : {s.LogRatio.ToString("F6")}");
        o.WriteLine($"Mean PPL(Q)/PPL(base)         : {s.Ratio.ToString("F6")}");
        o.WriteLine($"Mean PPL(Q)-PPL(base)         : {s.Difference.ToString("F6")}");
        o.WriteLine();
        o.WriteLine($"Mean    KLD: {s.MeanKl.ToString("F6")}");
        foreach (var (percent, value) in s.KlPercentiles.Reverse())
            o.WriteLine($"{Label(percent),-7} KLD: {value,10:F6}");
        o.WriteLine();
        o.WriteLine($"Mean    Δp: {Percent(s.MeanDeltaP)}");
        foreach (var (percent, value) in s.DeltaPPercentiles.Reverse())
            o.WriteLine($"{Label(percent),-7} Δp: {100 * value,7:F3}%");
        o.WriteLine($"RMS Δp    : {Percent(s.RmsDeltaP)}");
        o.WriteLine($"Same top p: {Percent(s.SameTop)}");
    }

    private static string Label(double percent) => percent switch
    {
        0 => "Minimum",
        100 => "Maximum",
        50 => "Median",
        _ => $"{percent:0.0}%",
    };
}
