using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Server;
using ClockLM.Tensors;

namespace ClockLM.Bench.Server;

/// <summary>
/// Time to first token of each turn of a scripted multi-turn chat, with the server's prompt cache on
/// (<c>cache_prompt: true</c>) and off, against <c>clocklm serve</c> started here (<c>--model</c>) or any
/// OpenAI-compatible server (<c>--url</c>: a running <c>clocklm serve</c>, llama.cpp's llama-server).
/// </summary>
/// <remarks>
/// <para>The conversation is fixed text, so every server and mode sees the same prompts whatever its model answers:
/// each turn is a user message of about <c>--user-tokens</c> tokens and an assistant reply that brings the turn to
/// about <c>--turn-tokens</c> (counted with the server's <c>/tokenize</c> when it has one). Turn t sends the t user
/// messages and t-1 replies, streams at temperature 0 with <c>--max-tokens</c>, and its time to first token is taken
/// when the first chunk with text or a finish reason arrives (a model that ends at once still gives a time). With the
/// cache on, an untimed request then sends the turn with its reply in place: its tokens enter the server's cache as
/// they would have had the model generated the reply (a chat client sends the model's own reply back, whose tokens
/// the slot holds from decoding it; a random-weight model's replies seldom tokenize back to the same ids, so a scripted
/// reply stands in). Each repetition runs a conversation of its own (a different opening line), cache on then off,
/// after one warm-up request.</para>
/// <para>Usage: <c>ClockLM.Bench --conversation-ttft (--model M [--threads 2] [--ctx 2048] [--slots 4] [--cache-type f16] | --url URL)
/// [--turns 5] [--turn-tokens 400] [--user-tokens 48] [--max-tokens 1] [-r 1] [--json FILE]</c>.</para>
/// </remarks>
public static class ConversationTtft
{
    private sealed record TurnResult(int Turn, bool Cache, int PromptTokens, int? CachedTokens, double TtftMs);

    private static readonly string[] Words =
    [
        "the", "river", "morning", "carried", "a", "small", "boat", "past", "old", "houses", "where", "people", "talked",
        "about", "weather", "markets", "and", "letters", "from", "distant", "towns", "while", "children", "counted",
        "birds", "on", "wires", "under", "grey", "clouds", "that", "promised", "rain", "before", "evening", "lamps",
        "were", "lit", "along", "narrow", "streets", "of", "stone", "with", "bread", "baking", "in", "warm", "ovens",
    ];

