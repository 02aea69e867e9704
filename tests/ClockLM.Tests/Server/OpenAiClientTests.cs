#pragma warning disable OPENAI001 // ChatCompletionOptions.Seed is marked experimental
using System.ClientModel;
using ClockLM.Chat;
using ClockLM.Sampling;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Tests.Server;

/// <summary>The server as the official OpenAI .NET client and Microsoft.Extensions.AI's OpenAI adapter see it.</summary>
public sealed class OpenAiClientTests : IAsyncLifetime
{
    private ServerHost _host = null!;

    public async Task InitializeAsync() => _host = await ServerHost.StartAsync();
    public async Task DisposeAsync() => await _host.DisposeAsync();

    private ChatClient Client(string model = "stories260K") =>
        new(model, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = _host.V1, NetworkTimeout = TimeSpan.FromSeconds(60) });

    private string Alone(string user, int maxTokens, float temperature, ulong seed)
    {
        int[] ids = new ChatPrompt(_host.Model).Encode([new TemplateMessage("user", user)]);
        return ServerHost.RunAlone(_host.Model, ids, maxTokens, new SamplerOptions { Temperature = temperature, Seed = seed });
    }

    [Fact]
    public async Task NonStreamingAnswerEqualsTheGenerationRunAloneAndCountsUsage()
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 40, Temperature = 0.8f, Seed = 7 };
        ChatCompletion answer = await Client().CompleteChatAsync([new UserChatMessage("Once upon a time")], options);

        string expected = Alone("Once upon a time", 40, 0.8f, 7);
        Assert.Equal(expected, answer.Content[0].Text);
        int promptTokens = new ChatPrompt(_host.Model).Encode([new TemplateMessage("user", "Once upon a time")]).Length;
        Assert.Equal(promptTokens, answer.Usage.InputTokenCount);
        int generated = _host.Model.Tokenizer.Encode(expected, addSpecial: false).Count;
        Assert.True(answer.Usage.OutputTokenCount is > 0 and <= 40);
        Assert.Equal(answer.Usage.OutputTokenCount == 40 ? OpenAI.Chat.ChatFinishReason.Length : OpenAI.Chat.ChatFinishReason.Stop, answer.FinishReason);
        Assert.True(generated > 0);
        Assert.Equal("stories260K", answer.Model);
    }

    [Fact]
    public async Task DifferentSeedsGiveDifferentAnswersAndTheSameSeedTheSame()
    {
        async Task<string> Ask(long seed) => (await Client().CompleteChatAsync([new UserChatMessage("Tim had a dog")],
            new ChatCompletionOptions { MaxOutputTokenCount = 30, Temperature = 1.0f, Seed = seed })).Value.Content[0].Text;
        string a = await Ask(1), b = await Ask(2), a2 = await Ask(1);
        Assert.Equal(a, a2);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public async Task StreamingConcatenatesToTheSameTextAndEndsWithUsage()
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 40, Temperature = 0.8f, Seed = 11 };
        var text = new System.Text.StringBuilder();
        OpenAI.Chat.ChatTokenUsage? usage = null;
        OpenAI.Chat.ChatFinishReason? finish = null;
        int chunks = 0;
        await foreach (var update in Client().CompleteChatStreamingAsync([new UserChatMessage("Once upon a time")], options))
        {
            foreach (var part in update.ContentUpdate) { text.Append(part.Text); chunks++; }
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }
        Assert.Equal(Alone("Once upon a time", 40, 0.8f, 11), text.ToString());
        Assert.True(chunks > 5, $"only {chunks} content chunks: the answer was not streamed");
        Assert.NotNull(usage);
        Assert.Equal(new ChatPrompt(_host.Model).Encode([new TemplateMessage("user", "Once upon a time")]).Length, usage!.InputTokenCount);
        Assert.NotNull(finish);
    }

    [Fact]
    public async Task StopSequenceCutsTheAnswerBeforeItsFirstOccurrence()
    {
        string full = Alone("Once upon a time", 60, 0, 1);
        // A stop text taken from the middle of the greedy answer.
        string stop = full.Substring(full.Length / 2, 3);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 60, Temperature = 0 };
        options.StopSequences.Add(stop);
        ChatCompletion answer = await Client().CompleteChatAsync([new UserChatMessage("Once upon a time")], options);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], answer.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, answer.FinishReason);
    }

    [Fact]
    public async Task ErrorsComeBackAsStatusAndMessage()
    {
        var tooHot = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client().CompleteChatAsync([new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 5 }));
        Assert.Equal(400, tooHot.Status);
        Assert.Contains("temperature", tooHot.Message);
        Assert.Contains("0 to 2", tooHot.Message);

        var unknown = await Assert.ThrowsAsync<ClientResultException>(() => Client("gpt-4o").CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(404, unknown.Status);
        Assert.Contains("gpt-4o", unknown.Message);
    }

    [Fact]
    public async Task MicrosoftExtensionsAiAdapterGetsTheSameAnswersStreamedOrNot()
    {
        IChatClient client = Client().AsIChatClient();
        var options = new ChatOptions { MaxOutputTokens = 30, Temperature = 0.8f, Seed = 5 };
        var response = await client.GetResponseAsync("Lily saw a cat", options);
        string expected = Alone("Lily saw a cat", 30, 0.8f, 5);
        Assert.Equal(expected, response.Text);
        Assert.NotNull(response.Usage);
        Assert.True(response.Usage!.OutputTokenCount is > 0 and <= 30);

        var streamed = new System.Text.StringBuilder();
        await foreach (var update in client.GetStreamingResponseAsync("Lily saw a cat", options))
            streamed.Append(update.Text);
        Assert.Equal(expected, streamed.ToString());
    }
}
