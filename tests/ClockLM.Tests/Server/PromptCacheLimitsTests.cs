using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Sampling;

namespace ClockLM.Tests.Server;

/// <summary>
/// What a slot's cache must not offer to the next request: entries a context shift moved (only the kept tokens stay
/// reusable) and entries computed under other steering. The answers stay the same bits as with the cache off.
/// </summary>
public sealed class PromptCacheLimitsTests
{
    private static async Task<CompletionResult> RunAsync(SlotScheduler scheduler, CompletionRequest request) =>
        await scheduler.Submit(request).Result;

    private static void AssertSameAnswer(CompletionResult expected, CompletionResult actual)
    {
        Assert.Equal(expected.GeneratedIds, actual.GeneratedIds);
        Assert.Equal(expected.Text, actual.Text);
        Assert.Equal(expected.Finish, actual.Finish);
    }

    [Fact]
    public async Task AfterAContextShiftOnlyTheKeptTokensAreReused()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 1, ContextLength = 48, ContextShift = true });
        int[] prompt = model.Tokenizer.Encode("Once upon a time there was a cat").ToArray();
        var sampler = new SamplerOptions { Temperature = 0.8f, Seed = 3 };
        var first = await RunAsync(scheduler, new CompletionRequest
        {
            PromptIds = prompt, MaxTokens = 80, KeepTokens = 2, IgnoreEndOfGeneration = true, Sampler = sampler,
        });
        Assert.True(scheduler.Stats.ContextShifts >= 1, "no context shift happened");

        // The next turn repeats the prompt and the first answer's opening: the slot's cache holds more of it, but only
        // BOS and the two kept tokens were never moved.
        int[] next = [.. prompt, .. first.GeneratedIds[..10]];
        var request = new CompletionRequest { PromptIds = next, MaxTokens = 12, Sampler = sampler with { Seed = 4 } };
        var cached = await RunAsync(scheduler, request);
        Assert.Equal(3, cached.CachedTokens);
        var plain = await RunAsync(scheduler, request with { CachePrompt = false });
        Assert.Equal(0, plain.CachedTokens);
        AssertSameAnswer(plain, cached);
    }

    [Fact]
    public async Task ACacheComputedUnderOtherSteeringIsNotReused()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 1 });
        var c = model.Config;
        var direction = new float[c.Dim];
        for (int i = 0; i < direction.Length; i++) direction[i] = MathF.Sin(i);
        var steering = ResidualSteering.Create(c, [new SteeringTerm(new Dictionary<int, float[]> { [2] = direction }, 3f)]);
        int[] prompt = model.Tokenizer.Encode("Once upon a time there was a little girl named Lily.").ToArray();
        var plain = new CompletionRequest { PromptIds = prompt, MaxTokens = 10, Sampler = new SamplerOptions { Temperature = 0 } };
        var steered = plain with { Steering = steering };

        await RunAsync(scheduler, plain);
        var first = await RunAsync(scheduler, steered);
        Assert.Equal(0, first.CachedTokens); // the slot's entries were computed unsteered
        var again = await RunAsync(scheduler, steered);
        Assert.Equal(prompt.Length - 1, again.CachedTokens); // the same steering reuses its own entries
        AssertSameAnswer(first, again);
        var back = await RunAsync(scheduler, plain);
        Assert.Equal(0, back.CachedTokens);
        AssertSameAnswer(await RunAsync(scheduler, plain with { CachePrompt = false }), back);
    }
}
