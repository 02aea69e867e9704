#pragma warning disable CS0618 // GenerateDoneResponseStream.Context: deprecated by Ollama, still answered
using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Sampling;
using OllamaSharp;
using OllamaSharp.Models;
using OllamaSharp.Models.Chat;
using Model = ClockLM.Models.Model;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Tests.Server;

/// <summary>The Ollama API as the real OllamaSharp 5.5.2 client sees it, over a folder of two models and an alias.</summary>
public sealed class OllamaApiTests : IAsyncLifetime
{
    private ModelFolder _folder = null!;

    public async Task InitializeAsync() => _folder = await new ModelFolder().ServeAsync();
    public async Task DisposeAsync() => await _folder.DisposeAsync();

    private OllamaApiClient Client() => new(new HttpClient { BaseAddress = _folder.Address, Timeout = TimeSpan.FromSeconds(60) }, "stories260K");

    private static string Alone(string path, int[] ids, int maxTokens)
    {
        using var model = Model.Load(path);
        return ServerHost.RunAlone(model, ids, maxTokens, SamplerOptions.Greedy);
    }

    private static int[] ChatIds(string path, params TemplateMessage[] messages)
    {
        using var model = Model.Load(path);
        return new ChatPrompt(model).Encode(messages);
    }

    [Fact]
    public async Task ListAndShowDescribeTheFolder()
    {
        var ollama = Client();
        Assert.True(await ollama.IsRunningAsync());
        var models = (await ollama.ListLocalModelsAsync()).ToList();
        Assert.Equal(["clocklm-kjv", "kjv", "stories260K"], models.Select(m => m.Name));
        var kjv = models.Single(m => m.Name == "kjv");
        Assert.Equal(new FileInfo(_folder.Kjv).Length, kjv.Size);
        Assert.Equal("llama", kjv.Details.Family);
        Assert.Equal("6.6M", kjv.Details.ParameterSize);
        Assert.Equal("F16", kjv.Details.QuantizationLevel);
        Assert.Equal("gguf", kjv.Details.Format);
        Assert.Equal(models.Single(m => m.Name == "clocklm-kjv").Digest, kjv.Digest); // an alias is the same file

        var show = await ollama.ShowModelAsync("kjv");
        Assert.Equal("llama", show.Info.Architecture);
        Assert.Equal(6_557_952, show.Info.ParameterCount);
        Assert.Equal("512", show.Info.ExtraInfo!["llama.context_length"]?.ToString());
        Assert.Equal("8", show.Info.ExtraInfo["llama.block_count"]?.ToString());
        Assert.Contains("<|im_start|>", show.Template); // no template in the file: ChatML
        Assert.Contains("completion", show.Capabilities!.Select(c => c.ToString()!.ToLowerInvariant()));

        string version = await ollama.GetVersionAsync();
        Assert.Equal("0.1.0", version);
    }

    [Fact]
    public async Task ChatStreamsTheGenerationRunAloneWithOllamasCounts()
    {
        var ollama = Client();
        var request = new ChatRequest
        {
            Model = "stories260K",
            Messages = [new Message(OllamaSharp.Models.Chat.ChatRole.System, "Tell a story."), new Message(OllamaSharp.Models.Chat.ChatRole.User, "A frog")],
            Options = new RequestOptions { Temperature = 0, NumPredict = 24 },
            Stream = true,
        };
        var pieces = new List<ChatResponseStream?>();
        await foreach (var piece in ollama.ChatAsync(request)) pieces.Add(piece);

        int[] ids = ChatIds(_folder.Stories, new TemplateMessage("system", "Tell a story."), new TemplateMessage("user", "A frog"));
        string expected = Alone(_folder.Stories, ids, 24);
        Assert.True(pieces.Count > 2, "the answer came in one piece, not streamed");
        Assert.Equal(expected, string.Concat(pieces.Select(p => p!.Message.Content)));
        var done = Assert.IsType<ChatDoneResponseStream>(pieces[^1]);
        Assert.True(done.Done);
        Assert.Equal(ids.Length, done.PromptEvalCount);
        Assert.Equal(24, done.EvalCount);
        Assert.Equal("length", done.DoneReason);
        Assert.True(done.EvalDuration > 0 && done.TotalDuration >= done.EvalDuration + done.PromptEvalDuration, "durations are nanoseconds of the same run");
        Assert.True(done.TotalDuration < 60_000_000_000L, "durations are nanoseconds, not ticks of another unit");
    }

