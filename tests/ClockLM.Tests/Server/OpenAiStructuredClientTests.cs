using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ClockLM.Tests.Sampling;
using OpenAI;
using OpenAI.Chat;

namespace ClockLM.Tests.Server;

/// <summary>The official OpenAI .NET client's JSON-schema response format and function tools against a real
/// `clocklm serve` process.</summary>
public sealed class OpenAiStructuredClientTests : IAsyncLifetime
{
    private Process _serve = null!;
    private Uri _v1 = null!;

    public async Task InitializeAsync()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { Path.Combine(AppContext.BaseDirectory, "clocklm.dll"), "serve", "--model", SharedData.Stories260K,
            "--tokenizer", SharedData.Tok512, "--host", "127.0.0.1", "--port", port.ToString(), "--parallel", "2", "--ctx", "1536", "--threads", "1" })
            info.ArgumentList.Add(a);
        _serve = Process.Start(info)!;
        _serve.OutputDataReceived += (_, _) => { };
        _serve.ErrorDataReceived += (_, _) => { };
        _serve.BeginOutputReadLine();
        _serve.BeginErrorReadLine();
        _v1 = new Uri($"http://127.0.0.1:{port}/v1");
        using var http = new HttpClient();
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if ((await http.GetAsync($"http://127.0.0.1:{port}/health")).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            if (_serve.HasExited) throw new InvalidOperationException($"clocklm serve exited with code {_serve.ExitCode}");
            if (deadline.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException("clocklm serve did not answer /health within 60 s");
            await Task.Delay(100);
        }
    }

    public Task DisposeAsync()
    {
        if (!_serve.HasExited) _serve.Kill(entireProcessTree: true);
        _serve.WaitForExit(10_000);
        _serve.Dispose();
        return Task.CompletedTask;
    }

    private ChatClient Client() =>
        new("stories260K", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = _v1, NetworkTimeout = TimeSpan.FromSeconds(60) });

    [Fact]
    public async Task JsonSchemaFormatGivesValidJson()
    {
#pragma warning disable OPENAI001 // Seed is marked experimental
        var options = new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("item", BinaryData.FromString(StructuredOutputServerTests.ItemSchema), jsonSchemaIsStrict: true),
            MaxOutputTokenCount = 200,
            Temperature = 1,
            Seed = 21,
        };
#pragma warning restore OPENAI001
        ChatCompletion answer = await Client().CompleteChatAsync([new UserChatMessage("Describe an item")], options);
        JsonSchemaGrammarTests.AssertValid(StructuredOutputServerTests.ItemSchema, answer.Content[0].Text, "OpenAI client json_schema");
        Assert.Equal(ChatFinishReason.Stop, answer.FinishReason);
    }

    [Fact]
    public async Task FunctionToolIsCalledWithValidArgumentsAndItsResultIsAccepted()
    {
        const string parameters = """{"type": "object", "properties": {"city": {"type": "string", "maxLength": 6}, "days": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["city", "days"], "additionalProperties": false}""";
        var tool = ChatTool.CreateFunctionTool("weather", "Weather of a city", BinaryData.FromString(parameters), functionSchemaIsStrict: true);
        var options = new ChatCompletionOptions { Tools = { tool }, ToolChoice = ChatToolChoice.CreateRequiredChoice(), MaxOutputTokenCount = 200, Temperature = 1 };
        List<ChatMessage> conversation = [new UserChatMessage("Weather in Oslo?")];
        ChatCompletion answer = await Client().CompleteChatAsync(conversation, options);
        Assert.Equal(ChatFinishReason.ToolCalls, answer.FinishReason);
        var call = Assert.Single(answer.ToolCalls);
        Assert.Equal("weather", call.FunctionName);
        JsonSchemaGrammarTests.AssertValid(parameters, call.FunctionArguments.ToString(), "OpenAI client tool arguments");

        // Streamed, the client reassembles the same kind of call from delta.tool_calls.
        string? name = null, id = null;
        var arguments = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Client().CompleteChatStreamingAsync(conversation, options))
        {
            foreach (var part in update.ToolCallUpdates)
            {
                name ??= part.FunctionName;
                id ??= part.ToolCallId;
                if (part.FunctionArgumentsUpdate is { } fragment) arguments.Append(fragment.ToString());
            }
            finish ??= update.FinishReason;
        }
        Assert.Equal("weather", name);
        Assert.StartsWith("call_", id);
        JsonSchemaGrammarTests.AssertValid(parameters, arguments.ToString(), "OpenAI client streamed tool arguments");
        Assert.Equal(ChatFinishReason.ToolCalls, finish);

        // The call and its result go back; the model answers in text.
        conversation.Add(new AssistantChatMessage(answer));
        conversation.Add(new ToolChatMessage(call.Id, "{\"temperature\": 18}"));
        ChatCompletion followUp = await Client().CompleteChatAsync(conversation, new ChatCompletionOptions { Tools = { tool }, MaxOutputTokenCount = 10 });
        Assert.NotEqual(ChatFinishReason.ContentFilter, followUp.FinishReason);
        Assert.True(followUp.Usage.InputTokenCount > answer.Usage.InputTokenCount);
    }
}
