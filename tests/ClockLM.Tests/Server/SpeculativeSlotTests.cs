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

    [Theory]
    [InlineData("lookup")]
    [InlineData("model")]
    public async Task AnswersAreTheSameAsAloneWithoutDrafts(string kind)
    {
        var speculative = kind == "lookup"
            ? new SpeculativeOptions { Lookup = 3, DraftMax = 5 }
            : new SpeculativeOptions { DraftModel = _m.Draft, DraftMax = 4, DraftPMin = 0.3f };
        using var scheduler = new SlotScheduler(_m.Target, new SlotSchedulerOptions { Slots = 3, Speculative = speculative, PrefillChunk = 8 });
        string[] prompts = ["In the beginning", "And the LORD spake unto Moses, saying,", "Blessed are the", "Thou shalt", "And it came to pass"];
        var requests = prompts.Select((p, i) => new CompletionRequest
        {
            PromptIds = _m.Target.Tokenizer.Encode(p).ToArray(),
            MaxTokens = 40 + 5 * i,
            Sampler = i % 2 == 0 ? SamplerOptions.Greedy : new SamplerOptions { Temperature = 0.8f, Seed = (ulong)i },
        }).ToList();
        var jobs = requests.Select(r => scheduler.Submit(r)).ToList();
        var results = await Task.WhenAll(jobs.Select(j => j.Result.WaitAsync(TimeSpan.FromMinutes(2))));

        var generator = new Generator(_m.Target);
        for (int i = 0; i < requests.Count; i++)
        {
            var alone = generator.Generate(requests[i].PromptIds, new GenerationOptions { MaxNewTokens = requests[i].MaxTokens!.Value, Sampler = requests[i].Sampler });
            Assert.Equal(alone.GeneratedIds, results[i].GeneratedIds);
        }
        var stats = scheduler.Stats;
        Assert.True(stats.AcceptedDraftTokens > 0 && stats.AcceptedDraftTokens < stats.DraftedTokens, $"drafted {stats.DraftedTokens}, accepted {stats.AcceptedDraftTokens}");
        Assert.Equal(0, stats.DraftFallbacks);
        Assert.Equal(0, stats.BatchFallbacks);
    }
}
