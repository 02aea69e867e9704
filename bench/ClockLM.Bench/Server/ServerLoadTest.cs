using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Server;

namespace ClockLM.Bench.Server;

/// <summary>
/// Load test of the HTTP server: N concurrent streaming clients for a fixed time against a server on 127.0.0.1, then
/// every answer is checked against the same request run alone (same prompt, settings and seed) by the engine's plain
/// generation loop. Reports time to first token (p50/p99), aggregate generated tokens/s, failures and mismatches.
/// Usage: <c>ClockLM.Bench --serve-load [--model M] [--clients 16] [--seconds 60] [--slots 16]</c>.
/// </summary>
public static class ServerLoadTest
{
    private sealed record Sample(string Prompt, ulong Seed, int MaxTokens, string Text, int Tokens, double TtftMs, string? Error);

    private static readonly string[] Prompts =
    [
        "Once upon a time", "Tom had a red ball", "The sun was hot and", "Lily liked to sing",
        "One day, a little bird", "The big dog ran", "Mom said to Ben", "There was a tall tree",
    ];

    public static int Run(string[] args)
    {
        string model = Option(args, "--model") ?? DefaultModel();
        int clients = int.Parse(Option(args, "--clients") ?? "16", CultureInfo.InvariantCulture);
        int seconds = int.Parse(Option(args, "--seconds") ?? "60", CultureInfo.InvariantCulture);
        int slots = int.Parse(Option(args, "--slots") ?? clients.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        return RunAsync(model, clients, TimeSpan.FromSeconds(seconds), slots).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(string modelPath, int clients, TimeSpan duration, int slots)
    {
        using var model = Model.Load(modelPath);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = slots, QueueCapacity = clients * 2 });
        var server = new ClockLMServer(scheduler, new ServerOptions { Host = "127.0.0.1", Port = 0 });
        await server.StartAsync();
        Console.WriteLine($"server {server.Address}, model {server.ModelId}, {slots} slots, {clients} clients, {duration.TotalSeconds} s");

        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(5) };
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
                int max = rng.Next(16, 97);
                samples.Add(await StreamAsync(http, prompt, seed, max));
            }
        }));
        var wall = clock.Elapsed;
        var stats = scheduler.Stats;
        await server.DisposeAsync();

        var all = samples.ToList();
        var failed = all.Where(s => s.Error is not null).ToList();
        var ok = all.Where(s => s.Error is null).ToList();
        Console.WriteLine($"{all.Count} requests in {wall.TotalSeconds:F1} s; checking each against the same request run alone...");

        int mismatches = 0;
        var generator = new Generator(model);
        foreach (var s in ok)
        {
            var alone = generator.Generate(model.Tokenizer.Encode(s.Prompt).ToArray(),
                new GenerationOptions { MaxNewTokens = s.MaxTokens, Sampler = new SamplerOptions { Temperature = 1.0f, Seed = s.Seed } });
            if (alone.Text != s.Text || alone.GeneratedIds.Length != s.Tokens)
            {
                if (mismatches++ < 5) Console.WriteLine($"MISMATCH seed {s.Seed}: '{s.Text}' vs alone '{alone.Text}'");
            }
        }

        var ttft = ok.Select(s => s.TtftMs).Order().ToArray();
        long tokens = ok.Sum(s => (long)s.Tokens);
        Console.WriteLine($"requests: {all.Count}, failed: {failed.Count}, mismatched: {mismatches}");
        foreach (var f in failed.Take(5)) Console.WriteLine($"FAILED: {f.Error}");
        if (ttft.Length > 0)
            Console.WriteLine($"time to first token: p50 {Percentile(ttft, 0.50):F1} ms, p99 {Percentile(ttft, 0.99):F1} ms, max {ttft[^1]:F1} ms");
        Console.WriteLine($"generated tokens: {tokens}, aggregate {tokens / wall.TotalSeconds:F1} tokens/s over {wall.TotalSeconds:F1} s " +
                          $"(scheduler busy {stats.BusyTime.TotalSeconds:F1} s, {stats.GeneratedTokensPerSecond:F1} tokens/s busy)");
        return failed.Count == 0 && mismatches == 0 ? 0 : 1;
    }

    private static async Task<Sample> StreamAsync(HttpClient http, string prompt, ulong seed, int max)
    {
        var started = Stopwatch.StartNew();
        double ttft = -1;
        try
        {
            string body = JsonSerializer.Serialize(new { prompt, seed, max_tokens = max, temperature = 1.0, stream = true, stream_options = new { include_usage = true } });
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (!response.IsSuccessStatusCode)
                return new Sample(prompt, seed, max, "", 0, 0, $"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var text = new StringBuilder();
            int tokens = -1;
            bool done = false;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                string data = line[6..];
                if (data == "[DONE]") { done = true; break; }
                var root = JsonDocument.Parse(data).RootElement;
                var choices = root.GetProperty("choices");
                if (choices.GetArrayLength() > 0 && choices[0].GetProperty("text").GetString() is { Length: > 0 } piece)
                {
                    if (ttft < 0) ttft = started.Elapsed.TotalMilliseconds;
                    text.Append(piece);
                }
                if (root.TryGetProperty("usage", out var usage)) tokens = usage.GetProperty("completion_tokens").GetInt32();
            }
            if (!done || tokens < 0) return new Sample(prompt, seed, max, text.ToString(), 0, ttft, "stream ended without usage and [DONE]");
            return new Sample(prompt, seed, max, text.ToString(), tokens, ttft < 0 ? started.Elapsed.TotalMilliseconds : ttft, null);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException or TaskCanceledException)
        {
            return new Sample(prompt, seed, max, "", 0, 0, e.Message);
        }
    }

    private static double Percentile(double[] sorted, double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string DefaultModel()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ClockLM.slnx")))
                return Path.Combine(dir.FullName, "..", "shared", "models", "stories260K", "stories260K.bin");
        throw new FileNotFoundException("no --model given and no ClockLM.slnx above the bench to find ../shared");
    }
}
