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
