using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Sampling;

namespace ClockLM.Tests.Server;

public sealed class SlotSchedulerTests
{
    [Fact]
    public async Task ANewRequestJoinsTheRunningBatchAndFinishesWhileALongOneGoesOn()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 2, ContextLength = 4096 });
        using var cancel = new CancellationTokenSource();
        var longJob = scheduler.Submit(new CompletionRequest { PromptIds = [1, 403], MaxTokens = 4000, IgnoreEndOfGeneration = true }, cancel.Token);
        await longJob.Updates.ReadAsync(); // the long job is decoding

        int[] prompt = model.Tokenizer.Encode("The cat").ToArray();
        var sampler = new SamplerOptions { Seed = 9 };
        var shortJob = scheduler.Submit(new CompletionRequest { PromptIds = prompt, MaxTokens = 20, Sampler = sampler });
        var shortResult = await shortJob.Result.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.False(longJob.Result.IsCompleted, "the short request waited for the long one instead of joining the batch");
        Assert.Equal(1, scheduler.Stats.ActiveSlots); // the long one still holds its slot
        Assert.Equal(ServerHost.RunAlone(model, prompt, 20, sampler), shortResult.Text);
        cancel.Cancel();
        Assert.Equal(FinishReason.Cancelled, (await longJob.Result.WaitAsync(TimeSpan.FromSeconds(10))).Finish);
    }

    [Fact]
    public async Task PromptsReadInChunksBesideADecodingStreamLeaveEveryAnswerAsItIsAlone()
    {
        // A per-round budget of 8 prompt tokens: a 40-token prompt takes five rounds, and the stream already decoding
        // gains a token in each of them (it is not stalled); two prompts arriving together share the budget. Every
        // greedy answer is token for token the answer run alone, the cancelled stream's tokens are the first tokens of
        // its run alone, and the slots it and the others free serve the next requests just as well.
        using var model = Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 3, ContextLength = 4096, PrefillChunk = 8 });
        using var cancel = new CancellationTokenSource();
        int[] runningPrompt = [1, 403];
        var running = scheduler.Submit(new CompletionRequest
        {
            PromptIds = runningPrompt, MaxTokens = 4000, IgnoreEndOfGeneration = true, Sampler = SamplerOptions.Greedy,
        }, cancel.Token);
        await running.Updates.ReadAsync(); // decoding

        const string story = "Once upon a time there was a little girl named Lily. She liked to play in the park with her dog every day. ";
        int[] longPrompt = model.Tokenizer.Encode(story + story).ToArray()[..40];
        int[] shortPrompt = model.Tokenizer.Encode("The cat sat on the mat. " + story).ToArray()[..17];
        long before = scheduler.Stats.GeneratedTokens;
        var longJob = scheduler.Submit(Greedy(longPrompt, 24));
        var shortJob = scheduler.Submit(Greedy(shortPrompt, 24));
        await longJob.Updates.ReadAsync();
        long during = scheduler.Stats.GeneratedTokens - before;
        // Rounds reading the long prompt: at least 40 / 8 = 5 (fewer tokens when the short prompt shares a round), in
        // each of which the running stream decodes; the long prompt's own first token comes in the last of them.
        Assert.True(during >= 5, $"only {during} tokens were generated while a 40-token prompt was read 8 tokens a round: the running stream stalled");

        var longResult = await longJob.Result.WaitAsync(TimeSpan.FromSeconds(60));
        var shortResult = await shortJob.Result.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(AloneGreedy(model, longPrompt, 24), longResult.GeneratedIds);
        Assert.Equal(AloneGreedy(model, shortPrompt, 24), shortResult.GeneratedIds);

        cancel.Cancel();
        var runningResult = await running.Result.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(FinishReason.Cancelled, runningResult.Finish);
        Assert.True(runningResult.GeneratedIds.Length >= during - 1);
        int compared = Math.Min(runningResult.GeneratedIds.Length, 200);
        Assert.Equal(AloneGreedy(model, runningPrompt, compared, ignoreEnd: true), runningResult.GeneratedIds[..compared]);
        Assert.True(scheduler.Stats.BatchedTokens > 0, "no round ran several slots together");

        // The freed slots: the long prompt again (its slot's cache holds it: only the last token is read), and new ones.
        long cachedBefore = scheduler.Stats.CachedPromptTokens;
        var again = scheduler.Submit(Greedy(longPrompt, 24));
        var others = new[] { runningPrompt, shortPrompt[..9] }.Select(p => (Prompt: p, Job: scheduler.Submit(Greedy(p, 16)))).ToList();
        Assert.Equal(longResult.GeneratedIds, (await again.Result.WaitAsync(TimeSpan.FromSeconds(60))).GeneratedIds);
        foreach (var (prompt, job) in others)
            Assert.Equal(AloneGreedy(model, prompt, 16), (await job.Result.WaitAsync(TimeSpan.FromSeconds(60))).GeneratedIds);
        Assert.True(scheduler.Stats.CachedPromptTokens - cachedBefore >= longPrompt.Length - 1, "the repeated prompt was read again instead of taken from its slot's cache");
        Assert.Equal(0, scheduler.Stats.ActiveSlots);
    }

    private static CompletionRequest Greedy(int[] prompt, int max) => new() { PromptIds = prompt, MaxTokens = max, Sampler = SamplerOptions.Greedy };

    /// <summary>Greedy ids of the prompt run alone, one token at a time through the plain forward pass: at most
    /// <paramref name="max"/>, ending before an end-of-generation token unless <paramref name="ignoreEnd"/>.</summary>
    private static int[] AloneGreedy(Model model, int[] prompt, int max, bool ignoreEnd = false)
    {
        var transformer = model.CreateTransformer(4096);
        var sampler = new Sampler(model.Config.VocabSize, SamplerOptions.Greedy);
        var logits = ReadOnlySpan<float>.Empty;
        for (int i = 0; i < prompt.Length; i++) logits = transformer.Forward(prompt[i], i);
        var ids = new List<int>();
        while (ids.Count < max)
        {
            int next = sampler.Sample(logits);
            if (!ignoreEnd && model.Tokenizer.IsEndOfGeneration(next)) break;
            ids.Add(next);
            logits = transformer.Forward(next, prompt.Length + ids.Count - 1);
        }
        return ids.ToArray();
    }

    [Fact]
    public void RequestsThatCannotFitAreRefusedWithTheNumbers()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 1, ContextLength = 64 });
        var tooLong = Assert.Throws<CompletionRequestException>(() => scheduler.Submit(new CompletionRequest { PromptIds = new int[64] }));
        Assert.Equal("prompt", tooLong.Parameter);
        Assert.Contains("64 tokens but the context holds 64", tooLong.Message);
        // More tokens than the context has room for are not refused: the generation ends with Length where the context
        // ends (or shifts it); a keep count below -1 is.
        var badKeep = Assert.Throws<CompletionRequestException>(() => scheduler.Submit(new CompletionRequest { PromptIds = new int[10], KeepTokens = -2 }));
        Assert.Equal("n_keep", badKeep.Parameter);
        Assert.Contains("n_keep is -2; expected -1 (the whole prompt)", badKeep.Message);
        var badId = Assert.Throws<CompletionRequestException>(() => scheduler.Submit(new CompletionRequest { PromptIds = [1, 512] }));
        Assert.Contains("512", badId.Message);
    }
}
