using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Server;
using ClockLM.Tensors;

namespace ClockLM.Bench.Server;

/// <summary>
/// Load test of an OpenAI-compatible server: N concurrent streaming clients send completions for a fixed time, each
/// client one request after another; reports aggregate generated tokens/s, time to first token (p50/p99) and the
/// time between streamed tokens (p50/p99). Before each timed run every client sends one short request that is not
/// counted (the server's first requests compile code and touch the weights; a native server has the second only).
/// <c>--clients 1,8</c> runs the load once per count, in turn against the same server (<c>--repeat R</c> alternates the
/// list R times), and ends with one line per count (medians over repetitions) and each count's ratio to the first.
/// By default the server is ClockLM's own, started in this process on 127.0.0.1 with --slots slots (the largest client
/// count when not given) on --threads threads, as <c>clocklm serve --parallel N</c> runs it, and every answer is then
/// checked against the same request run alone (same prompt, settings and seed) by the plain generation loop
/// (<c>--no-check</c> skips that). With --url the same load goes to any OpenAI-compatible server (<c>clocklm serve</c>,
/// llama.cpp's llama-server, ...), naming --api-model in the requests (by default the first model its /v1/models
/// lists); nothing is checked then.
/// Usage: <c>ClockLM.Bench --serve-load [--model M | --url URL [--api-model NAME]] [--clients 8 | 1,8] [--repeat 1]
/// [--seconds 60] [--max-tokens 64] [--slots N] [--threads T] [--no-check] [--lookup N | --model-draft M] [--draft-max K]</c>.
/// </summary>
public static class ServerLoadTest
{
    private sealed record Sample(string Prompt, ulong Seed, int MaxTokens, string Text, int Tokens, double TtftMs, double[] GapsMs, string? Error);

    /// <summary>One timed run's figures.</summary>
    private sealed record Figures(int Clients, double TokensPerSecond, double TtftP50, double TtftP99, double GapP50, double GapP99, int Requests, int Failed);

    private static readonly string[] Prompts =
    [
        "Once upon a time", "Tom had a red ball", "The sun was hot and", "Lily liked to sing",
        "One day, a little bird", "The big dog ran", "Mom said to Ben", "There was a tall tree",
    ];

