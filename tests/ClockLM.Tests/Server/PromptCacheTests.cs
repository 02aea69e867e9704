using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tensors;

namespace ClockLM.Tests.Server;

/// <summary>
/// Prefix reuse through a real HttpClient: a request keeps the keys and values a slot holds for its leading tokens and
/// evaluates only the rest, and its answer (text, ids and every logprob) is the same bits as with cache_prompt off, for
/// each type the KV cache stores.
/// </summary>
public sealed class PromptCacheTests
{
    private const string Story = "Once upon a time there was a little girl named Lily. She loved to play outside in the sun with her dog.";

    /// <summary>One text completion of token ids: its text, the cached and prompt token counts, and its logprobs as JSON
    /// (compared as text, so every float's bits count).</summary>
    private sealed record Answer(string Text, int PromptTokens, int CachedTokens, int CompletionTokens, string Logprobs);

    private static async Task<Answer> CompleteAsync(HttpClient http, int[] prompt, int max, int seed, bool cache = true)
    {
        string body = JsonSerializer.Serialize(new { prompt, max_tokens = max, seed, temperature = 1.0, logprobs = 3, cache_prompt = cache });
        using var response = await http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var root = JsonDocument.Parse(text).RootElement;
        var choice = root.GetProperty("choices")[0];
        var usage = root.GetProperty("usage");
        return new Answer(choice.GetProperty("text").GetString()!, usage.GetProperty("prompt_tokens").GetInt32(),
            usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32(),
            usage.GetProperty("completion_tokens").GetInt32(), choice.GetProperty("logprobs").GetRawText());
    }

    private static int[] Ids(ServerHost host, string text, bool bos = true) => host.Model.Tokenizer.Encode(text, addSpecial: bos).ToArray();

    private static long Metric(string metrics, string name) =>
        long.Parse(Regex.Match(metrics, $"^{name} (\\d+)$", RegexOptions.Multiline).Groups[1].Value, CultureInfo.InvariantCulture);

