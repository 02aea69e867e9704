using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Generation;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>`clocklm bench --model M [-p 128] [-n 64] [-t 1,2] [-r 3] [--ubatch 32] [--batch B] [--json FILE]`: a llama-bench
/// style table; --batch adds a row of B sequences generating together (aggregate tokens per second).</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "Model file", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer file for llama2.c checkpoints" };
        var prompt = new Option<int>("-p", "--n-prompt") { Description = "Prompt tokens (0 skips the pp test)", DefaultValueFactory = _ => 128 };
        var gen = new Option<int>("-n", "--n-gen") { Description = "Generated tokens (0 skips the tg test)", DefaultValueFactory = _ => 64 };
        var threads = new Option<string>("-t", "--threads") { Description = "Thread counts, comma-separated", DefaultValueFactory = _ => Environment.ProcessorCount.ToString() };
        var reps = new Option<int>("-r", "--repetitions") { Description = "Repetitions per test", DefaultValueFactory = _ => 3 };
        var json = new Option<string?>("--json") { Description = "Also write the rows as JSON to this file" };
        var ubatch = new Option<int?>("--ubatch", "-ub") { Description = "Prompt tokens run through the layers together (default 128; 1 = token by token)" };
        var batch = new Option<int>("--batch", "-b") { Description = "Also measure this many sequences generating -n tokens each together (0 = off)", DefaultValueFactory = _ => 0 };
        var kernels = ModelOptions.KernelsOption();
        var command = new Command("bench", "Measure prompt (pp) and generation (tg) speed, like llama-bench");
        foreach (var o in new Option[] { model, tokenizer, prompt, gen, threads, reps, ubatch, batch, kernels, json }) command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int[] threadCounts = ParseThreads(result.GetValue(threads)!);
            int p = result.GetValue(prompt), n = result.GetValue(gen), r = result.GetValue(reps);
            if (p < 0 || n < 0 || p + n == 0) throw new UsageException($"-p {p} and -n {n}: expected counts of 0 or more, not both 0");
            if (r < 1) throw new UsageException($"-r is {r}, expected at least 1");
            int? ub = result.GetValue(ubatch);
            if (ub is < 1) throw new UsageException($"--ubatch is {ub}, expected at least 1");
            int b = result.GetValue(batch);
            if (b < 0) throw new UsageException($"--batch is {b}, expected 0 (off) or more sequences");
            if (b > 0 && n == 0) throw new UsageException("--batch needs -n tokens to generate per sequence");
            string path = result.GetValue(model)!;
            using var m = Model.Load(path, result.GetValue(tokenizer), ModelOptions.Options(result, kernels));
            Console.Error.WriteLine($"kernels: {m.Weights.Kernels.Describe()}");
            string type = m.Weights.Layers[0].Wq.Type.ToString();
            string size = $"{m.FileBytes / 1048576.0:F2} MiB";
            var rows = new JsonArray();
            Console.Out.WriteLine($"| {"model",-28} | {"size",12} | {"type",6} | {"threads",7} | {"test",8} | {"t/s",20} |");
            Console.Out.WriteLine($"| {new string('-', 28)} | {new string('-', 12)} | {new string('-', 6)} | {new string('-', 7)} | {new string('-', 8)} | {new string('-', 20)} |");
            foreach (int t in threadCounts)
            {
                foreach (var (isPrompt, count, sequences) in new[] { (true, p, 0), (false, n, 0), (false, b > 0 ? n : 0, b) })
                {
                    if (count == 0) continue;
                    var row = sequences > 0 ? Throughput.MeasureBatch(m, sequences, count, t, r) : Throughput.Measure(m, isPrompt, count, t, r, ub);
                    string name = Path.GetFileName(path);
                    Console.Out.WriteLine($"| {name,-28} | {size,12} | {type,6} | {t,7} | {row.Test,8} | {row.Mean,10:F2} ± {row.StandardDeviation,7:F2} |");
                    rows.Add((JsonNode)new JsonObject
                    {
                        ["model"] = name, ["size_bytes"] = m.FileBytes, ["type"] = type, ["kernels"] = m.Weights.Kernels.ToString(),
                        ["threads"] = t, ["test"] = row.Test, ["tps_mean"] = row.Mean, ["tps_median"] = row.Median,
                        ["tps_sd"] = row.StandardDeviation, ["samples"] = new JsonArray([.. row.Samples.Select(v => (JsonNode)v)]),
                    });
                }
            }
            if (result.GetValue(json) is { } jsonPath)
                File.WriteAllText(jsonPath, rows.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }));
        return command;
    }

    /// <summary>"1,2" → [1, 2]; anything else is a usage error.</summary>
    public static int[] ParseThreads(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException("--threads needs at least one count");
        return parts.Select(s => int.TryParse(s, out int v) && v is >= 1 and <= 1024 ? v
            : throw new UsageException($"--threads value '{s}' is not a thread count from 1 to 1024")).ToArray();
    }
}