    [Fact]
    public async Task GenerateStreamsAndAnswersWholeWithTheContext()
    {
        var ollama = Client();
        var request = new GenerateRequest { Model = "kjv", Prompt = "In the beginning", Raw = true, Options = new RequestOptions { Temperature = 0, NumPredict = 12 } };
        var text = new StringBuilder();
        GenerateDoneResponseStream? done = null;
        await foreach (var piece in ollama.GenerateAsync(request))
        {
            text.Append(piece!.Response);
            if (piece is GenerateDoneResponseStream d) done = d;
        }
        using var model = Model.Load(_folder.Kjv);
        int[] ids = model.Tokenizer.Encode("In the beginning", addSpecial: true).ToArray();
        string expected = ServerHost.RunAlone(model, ids, 12, SamplerOptions.Greedy);
        Assert.Equal(expected, text.ToString());
        Assert.NotNull(done);
        Assert.Equal(ids.Length, done!.PromptEvalCount);
        Assert.Equal(ids, done.Context!.Take(ids.Length).Select(l => (int)l));
        Assert.Equal(ids.Length + 12, done.Context!.Length);

        // stream: false answers one object holding the same text.
        using var whole = await _folder.Http.PostAsync("/api/generate", Json(new { model = "kjv", prompt = "In the beginning", raw = true, stream = false, options = new { temperature = 0, num_predict = 12 } }));
        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        using var answer = JsonDocument.Parse(await whole.Content.ReadAsStringAsync());
        Assert.Equal(expected, answer.RootElement.GetProperty("response").GetString());
        Assert.True(answer.RootElement.GetProperty("done").GetBoolean());
        Assert.Equal(12, answer.RootElement.GetProperty("eval_count").GetInt32());
    }

    [Fact]
    public async Task EmbedEqualsTheInProcessEmbeddingGenerator()
    {
        var ollama = Client();
        var response = await ollama.EmbedAsync(new EmbedRequest { Model = "stories260K", Input = ["Lily and Tom", "A big red ball"] });
        using var model = Model.Load(_folder.Stories);
        using var generator = new ClockLMEmbeddingGenerator(model);
        var expected = await generator.GenerateAsync(["Lily and Tom", "A big red ball"]);
        Assert.Equal(2, response.Embeddings.Count);
        for (int i = 0; i < 2; i++) Assert.Equal(expected[i].Vector.ToArray(), response.Embeddings[i]);
        Assert.Equal(expected.Usage!.InputTokenCount, response.PromptEvalCount);
    }

    [Fact]
    public async Task ModelsLoadOnUseAndUnloadWithKeepAliveZero()
    {
        var ollama = Client();
        Assert.Empty(await ollama.ListRunningModelsAsync());
        await foreach (var _ in ollama.GenerateAsync(new GenerateRequest { Model = "kjv", Prompt = "And", Options = new RequestOptions { NumPredict = 2 } })) { }
        var running = (await ollama.ListRunningModelsAsync()).ToList();
        Assert.Equal("clocklm-kjv", Assert.Single(running).Name); // the alias runs its file's model
        Assert.Equal(256, running[0].ContextLength);
        Assert.True(running[0].ExpiresAt > DateTime.UtcNow.AddMinutes(4), $"expires {running[0].ExpiresAt:o}: the default keep-alive is 5 minutes");

        await ollama.RequestModelUnloadAsync("clocklm-kjv");
        Assert.Empty(await ollama.ListRunningModelsAsync());

        // keep_alive "1s": loaded for the request, then unloaded by the expiry timer.
        using var shortLived = await _folder.Http.PostAsync("/api/generate", Json(new { model = "stories260K", prompt = "Once", keep_alive = "1s", stream = false, options = new { num_predict = 2 } }));
        Assert.Equal(HttpStatusCode.OK, shortLived.StatusCode);
        for (int i = 0; i < 100 && (await ollama.ListRunningModelsAsync()).Any(); i++) await Task.Delay(100);
        Assert.Empty(await ollama.ListRunningModelsAsync());
    }

