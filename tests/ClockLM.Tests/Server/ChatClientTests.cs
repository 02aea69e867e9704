using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Sampling;
using Microsoft.Extensions.AI;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Tests.Server;

/// <summary>The in-process IChatClient: same answers as the engine's own generation loop, streamed or not.</summary>
public sealed class ChatClientTests
{
    [Fact]
    public async Task ResponsesAndStreamsEqualTheGenerationRunAlone()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using IChatClient client = new ClockLMChatClient(model, new SlotSchedulerOptions { Slots = 2 });
        ChatMessage[] messages = [new(ChatRole.System, "Tell a story."), new(ChatRole.User, "A frog")];
        var options = new ChatOptions { MaxOutputTokens = 30, Temperature = 0.9f, Seed = 42 };

        int[] ids = new ChatPrompt(model).Encode([new TemplateMessage("system", "Tell a story."), new TemplateMessage("user", "A frog")]);
        string expected = ServerHost.RunAlone(model, ids, 30, new SamplerOptions { Temperature = 0.9f, Seed = 42 });

        var response = await client.GetResponseAsync(messages, options);
        Assert.Equal(expected, response.Text);
        Assert.Equal(ids.Length, response.Usage!.InputTokenCount);
        Assert.Equal("stories260K", response.ModelId);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(messages, options)) updates.Add(u);
        Assert.Equal(expected, string.Concat(updates.Select(u => u.Text)));
        var usage = updates.SelectMany(u => u.Contents).OfType<UsageContent>().Single();
        Assert.Equal(response.Usage.OutputTokenCount, usage.Details.OutputTokenCount);
        Assert.Equal(response.FinishReason, updates[^1].FinishReason);
        Assert.Equal("clocklm", client.GetService<ChatClientMetadata>()!.ProviderName);
    }

    [Fact]
    public async Task CancellingAStreamThrowsAndFreesTheSlot()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 1 });
        var client = new ClockLMChatClient(scheduler);
        using var cancel = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync("Once", new ChatOptions { MaxOutputTokens = 400 }, cancel.Token))
                cancel.Cancel();
        });
        for (int i = 0; i < 100 && scheduler.Stats.ActiveSlots > 0; i++) await Task.Delay(10);
        Assert.Equal(0, scheduler.Stats.ActiveSlots);
    }
}
