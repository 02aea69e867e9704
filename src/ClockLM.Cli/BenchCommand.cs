using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Generation;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>`clocklm bench --model M [-p 128] [-n 64] [-t 1,2] [-r 3] [-d 0,2048] [--ubatch 32] [--batch B]
/// [--cache-type-k/-v T] [--json FILE]`: a llama-bench style table; -d runs each test after that many cached tokens (one
/// row per depth); --batch adds a row of B sequences generating together (aggregate tokens per second).</summary>
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
        var depth = new Option<string>("--depth", "-d") { Description = "Cached tokens before each test, comma-separated (llama-bench's -d)", DefaultValueFactory = _ => "0" };
        var kernels = ModelOptions.KernelsOption();
        var grammar = new Option<string?>("--grammar") { Description = "Also measure greedy decoding with and without this GBNF grammar (rows tgN-greedy and tgN-grammar)" };
        var jsonSchema = new Option<string?>("--json-schema") { Description = "As --grammar, with the grammar of this JSON schema (a file, or the schema itself)" };
        var cacheTypes = new CacheTypeOptions();
        var command = new Command("bench", "Measure prompt (pp) and generation (tg) speed, like llama-bench");
        foreach (var o in new Option[] { model, tokenizer, prompt, gen, threads, reps, ubatch, batch, depth, kernels, grammar, jsonSchema, json }) command.Options.Add(o);
        cacheTypes.AddTo(command);
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
            var constraint = OutputGrammar.Read(result.GetValue(grammar), result.GetValue(jsonSchema));
            if (constraint is not null && n == 0) throw new UsageException("--grammar and --json-schema need -n tokens to generate");
            int[] depths = ParseCounts(result.GetValue(depth)!, "--depth", min: 0);
            var cache = cacheTypes.Read(result);
            string path = result.GetValue(model)!;
            using var m = Model.Load(path, result.GetValue(tokenizer), ModelOptions.Options(result, kernels));
            Console.Error.WriteLine($"kernels: {m.Weights.Kernels.Describe()}");
            string type = m.Weights.Layers[0].Wq.Type.ToString();
            string size = $"{m.FileBytes / 1048576.0:F2} MiB";
            var rows = new JsonArray();
            string typeK = KvCacheOptions.Name(cache.KeyType), typeV = KvCacheOptions.Name(cache.ValueType);
            string name = Path.GetFileName(path);
            Console.Out.WriteLine($"| {"model",-28} | {"size",12} | {"type",6} | {"threads",7} | {"type_k",6} | {"type_v",6} | {"test",14} | {"t/s",20} |");
            Console.Out.WriteLine($"| {new string('-', 28)} | {new string('-', 12)} | {new string('-', 6)} | {new string('-', 7)} | {new string('-', 6)} | {new string('-', 6)} | {new string('-', 14)} | {new string('-', 20)} |");
            void Print(int t, int d, ClockLM.Generation.ThroughputResult row)
            {
                Console.Out.WriteLine($"| {name,-28} | {size,12} | {type,6} | {t,7} | {typeK,6} | {typeV,6} | {row.Test,14} | {row.Mean,10:F2} ± {row.StandardDeviation,7:F2} |");
                rows.Add((JsonNode)RowJson(name, m, type, t, typeK, typeV, d, row));
            }
            foreach (int t in threadCounts)
            {
                foreach (int d in depths)
                    foreach (var (isPrompt, count, sequences) in new[] { (true, p, 0), (false, n, 0), (false, b > 0 && d == 0 ? n : 0, b) })
                    {
                        if (count == 0) continue;
                        Print(t, d, sequences > 0 ? Throughput.MeasureBatch(m, sequences, count, t, r, cache) : Throughput.Measure(m, isPrompt, count, t, r, ub, d, cache));
                    }
                if (constraint is not null)
                {
                    var (plain, constrained, stats) = Throughput.MeasureGrammar(m, constraint.Source, n, t, r);
                    Print(t, 0, plain);
                    Print(t, 0, constrained);
                    Console.Out.WriteLine($"  grammar/plain (medians): {constrained.Median / plain.Median:F3}; last run: {stats.MaskComputations} allowed sets walked " +
                        $"({stats.TrieNodesVisited} trie nodes), {stats.MaskCacheHits} from the cache, {stats.States} grammar states");
                }
            }
            if (result.GetValue(json) is { } jsonPath)
                File.WriteAllText(jsonPath, rows.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }));
        return command;
    }

    /// <summary>"0,2048" → [0, 2048]: counts of at least <paramref name="min"/>; anything else is a usage error naming
    /// <paramref name="option"/>.</summary>
    public static int[] ParseCounts(string text, string option, int min)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException($"{option} needs at least one count");
        return parts.Select(s => int.TryParse(s, out int v) && v >= min && v <= 1 << 24 ? v
            : throw new UsageException($"{option} value '{s}' is not a count from {min} to {1 << 24}")).ToArray();
    }

    /// <summary>"1,2" → [1, 2]; anything else is a usage error.</summary>
    public static int[] ParseThreads(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException("--threads needs at least one count");
        return parts.Select(s => int.TryParse(s, out int v) && v is >= 1 and <= 1024 ? v
            : throw new UsageException($"--threads value '{s}' is not a thread count from 1 to 1024")).ToArray();
    }

    /// <summary>One row of --json output.</summary>
    private static JsonObject RowJson(string name, ClockLM.Models.Model m, string type, int threads, string typeK, string typeV, int depth,
        ClockLM.Generation.ThroughputResult row) => new()
    {
        ["model"] = name, ["size_bytes"] = m.FileBytes, ["type"] = type, ["kernels"] = m.Weights.Kernels.ToString(),
        ["threads"] = threads, ["type_k"] = typeK, ["type_v"] = typeV, ["n_depth"] = depth, ["test"] = row.Test, ["tps_mean"] = row.Mean, ["tps_median"] = row.Median,
        ["tps_sd"] = row.StandardDeviation, ["samples"] = new JsonArray([.. row.Samples.Select(v => (JsonNode)v)]),
    };
}
