using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tensors;
using Xunit.Abstractions;

namespace ClockLM.Tests.Models;

/// <summary>
/// Generations that outgrow their context: with a context shift they go on, fluently, through the generate loop (`run`)
/// and the slot scheduler (`serve`, `chat`); without one they end at the context with a clear reason.
/// </summary>
public class ContextShiftTests(ITestOutputHelper output)
{
    private static int[] Prompt(Model model) => model.Tokenizer.Encode("Once upon a time", addSpecial: true).ToArray();

    [Fact]
    public async Task WithoutAShiftGenerationEndsAtTheContext()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var prompt = Prompt(model);
        var result = new Generator(model, contextLength: 32).Generate(prompt, new GenerationOptions { MaxNewTokens = 200, Sampler = SamplerOptions.Greedy });
        Assert.Equal(StopReason.ContextFull, result.StopReason);
        Assert.Equal(32 - prompt.Length + 1, result.GeneratedIds.Length); // the last one sampled from position 31's logits

        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 1, ContextLength = 32 });
        var job = scheduler.Submit(new CompletionRequest { PromptIds = prompt, MaxTokens = 200, Sampler = SamplerOptions.Greedy, IgnoreEndOfGeneration = true });
        var answer = await job.Result;
        Assert.Equal(FinishReason.Length, answer.Finish);
        Assert.Equal(32 - prompt.Length + 1, answer.GeneratedIds.Length);
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.Q8_0)]
    public void TheGenerateLoopShiftsAndGoesOnFromTheSameTokens(GgmlType type)
    {
        using var model = Model.Load(SharedData.Stories260K);
        var prompt = Prompt(model);
        var cache = KvCacheOptions.Both(type);
        var greedy = new GenerationOptions { MaxNewTokens = 100, Sampler = SamplerOptions.Greedy };
        var plain = new Generator(model, contextLength: 32, cache: cache).Generate(prompt, greedy);
        var shifted = new Generator(model, contextLength: 32, cache: cache).Generate(prompt, greedy with { ContextShift = true, KeepTokens = 4 });
        // Up to the first shift both runs are the same computation.
        Assert.Equal(plain.GeneratedIds, shifted.GeneratedIds[..plain.GeneratedIds.Length]);
        Assert.NotEqual(StopReason.ContextFull, shifted.StopReason);
        Assert.True(shifted.GeneratedIds.Length > 2 * plain.GeneratedIds.Length, $"{shifted.GeneratedIds.Length} tokens ({shifted.StopReason})");
        output.WriteLine($"{type}: {shifted.Text}");
    }

    /// <summary>
    /// Four contexts' worth of tokens from one slot of 128 positions, sampled (temperature 1) with end-of-text ignored:
    /// it runs to completion through three or more shifts, every token's log-probability is finite, the tokens do not
    /// collapse into repeats (every window of 64 holds many distinct tokens, no token runs long), and the model stays as
    /// sure of its tokens after the shifts as before them: the mean negative log-likelihood of each later context's
    /// tokens is within a factor 1.45 of the first context's (measured: at most 1.26; with the keys left unrotated by
    /// the shift it reaches 1.75, and a cache that feeds noise or repeats moves it further).
    /// </summary>
    [Theory]
    [InlineData(GgmlType.F32, GgmlType.F32)]
    [InlineData(GgmlType.F16, GgmlType.F16)]
    [InlineData(GgmlType.Q8_0, GgmlType.Q8_0)]
    public async Task AGenerationOfFourContextsRunsToCompletionAndStaysFluent(GgmlType keys, GgmlType values)
    {
        const int context = 128, length = 4 * context;
        using var model = Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions
        {
            Slots = 1, ContextLength = context, ContextShift = true, KvCache = new KvCacheOptions { KeyType = keys, ValueType = values },
        });
        var job = scheduler.Submit(new CompletionRequest
        {
            PromptIds = Prompt(model), MaxTokens = length, IgnoreEndOfGeneration = true, Logprobs = true,
            Sampler = new SamplerOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 7 },
        });
        var logprobs = new List<float>();
        await foreach (var update in job.Updates.ReadAllAsync())
            if (update.Logprob is { } lp) logprobs.Add(lp.Logprob);
        var result = await job.Result;

        Assert.Equal(FinishReason.Length, result.Finish);
        Assert.Equal(length, result.GeneratedIds.Length);
        Assert.True(scheduler.Stats.ContextShifts >= 3, $"{scheduler.Stats.ContextShifts} shifts");
        Assert.All(logprobs, lp => Assert.True(float.IsFinite(lp) && lp <= 0, $"log-probability {lp}"));
        var ids = result.GeneratedIds;
        for (int start = 0; start + 64 <= ids.Length; start += 64)
        {
            int distinct = ids.Skip(start).Take(64).Distinct().Count();
            Assert.True(distinct >= 24, $"tokens {start}..{start + 63} hold {distinct} distinct ids");
        }
        int run = 1, longest = 1;
        for (int i = 1; i < ids.Length; i++) longest = Math.Max(longest, run = ids[i] == ids[i - 1] ? run + 1 : 1);
        Assert.True(longest <= 4, $"a token repeats {longest} times in a row");
        double first = -logprobs.Take(context).Average();
        for (int c = 1; c < 4; c++)
        {
            double later = -logprobs.Skip(c * context).Take(context).Average();
            output.WriteLine($"{keys}/{values}: mean NLL of context {c}: {later:F3} (first {first:F3})");
            Assert.True(later < 1.45 * first && later > first / 1.45, $"context {c}: mean NLL {later:F3} against {first:F3} before any shift");
        }
        output.WriteLine(result.Text);
    }
}
