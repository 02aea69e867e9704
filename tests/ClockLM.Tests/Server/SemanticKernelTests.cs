using ClockLM.Chat;
using ClockLM.Models;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;

namespace ClockLM.Tests.Server;

/// <summary>Semantic Kernel drives ClockLM's IChatClient through its own chat-completion service.</summary>
public sealed class SemanticKernelTests
{
    [Fact]
    public async Task TheChatCompletionServiceAnswersAsTheChatClientDoes()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var client = new ClockLMChatClient(model, new SlotSchedulerOptions { Slots = 2 });
        var direct = await client.GetResponseAsync(
            [new ChatMessage(ChatRole.System, "Tell a story."), new ChatMessage(ChatRole.User, "A frog")],
            new ChatOptions { Temperature = 0.7f, MaxOutputTokens = 24, Seed = 7 });

        var builder = Kernel.CreateBuilder();
        builder.Services.AddSingleton<IChatCompletionService>(client.AsChatCompletionService());
        var kernel = builder.Build();
        var service = kernel.GetRequiredService<IChatCompletionService>();
        var history = new ChatHistory("Tell a story.");
        history.AddUserMessage("A frog");
        var settings = new OpenAIPromptExecutionSettings { Temperature = 0.7, MaxTokens = 24, Seed = 7 };

        var answer = await service.GetChatMessageContentAsync(history, settings, kernel);
        Assert.Equal(direct.Text, answer.Content);
        Assert.Equal(AuthorRole.Assistant, answer.Role);

        var streamed = new System.Text.StringBuilder();
        await foreach (var part in service.GetStreamingChatMessageContentsAsync(history, settings, kernel))
            streamed.Append(part.Content);
        Assert.Equal(direct.Text, streamed.ToString());

        // A prompt function: the kernel renders the template and sends it as the user's message.
        var function = kernel.CreateFunctionFromPrompt("A {{$animal}}", settings);
        var story = await kernel.InvokeAsync(function, new KernelArguments(settings) { ["animal"] = "frog" });
        var alone = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "A frog")],
            new ChatOptions { Temperature = 0.7f, MaxOutputTokens = 24, Seed = 7 });
        Assert.Equal(alone.Text, story.GetValue<string>());
    }
}