    public static int Run(string[] args)
    {
        string? url = Option(args, "--url");
        string model = Option(args, "--model") ?? (url is null ? DefaultModel() : "");
        int[] clientCounts = (Option(args, "--clients") ?? "8").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
        int repeat = Int(args, "--repeat", 1);
        int seconds = Int(args, "--seconds", 60);
        int maxTokens = Int(args, "--max-tokens", 64);
        int slots = Int(args, "--slots", clientCounts.Max());
        int threads = Int(args, "--threads", Environment.ProcessorCount);
        bool check = !args.Contains("--no-check");
        string? apiModel = Option(args, "--api-model");
        if (clientCounts.Any(c => c < 1) || repeat < 1 || seconds < 1 || maxTokens < 1 || slots < 1 || threads < 1)
        {
            Console.Error.WriteLine("error: --clients (each count), --repeat, --seconds, --max-tokens, --slots and --threads must be 1 or more");
            return 2;
        }
        var plan = Enumerable.Repeat(clientCounts, repeat).SelectMany(c => c).ToArray();
        if (url is not null)
        {
            var address = new Uri(url);
            apiModel ??= FirstModel(address);
            return RunPlanAsync(address, apiModel, null, plan, TimeSpan.FromSeconds(seconds), maxTokens).GetAwaiter().GetResult();
        }

        using var m = Model.Load(model);
        using var draft = Option(args, "--model-draft") is { } draftPath ? Model.Load(draftPath) : null;
        SpeculativeOptions? speculative = null;
        if (draft is not null || Option(args, "--lookup") is not null)
            speculative = new SpeculativeOptions { DraftModel = draft, Lookup = Int(args, "--lookup", 0), DraftMax = Int(args, "--draft-max", 16) };
        using var pool = new WorkerPool(threads - 1);
        using var scheduler = new SlotScheduler(m, new SlotSchedulerOptions { Slots = slots, QueueCapacity = clientCounts.Max() * 2, Pool = pool, Speculative = speculative });
        var server = new ClockLMServer(scheduler, new ServerOptions { Host = "127.0.0.1", Port = 0 });
        server.StartAsync().GetAwaiter().GetResult();
        try
        {
            Console.WriteLine($"ClockLM server {server.Address}, model {Path.GetFileName(model)}, {slots} slots, {threads} threads" +
                (speculative is null ? "" : draft is not null ? $", draft model {Path.GetFileName(draft.Path)}" : $", lookup {speculative.Lookup}"));
            var checker = check ? new Checker(m) : null;
            return RunPlanAsync(server.Address!, server.ModelId!, checker, plan, TimeSpan.FromSeconds(seconds), maxTokens).GetAwaiter().GetResult();
        }
        finally
        {
            var stats = scheduler.Stats;
            Console.WriteLine($"scheduler: busy {stats.BusyTime.TotalSeconds:F1} s, {stats.GeneratedTokensPerSecond:F1} tokens/s busy, " +
                $"{stats.BatchedTokens} of {stats.GeneratedTokens} tokens in steps of several slots, {stats.BatchFallbacks} batch fallbacks" +
                (stats.DraftedTokens > 0 ? $", drafted {stats.DraftedTokens}, accepted {stats.AcceptedDraftTokens}" : ""));
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>Checks answers against the same request run alone by the plain generation loop.</summary>
    private sealed class Checker(Model model)
    {
        private readonly Generator _generator = new(model);

        public bool Matches(Sample s)
        {
            var alone = _generator.Generate(model.Tokenizer.Encode(s.Prompt).ToArray(),
                new GenerationOptions { MaxNewTokens = s.MaxTokens, Sampler = new SamplerOptions { Temperature = 1.0f, Seed = s.Seed } });
            return alone.Text == s.Text && alone.GeneratedIds.Length == s.Tokens;
        }
    }

    /// <summary>Runs the load once per entry of <paramref name="plan"/> (a client count), then the summary.</summary>
    private static async Task<int> RunPlanAsync(Uri address, string apiModel, Checker? check, int[] plan, TimeSpan duration, int maxTokens)
    {
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(5) };
        var figures = new List<Figures>();
        bool allGood = true;
        foreach (int clients in plan)
        {
            var (f, good) = await RunAsync(http, address, apiModel, check, clients, duration, maxTokens);
            figures.Add(f);
            allGood &= good;
        }
        if (plan.Length > 1) Summarize(figures);
        return allGood ? 0 : 1;
    }

    /// <summary>One line per client count (medians over its runs), and its aggregate tokens/s over the first count's.</summary>
    private static void Summarize(List<Figures> figures)
    {
        Console.WriteLine();
        Console.WriteLine("clients  runs  tokens/s  ratio  TTFT p50 ms  TTFT p99 ms  gap p50 ms  gap p99 ms  requests  failed");
        double? first = null;
        foreach (var group in figures.GroupBy(f => f.Clients))
        {
            var runs = group.ToList();
            double Median(Func<Figures, double> pick) => Throughput.Median(runs.Select(pick).ToList());
            double tps = Median(f => f.TokensPerSecond);
            first ??= tps;
            Console.WriteLine($"{group.Key,7}  {runs.Count,4}  {tps,8:F1}  {tps / first.Value,5:F2}  {Median(f => f.TtftP50),11:F1}  {Median(f => f.TtftP99),11:F1}" +
                $"  {Median(f => f.GapP50),10:F1}  {Median(f => f.GapP99),10:F1}  {runs.Sum(f => f.Requests),8}  {runs.Sum(f => f.Failed),6}");
        }
    }

    private static async Task<(Figures, bool)> RunAsync(HttpClient http, Uri address, string apiModel, Checker? check, int clients, TimeSpan duration, int maxTokens)
    {
        Console.WriteLine($"{clients} streaming clients, {maxTokens}-token completions, {duration.TotalSeconds} s against {address}");
        // Warm-up, not counted: one short request per client, all at once.
        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => StreamAsync(http, apiModel, Prompts[c % Prompts.Length], 1_000_000 + (ulong)c, Math.Min(8, maxTokens))));
        var samples = new System.Collections.Concurrent.ConcurrentBag<Sample>();
        long nextSeed = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async client =>
        {
            var rng = new Random(client);
            while (clock.Elapsed < duration)
            {
                ulong seed = (ulong)Interlocked.Increment(ref nextSeed);
                string prompt = Prompts[rng.Next(Prompts.Length)];
                samples.Add(await StreamAsync(http, apiModel, prompt, seed, maxTokens));
            }
        }));
        var wall = clock.Elapsed;

        var all = samples.ToList();
        var failed = all.Where(s => s.Error is not null).ToList();
        var ok = all.Where(s => s.Error is null).ToList();
        int mismatches = 0;
        if (check is not null)
        {
            Console.WriteLine($"{all.Count} requests in {wall.TotalSeconds:F1} s; checking each against the same request run alone...");
            foreach (var s in ok)
                if (!check.Matches(s) && mismatches++ < 5)
                    Console.WriteLine($"MISMATCH seed {s.Seed}: '{s.Text}'");
        }

        var ttft = ok.Select(s => s.TtftMs).Order().ToArray();
        var gaps = ok.SelectMany(s => s.GapsMs).Order().ToArray();
        long tokens = ok.Sum(s => (long)s.Tokens);
        Console.WriteLine($"requests: {all.Count}, failed: {failed.Count}" + (check is null ? "" : $", mismatched: {mismatches}"));
        foreach (var f in failed.Take(5)) Console.WriteLine($"FAILED: {f.Error}");
        if (ttft.Length > 0)
            Console.WriteLine($"time to first token: p50 {Percentile(ttft, 0.50):F1} ms, p99 {Percentile(ttft, 0.99):F1} ms, max {ttft[^1]:F1} ms");
        if (gaps.Length > 0)
            Console.WriteLine($"between tokens: p50 {Percentile(gaps, 0.50):F1} ms, p99 {Percentile(gaps, 0.99):F1} ms");
        double tps = tokens / wall.TotalSeconds;
        Console.WriteLine($"generated tokens: {tokens}, aggregate {tps:F1} tokens/s over {wall.TotalSeconds:F1} s");
        var figures = new Figures(clients, tps,
            ttft.Length > 0 ? Percentile(ttft, 0.50) : double.NaN, ttft.Length > 0 ? Percentile(ttft, 0.99) : double.NaN,
            gaps.Length > 0 ? Percentile(gaps, 0.50) : double.NaN, gaps.Length > 0 ? Percentile(gaps, 0.99) : double.NaN,
            all.Count, failed.Count);
        return (figures, failed.Count == 0 && mismatches == 0);
    }

    /// <summary>One streamed completion. Tokens are the usage's completion_tokens when the server reports it, else the
    /// streamed pieces; the gaps are the times between pieces after the first.</summary>
    private static async Task<Sample> StreamAsync(HttpClient http, string apiModel, string prompt, ulong seed, int max)
    {
        var started = Stopwatch.StartNew();
        double ttft = -1, last = 0;
        var gaps = new List<double>();
        try
        {
            string body = JsonSerializer.Serialize(new { model = apiModel, prompt, seed, max_tokens = max, temperature = 1.0, stream = true, stream_options = new { include_usage = true } });
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode)
                return new Sample(prompt, seed, max, "", 0, 0, [], $"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var text = new StringBuilder();
            int tokens = -1, pieces = 0;
            bool done = false;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                string data = line[6..];
                if (data == "[DONE]") { done = true; break; }
                var root = JsonDocument.Parse(data).RootElement;
                if (root.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                    && choices[0].TryGetProperty("text", out var t) && t.GetString() is { Length: > 0 } piece)
                {
                    double now = started.Elapsed.TotalMilliseconds;
                    if (ttft < 0) ttft = now;
                    else gaps.Add(now - last);
                    last = now;
                    pieces++;
                    text.Append(piece);
                }
                if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                    tokens = usage.GetProperty("completion_tokens").GetInt32();
            }
            if (!done) return new Sample(prompt, seed, max, text.ToString(), 0, ttft, [], "stream ended without [DONE]");
            return new Sample(prompt, seed, max, text.ToString(), tokens >= 0 ? tokens : pieces,
                ttft < 0 ? started.Elapsed.TotalMilliseconds : ttft, gaps.ToArray(), null);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException or TaskCanceledException or KeyNotFoundException)
        {
            return new Sample(prompt, seed, max, "", 0, 0, [], e.Message);
        }
    }

    /// <summary>The id of the first model the server's /v1/models lists.</summary>
    private static string FirstModel(Uri address)
    {
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
        string json = http.GetStringAsync("/v1/models").GetAwaiter().GetResult();
        return JsonDocument.Parse(json).RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static int Int(string[] args, string name, int fallback) =>
        Option(args, name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    private static string DefaultModel()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ClockLM.slnx")))
                return Path.Combine(dir.FullName, "..", "shared", "models", "stories260K", "stories260K.bin");
        throw new FileNotFoundException("no --model given and no ClockLM.slnx above the bench to find ../shared");
    }
}