    private static Task<ServerHost> StartAsync(GgmlType cacheType) =>
        ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, KvCache = KvCacheOptions.Both(cacheType) });

    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.F32)]
    public async Task AnExtendedPromptReusesTheSlotAndAnswersBitForBitAsWithTheCacheOff(GgmlType cacheType)
    {
        await using var host = await StartAsync(cacheType);
        int[] first = Ids(host, Story);
        var a = await CompleteAsync(host.Http, first, 12, seed: 5);
        Assert.Equal(0, a.CachedTokens);
        Assert.Equal(12, a.CompletionTokens);

        // The next turn: the prompt, the answer's ids, and more text. The slot holds the prompt and the answer's tokens
        // but the last (sampled, never evaluated), so that many are reused.
        var alone = new Generator(host.Model, cache: KvCacheOptions.Both(cacheType)).Generate(first,
            new GenerationOptions { MaxNewTokens = 12, Sampler = new SamplerOptions { Temperature = 1.0f, Seed = 5 } });
        Assert.Equal(alone.Text, a.Text);
        int[] answerIds = alone.GeneratedIds;
        int[] second = [.. first, .. answerIds, .. Ids(host, " Then her mom called her home.", bos: false)];
        var cached = await CompleteAsync(host.Http, second, 20, seed: 6);
        var plain = await CompleteAsync(host.Http, second, 20, seed: 6, cache: false);
        Assert.Equal(first.Length + 11, cached.CachedTokens);
        Assert.Equal(0, plain.CachedTokens);
        Assert.Equal(plain, cached with { CachedTokens = 0 });
        Assert.Equal(new Generator(host.Model, cache: KvCacheOptions.Both(cacheType)).Generate(second,
            new GenerationOptions { MaxNewTokens = 20, Sampler = new SamplerOptions { Temperature = 1.0f, Seed = 6 } }).Text, cached.Text);
    }

    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    public async Task APromptThatDivergesMidSequenceKeepsOnlyTheSharedTokens(GgmlType cacheType)
    {
        await using var host = await StartAsync(cacheType);
        int[] story = Ids(host, Story);
        await CompleteAsync(host.Http, story, 8, seed: 1);

        int[] diverging = [.. story[..15], .. Ids(host, " a boy named Tom who had a big red ball.", bos: false)];
        int shared = story.AsSpan().CommonPrefixLength(diverging);
        Assert.InRange(shared, 15, 20);
        var cached = await CompleteAsync(host.Http, diverging, 16, seed: 2);
        var plain = await CompleteAsync(host.Http, diverging, 16, seed: 2, cache: false);
        Assert.Equal(shared, cached.CachedTokens);
        Assert.Equal(plain, cached with { CachedTokens = 0 });
    }

    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    public async Task AStrictPrefixOfTheCachedTokensAndARepeatedPromptRecomputeOnlyTheirLastToken(GgmlType cacheType)
    {
        await using var host = await StartAsync(cacheType);
        int[] story = Ids(host, Story);
        var first = await CompleteAsync(host.Http, story, 8, seed: 3);

        int[] prefix = story[..10];
        var cached = await CompleteAsync(host.Http, prefix, 16, seed: 4);
        Assert.Equal(9, cached.CachedTokens); // the last prompt token is evaluated again, for its logits
        var plain = await CompleteAsync(host.Http, prefix, 16, seed: 4, cache: false);
        Assert.Equal(plain, cached with { CachedTokens = 0 });

        // The slot now holds the prefix and its answer; the whole story again keeps the shared part only, and the
        // same request twice reuses everything but its last prompt token.
        var again = await CompleteAsync(host.Http, story, 8, seed: 3);
        Assert.True(again.CachedTokens >= 10, $"{again.CachedTokens} tokens reused");
        Assert.Equal(first with { CachedTokens = again.CachedTokens }, again);
        var repeated = await CompleteAsync(host.Http, story, 8, seed: 3);
        Assert.Equal(story.Length - 1, repeated.CachedTokens);
        Assert.Equal(first with { CachedTokens = story.Length - 1 }, repeated);
    }

    [Fact]
    public async Task EachConversationReturnsToItsOwnSlotAndMetricsCountCachedAndEvaluatedTokens()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 2 });
        // Two conversations that share their first tokens (as two chats share a template header) but little else.
        int[] x = Ids(host, "Once upon a time there was a dog named Max. Max liked to run in the park every day.");
        int[] y = Ids(host, "Once upon a time the sun was hot and the grass was dry.");
        int shared = x.AsSpan().CommonPrefixLength(y);
        Assert.InRange(shared, 1, 6);
        long evaluated = 0, reused = 0;
        async Task<Answer> Turn(int[] prompt, int seed)
        {
            var answer = await CompleteAsync(host.Http, prompt, 6, seed);
            (evaluated, reused) = (evaluated + answer.PromptTokens - answer.CachedTokens, reused + answer.CachedTokens);
            return answer;
        }

        await Turn(x, 1);
        // y shares a few tokens with x's slot but would overwrite most of it: it takes the unused slot.
        Assert.Equal(0, (await Turn(y, 2)).CachedTokens);
        for (int turn = 0; turn < 3; turn++)
        {
            x = [.. x, .. Ids(host, " They played.", bos: false)];
            y = [.. y, .. Ids(host, " It rained.", bos: false)];
            var ax = await Turn(x, 3 + turn);
            var ay = await Turn(y, 3 + turn);
            Assert.True(ax.CachedTokens >= x.Length - 10, $"turn {turn} of x reused {ax.CachedTokens} of {x.Length} tokens");
            Assert.True(ay.CachedTokens >= y.Length - 10, $"turn {turn} of y reused {ay.CachedTokens} of {y.Length} tokens");
        }

        string metrics = await host.Http.GetStringAsync("/metrics");
        Assert.Equal(evaluated, Metric(metrics, "clocklm_prompt_tokens_total"));
        Assert.Equal(reused, Metric(metrics, "clocklm_prompt_tokens_cached_total"));
        Assert.Equal(reused, host.Scheduler.Stats.CachedPromptTokens);
    }

    [Fact]
    public async Task ANextTurnWhoseReplyTokenizesDifferentlyStillReturnsToItsSlot()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 2 });
        int[] x = Ids(host, "Tom had a red ball."), y = Ids(host, "The sun was hot and the grass was dry.");
        await CompleteAsync(host.Http, y, 4, seed: 2);
        await CompleteAsync(host.Http, x, 48, seed: 1); // x's slot holds x and 47 answer tokens; y's is the least recently used
        // The reply comes back as other tokens than the model generated: the prompt extends x's last prompt only, which
        // keeps less than half of that slot's cache, yet it is the next turn of the conversation held there.
        int[] next = [.. x, .. Ids(host, " zzz qqq. Then he went home.", bos: false)];
        var answer = await CompleteAsync(host.Http, next, 4, seed: 3);
        Assert.InRange(answer.CachedTokens, x.Length, x.Length + 2);
        Assert.True(2 * answer.CachedTokens < x.Length + 47);
        // y's slot was left alone.
        Assert.Equal(y.Length - 1, (await CompleteAsync(host.Http, y, 4, seed: 2)).CachedTokens);
    }

    [Fact]
    public async Task StreamedUsageReportsTheCachedTokens()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1 });
        int[] story = Ids(host, Story);
        await CompleteAsync(host.Http, story, 4, seed: 1);
        string body = JsonSerializer.Serialize(new { prompt = story, max_tokens = 4, stream = true, stream_options = new { include_usage = true } });
        using var response = await host.Http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        string events = await response.Content.ReadAsStringAsync();
        var usage = events.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l[6..]).RootElement).Single(e => e.TryGetProperty("usage", out _)).GetProperty("usage");
        Assert.Equal(story.Length - 1, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
    }
}