    public static int Run(string[] args)
    {
        string? model = null, url = null, json = null;
        int threads = 2, slots = 4, turns = 5, turnTokens = 400, userTokens = 48, maxTokens = 1, reps = 1;
        int? ctx = null;
        var cache = KvCacheOptions.Default;
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
                switch (args[i])
                {
                    case "--model" or "-m": model = Next(); break;
                    case "--url": url = Next(); break;
                    case "--threads" or "-t": threads = Int(); break;
                    case "--ctx" or "-c": ctx = Int(); break;
                    case "--slots": slots = Int(); break;
                    case "--cache-type": cache = KvCacheOptions.Both(KvCacheOptions.ParseType(Next())); break;
                    case "--turns": turns = Int(); break;
                    case "--turn-tokens": turnTokens = Int(); break;
                    case "--user-tokens": userTokens = Int(); break;
                    case "--max-tokens": maxTokens = Int(); break;
                    case "-r": reps = Int(); break;
                    case "--json": json = Next(); break;
                    case "--conversation-ttft": break;
                    default: throw new ArgumentException($"unknown argument '{args[i]}'");
                }
            }
            if ((model is null) == (url is null)) throw new ArgumentException("give either --model (a server started here) or --url (a running server)");
            if (threads < 1 || slots < 1 || turns < 1 || userTokens < 1 || turnTokens <= userTokens || maxTokens < 1 || reps < 1)
                throw new ArgumentException("counts must be positive, and --turn-tokens larger than --user-tokens");
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        return RunAsync(model, url, threads, ctx, cache, slots, turns, turnTokens, userTokens, maxTokens, reps, json).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(string? modelPath, string? url, int threads, int? ctx, KvCacheOptions cacheTypes, int slots, int turns,
        int turnTokens, int userTokens, int maxTokens, int reps, string? json)
    {
        Model? model = null;
        WorkerPool? pool = null;
        SlotScheduler? scheduler = null;
        ClockLMServer? server = null;
        try
        {
            Uri address;
            string target;
            if (modelPath is not null)
            {
                model = Model.Load(modelPath);
                pool = new WorkerPool(threads - 1);
                scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = slots, ContextLength = ctx, Pool = pool, KvCache = cacheTypes });
                server = new ClockLMServer(scheduler, new ServerOptions { Host = "127.0.0.1", Port = 0 });
                await server.StartAsync();
                address = server.Address!;
                target = $"clocklm serve (in process) {Path.GetFileName(modelPath)}, {threads} threads, {slots} slots, context {scheduler.ContextLength}, KV cache {cacheTypes}";
            }
            else
            {
                address = new Uri(url!.EndsWith('/') ? url : url + "/");
                target = url!;
            }
            using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(30) };
            Console.WriteLine($"server: {target}");

            await ChatAsync(http, [new JsonObject { ["role"] = "user", ["content"] = "Hello." }], maxTokens, cache: false); // warm-up
            var results = new List<TurnResult>();
            for (int r = 0; r < reps; r++)
            {
                var script = await ScriptAsync(http, r, turns, userTokens, turnTokens - userTokens);
                foreach (bool cache in new[] { true, false })
                {
                    var messages = new JsonArray();
                    for (int t = 0; t < turns; t++)
                    {
                        messages.Add(new JsonObject { ["role"] = "user", ["content"] = script[t].User });
                        var (ttft, promptTokens, cached) = await ChatAsync(http, messages, maxTokens, cache);
                        results.Add(new TurnResult(t + 1, cache, promptTokens, cached, ttft));
                        Console.WriteLine($"rep {r + 1} cache {(cache ? "on " : "off")} turn {t + 1}: prompt {promptTokens,5} tokens, " +
                            $"cached {(cached?.ToString(CultureInfo.InvariantCulture) ?? "?"),5}, time to first token {ttft,9:F1} ms");
                        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = script[t].Answer });
                        if (cache && t + 1 < turns)
                        {
                            // The reply's tokens into the cache, untimed, as decoding it would have put them there.
                            await ChatAsync(http, messages, 1, cache: true);
                        }
                    }
                }
            }

            Console.WriteLine();
            Console.WriteLine($"| turn | prompt tokens | cached (on) | TTFT cache on ms | TTFT cache off ms | off/on |");
            Console.WriteLine($"| ---- | ------------- | ----------- | ---------------- | ----------------- | ------ |");
            for (int t = 1; t <= turns; t++)
            {
                var on = results.Where(x => x.Turn == t && x.Cache).ToList();
                var off = results.Where(x => x.Turn == t && !x.Cache).ToList();
                double onMs = Median(on.Select(x => x.TtftMs)), offMs = Median(off.Select(x => x.TtftMs));
                string cached = on[0].CachedTokens?.ToString(CultureInfo.InvariantCulture) ?? "?";
                Console.WriteLine($"| {t,4} | {on[0].PromptTokens,13} | {cached,11} | {onMs,16:F1} | {offMs,17:F1} | {offMs / onMs,6:F1} |");
            }
            if (json is not null)
                await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new { target, turns, turnTokens, userTokens, maxTokens, results },
                    new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException or InvalidOperationException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        finally
        {
            if (server is not null) await server.DisposeAsync();
            scheduler?.Dispose();
            pool?.Dispose();
            model?.Dispose();
        }
    }

    /// <summary>
    /// One streamed chat request: time to the first chunk with text or a finish reason, and the prompt and cached
    /// token counts from the usage (OpenAI's <c>prompt_tokens_details.cached_tokens</c>, or llama-server's
    /// <c>timings.cache_n</c>).
    /// </summary>
    private static async Task<(double TtftMs, int PromptTokens, int? Cached)> ChatAsync(HttpClient http, JsonArray messages, int maxTokens, bool cache)
    {
        var body = new JsonObject
        {
            ["messages"] = messages.DeepClone(),
            ["max_tokens"] = maxTokens,
            ["temperature"] = 0,
            ["seed"] = 1,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
            ["cache_prompt"] = cache,
        };
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = JsonContent.Create(body) };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        double ttft = -1;
        int promptTokens = -1;
        int? cached = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            string data = line[6..];
            if (data == "[DONE]") break;
            var chunk = JsonNode.Parse(data)!;
            if (ttft < 0 && chunk["choices"] is JsonArray { Count: > 0 } choices
                && (choices[0]?["delta"]?["content"]?.GetValue<string>() is { Length: > 0 } || choices[0]?["finish_reason"] is JsonValue))
                ttft = clock.Elapsed.TotalMilliseconds;
            if (chunk["usage"] is JsonObject usage)
            {
                promptTokens = usage["prompt_tokens"]!.GetValue<int>();
                cached = usage["prompt_tokens_details"]?["cached_tokens"]?.GetValue<int>() ?? cached;
            }
            if (chunk["timings"]?["cache_n"] is JsonValue cacheN) cached ??= cacheN.GetValue<int>();
        }
        if (ttft < 0) throw new InvalidOperationException("the stream ended without a token or a finish reason");
        return (ttft, promptTokens, cached);
    }

    /// <summary>The turns' user messages and scripted replies for repetition <paramref name="rep"/>, each grown word by
    /// word to its token count as the server's /tokenize counts them (about 4 characters a token without one).</summary>
    private static async Task<List<(string User, string Answer)>> ScriptAsync(HttpClient http, int rep, int turns, int userTokens, int answerTokens)
    {
        var random = new Random(1000 + rep);
        var script = new List<(string, string)>();
        for (int t = 0; t < turns; t++)
        {
            string opening = t == 0 ? $"Conversation {rep + 1}. " : "";
            script.Add((await TextAsync(http, random, opening, userTokens), await TextAsync(http, random, "", answerTokens)));
        }
        return script;
    }

    private static async Task<string> TextAsync(HttpClient http, Random random, string opening, int tokens)
    {
        var text = new StringBuilder(opening);
        while (true)
        {
            int count = await CountAsync(http, text.ToString());
            if (count >= tokens) return text.ToString();
            // Add a third of the missing count in words (a word is a token or more), then measure again.
            for (int i = 0; i < Math.Max(1, (tokens - count) / 3); i++)
                text.Append(text.Length == 0 || text[^1] == ' ' ? "" : " ").Append(Words[random.Next(Words.Length)]);
        }
    }

    private static async Task<int> CountAsync(HttpClient http, string text)
    {
        try
        {
            using var response = await http.PostAsJsonAsync("tokenize", new { content = text });
            if (response.IsSuccessStatusCode && JsonNode.Parse(await response.Content.ReadAsStringAsync())?["tokens"] is JsonArray ids)
                return ids.Count;
        }
        catch (HttpRequestException)
        {
        }
        return text.Length / 4;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