    [Fact]
    public async Task FormatHoldsTheAnswerToTheSchema()
    {
        // Ollama's structured output: format is a JSON schema; the answer must parse and follow it.
        var schema = new
        {
            type = "object",
            properties = new { answer = new { @enum = new[] { "yes", "no" } }, count = new { type = "integer" } },
            required = new[] { "answer", "count" },
            additionalProperties = false,
        };
        using var response = await _folder.Http.PostAsync("/api/generate", Json(new
        {
            model = "kjv", prompt = "Is the LORD good?", stream = false, format = schema, options = new { temperature = 0, num_predict = 400 },
        }));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        using var answer = JsonDocument.Parse(body);
        Assert.Equal("stop", answer.RootElement.GetProperty("done_reason").GetString());
        using var json = JsonDocument.Parse(answer.RootElement.GetProperty("response").GetString()!);
        Assert.Contains(json.RootElement.GetProperty("answer").GetString(), new[] { "yes", "no" });
        Assert.Equal(JsonValueKind.Number, json.RootElement.GetProperty("count").ValueKind);
        Assert.Equal(2, json.RootElement.EnumerateObject().Count());
    }

    [Fact]
    public async Task ErrorsAreOllamasShapeAndNameTheField()
    {
        async Task<(HttpStatusCode Status, string Error)> Post(string path, object body)
        {
            using var response = await _folder.Http.PostAsync(path, Json(body));
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return (response.StatusCode, json.RootElement.GetProperty("error").GetString()!);
        }
        var unknown = await Post("/api/chat", new { model = "llama3", messages = new[] { new { role = "user", content = "hi" } } });
        Assert.Equal(HttpStatusCode.NotFound, unknown.Status);
        Assert.Equal("model 'llama3' not found; available: clocklm-kjv, kjv, stories260K", unknown.Error);

        var format = await Post("/api/chat", new { model = "kjv", format = "yaml", messages = new[] { new { role = "user", content = "hi" } } });
        Assert.Equal(HttpStatusCode.BadRequest, format.Status);
        Assert.Equal("format is 'yaml'; expected \"json\" or a JSON schema object", format.Error);

        var option = await Post("/api/generate", new { model = "kjv", prompt = "hi", options = new { mirostat = 2 } });
        Assert.Equal(HttpStatusCode.BadRequest, option.Status);
        Assert.StartsWith("options.mirostat is not supported", option.Error);

        var range = await Post("/api/generate", new { model = "kjv", prompt = "hi", options = new { top_p = 3 } });
        Assert.Equal(HttpStatusCode.BadRequest, range.Status);
        Assert.StartsWith("options.top_p is 3", range.Error);

        var keepAlive = await Post("/api/generate", new { model = "kjv", prompt = "hi", keep_alive = "soon" });
        Assert.Equal(HttpStatusCode.BadRequest, keepAlive.Status);
        Assert.Contains("keep_alive is 'soon'", keepAlive.Error);

        var context = await Post("/api/generate", new { model = "kjv", prompt = "hi", options = new { num_ctx = 4096 } });
        Assert.Equal(HttpStatusCode.BadRequest, context.Status);
        Assert.Contains("num_ctx is 4096", context.Error);

        // The OpenAI side of the same server lists the folder and answers to the alias.
        using var models = JsonDocument.Parse(await _folder.Http.GetStringAsync("/v1/models"));
        Assert.Equal(["clocklm-kjv", "kjv", "stories260K"], models.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        using var chat = await _folder.Http.PostAsync("/v1/chat/completions", Json(new { model = "kjv", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 3 }));
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        using var missing = await _folder.Http.PostAsync("/v1/chat/completions", Json(new { model = "gpt-4o", messages = new[] { new { role = "user", content = "hi" } } }));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("available: clocklm-kjv, kjv, stories260K", await missing.Content.ReadAsStringAsync());
    }

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
}
