using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Sampling;
using ClockLM.Tests.Generation;

namespace ClockLM.Tests.Server;

/// <summary>Slots that draft: every answer is the one the request gets alone without drafts, while the slots' prompts
/// and drafts share the rounds' passes.</summary>
public sealed class SpeculativeSlotTests : IClassFixture<SpeculativeDecodingTests.Models>
{
    private readonly SpeculativeDecodingTests.Models _m;

    public SpeculativeSlotTests(SpeculativeDecodingTests.Models models) => _m = models;

    /// <summary>With <paramref name="shift"/>, a context of 40 positions that every answer fills and shifts: slots roll
    /// back rejected drafts and shift their caches between the rounds' passes.</summary>
    [Theory]
    [InlineData("lookup", false)]
    [InlineData("model", false)]
    [InlineData("lookup", true)]
    [InlineData("model", true)]
    public async Task AnswersAreTheSameAsAloneWithoutDrafts(string kind, bool shift)
    {
        var speculative = kind == "lookup"
            ? new SpeculativeOptions { Lookup = 3, DraftMax = 5 }
            : new SpeculativeOptions { DraftModel = _m.Draft, DraftMax = 4, DraftPMin = 0.3f };
        using var scheduler = new SlotScheduler(_m.Target, new SlotSchedulerOptions
        {
            Slots = 3, Speculative = speculative, PrefillChunk = 8, ContextLength = shift ? 40 : null, ContextShift = shift,
        });
        string[] prompts = ["In the beginning", "And the LORD spake unto Moses, saying,", "Blessed are the", "Thou shalt", "And it came to pass"];
        var requests = prompts.Select((p, i) => new CompletionRequest
        {
            PromptIds = _m.Target.Tokenizer.Encode(p).ToArray(),
            MaxTokens = (shift ? 60 : 40) + 5 * i,
            Sampler = i % 2 == 0 ? SamplerOptions.Greedy : new SamplerOptions { Temperature = 0.8f, Seed = (ulong)i },
        }).ToList();
        var jobs = requests.Select(r => scheduler.Submit(r)).ToList();
        var results = await Task.WhenAll(jobs.Select(j => j.Result.WaitAsync(TimeSpan.FromMinutes(2))));

        var generator = new Generator(_m.Target, shift ? 40 : null);
        for (int i = 0; i < requests.Count; i++)
        {
            var alone = generator.Generate(requests[i].PromptIds, new GenerationOptions { MaxNewTokens = requests[i].MaxTokens!.Value, Sampler = requests[i].Sampler, ContextShift = shift });
            if (shift) Assert.Equal(requests[i].MaxTokens!.Value, alone.GeneratedIds.Length);
            Assert.Equal(alone.GeneratedIds, results[i].GeneratedIds);
        }
        var stats = scheduler.Stats;
        Assert.True(stats.AcceptedDraftTokens > 0 && stats.AcceptedDraftTokens < stats.DraftedTokens, $"drafted {stats.DraftedTokens}, accepted {stats.AcceptedDraftTokens}");
        Assert.Equal(0, stats.DraftFallbacks);
        Assert.Equal(0, stats.BatchFallbacks);
    }
}
