using System.ComponentModel;
using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;
using ClockLM.Tests.Sampling;
using ClockLM.Tests.Training;
using Microsoft.Extensions.AI;

namespace ClockLM.Tests.Server;

/// <summary>Structured output and function calling with ClockLM's built-in model: the JSON schema held at temperature 1
/// over 50 seeds, Microsoft.Extensions.AI's typed responses and a full function-invocation round trip.</summary>
public sealed class StructuredChatClientTests
{
    // The built-in model was trained with 128 positions; a longer cache lets it write whole JSON answers.
    private static readonly SlotSchedulerOptions LongContext = new() { Slots = 2, ContextLength = 1536 };

    /// <summary>50 seeds at temperature 1 (no truncation): every output of the nested schema is complete and valid.</summary>
    [Fact]
    public void BuiltInModelFollowsANestedSchemaForFiftySeeds()
    {
        using var model = Model.Load(LlamaCppTrainedModelTests.BuiltInModel);
        var grammar = Grammar.Parse(JsonSchemaGrammar.ToGbnf(JsonSchemaGrammarTests.NestedSchema));
        var generator = new Generator(model, contextLength: 1200);
        int[] prompt = model.Tokenizer.Encode("And God said, Let there be light", addSpecial: true).ToArray();
        var outputs = new HashSet<string>();
        for (ulong seed = 1; seed <= 50; seed++)
        {
            var result = generator.Generate(prompt, new GenerationOptions
            {
                MaxNewTokens = 1000,
                Sampler = new SamplerOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = seed },
                Grammar = grammar,
            });
            Assert.True(result.StopReason == StopReason.EndOfSequence, $"seed {seed}: stopped by {result.StopReason}: {result.Text}");
            JsonSchemaGrammarTests.AssertValid(JsonSchemaGrammarTests.NestedSchema, result.Text, $"seed {seed}");
            outputs.Add(result.Text);
        }
        Assert.True(outputs.Count > 40, $"only {outputs.Count} distinct outputs from 50 seeds");
    }

    // Numbers and booleans only: the built-in model, once inside a JSON string, writes scripture until it runs out of tokens.
    public sealed record Verse(
        [property: Description("chapter number")] int Chapter,
        int Number,
        bool Holy);

    [Fact]
    public async Task GetResponseAsyncOfTReturnsAParsedObject()
    {
        using var model = Model.Load(LlamaCppTrainedModelTests.BuiltInModel);
        using IChatClient client = new ClockLMChatClient(model, LongContext);
        for (int seed = 1; seed <= 3; seed++)
        {
            var response = await client.GetResponseAsync<Verse>("Give a verse", new ChatOptions { Temperature = 1, Seed = seed, MaxOutputTokens = 300 });
            Assert.True(response.TryGetResult(out var verse), $"seed {seed}: not a Verse: {response.Text}");
            Assert.NotNull(verse);
        }
        // A schema keyword ClockLM cannot constrain is refused, not ignored.
        var options = new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(System.Text.Json.JsonDocument.Parse("""{"type": "array", "uniqueItems": true}""").RootElement) };
        var e = await Assert.ThrowsAsync<JsonSchemaException>(() => client.GetResponseAsync("x", options));
        Assert.Equal("uniqueItems", e.Keyword);
    }

    [Fact]
    public async Task FunctionInvocationRoundTripCallsTheFunctionAndAnswers()
    {
        using var model = Model.Load(LlamaCppTrainedModelTests.BuiltInModel);
        var calls = new List<(int A, int B)>();
        var add = AIFunctionFactory.Create(([Description("first number")] int a, [Description("second number")] int b) =>
        {
            calls.Add((a, b));
            return a + b;
        }, "add", "Adds two numbers");
        using IChatClient client = new ChatClientBuilder(new ClockLMChatClient(model, LongContext)).UseFunctionInvocation().Build();

        var response = await client.GetResponseAsync("What is two and three?",
            new ChatOptions { Tools = [add], ToolMode = ChatToolMode.RequireAny, AllowMultipleToolCalls = false, Temperature = 1, Seed = 4, MaxOutputTokens = 150 });

        var (a, b) = Assert.Single(calls);
        var call = response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().First();
        Assert.Equal("add", call.Name);
        var result = response.Messages.SelectMany(m => m.Contents).OfType<FunctionResultContent>().Single();
        Assert.Equal(call.CallId, result.CallId);
        Assert.Equal((a + b).ToString(), result.Result?.ToString());
        Assert.Equal(ChatRole.Assistant, response.Messages[^1].Role);
        Assert.Empty(response.Messages[^1].Contents.OfType<FunctionCallContent>());
        Assert.NotEqual(ChatFinishReason.ToolCalls, response.FinishReason);
    }

    [Fact]
    public async Task StreamedCallsArriveAsFunctionCallContent()
    {
        using var model = Model.Load(LlamaCppTrainedModelTests.BuiltInModel);
        using IChatClient client = new ClockLMChatClient(model, LongContext);
        var add = AIFunctionFactory.Create((int a, int b) => a + b, "add");
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync("Add", new ChatOptions { Tools = [add], ToolMode = ChatToolMode.RequireSpecific("add"), AllowMultipleToolCalls = false, Seed = 2, MaxOutputTokens = 150 }))
            updates.Add(u);
        var calls = updates.SelectMany(u => u.Contents).OfType<FunctionCallContent>().ToList();
        Assert.NotEmpty(calls);
        Assert.All(calls, call =>
        {
            Assert.Equal("add", call.Name);
            Assert.True(call.Arguments!.ContainsKey("a") && call.Arguments.ContainsKey("b"));
        });
        Assert.Equal(ChatFinishReason.ToolCalls, updates[^1].FinishReason);
    }
}
