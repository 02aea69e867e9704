using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Tests.Sampling;

namespace ClockLM.Tests.Server;

/// <summary>Structured output and tools through a real HttpClient: every unsupported field is a 400 naming it, every
/// constrained answer is valid, streamed answers equal whole ones.</summary>
public sealed class StructuredOutputServerTests : IAsyncLifetime
{
    private ServerHost _host = null!;

    // A longer context than stories260K's 512: its 512-token vocabulary spells the tools' description in many tokens.
    public async Task InitializeAsync() => _host = await ServerHost.StartAsync(new ClockLM.Chat.SlotSchedulerOptions { Slots = 2, ContextLength = 1536 });
    public async Task DisposeAsync() => await _host.DisposeAsync();

    internal const string ItemSchema = """
        {"type": "object",
         "properties": {"name": {"type": "string", "maxLength": 6}, "size": {"enum": ["S", "M", "L"]}, "qty": {"type": "integer", "minimum": 1, "maximum": 9}},
         "required": ["name", "size", "qty"], "additionalProperties": false}
        """;

    // Short, so that the tools' description fits stories260K's 512-token context beside the answer.
    internal const string WeatherTools = """
        [{"type": "function", "function": {"name": "weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 6}, "days": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["city", "days"], "additionalProperties": false}}},
         {"type": "function", "function": {"name": "time"}}]
        """;

    private static JsonObject Chat(string extra)
    {
        var body = JsonNode.Parse($$"""{"messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 200, "temperature": 1, "seed": 5{{extra}}}""")!.AsObject();
        return body;
    }

    private async Task<(HttpStatusCode Status, JsonNode? Body)> PostAsync(string path, JsonNode body)
    {
        using var response = await _host.Http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    /// <summary>The data lines of an event stream, parsed.</summary>
    private async Task<List<JsonNode>> StreamAsync(string path, JsonNode body)
    {
        using var response = await _host.Http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        string text = await response.Content.ReadAsStringAsync();
        var chunks = new List<JsonNode>();
        foreach (string line in text.Split('\n'))
            if (line.StartsWith("data: ", StringComparison.Ordinal) && line != "data: [DONE]") chunks.Add(JsonNode.Parse(line[6..])!);
        Assert.EndsWith("data: [DONE]\n\n", text);
        return chunks;
    }

    [Theory]
    [InlineData("/v1/chat/completions", ", \"logit_bias\": {\"15\": 2}", "logit_bias")]
    [InlineData("/v1/chat/completions", ", \"n\": 2", "n")]
    [InlineData("/v1/chat/completions", ", \"audio\": {\"voice\": \"alloy\", \"format\": \"wav\"}", "audio")]
    [InlineData("/v1/chat/completions", ", \"frequency_penalty\": 0.5", "frequency_penalty")]
    [InlineData("/v1/chat/completions", ", \"presence_penalty\": 1", "presence_penalty")]
    [InlineData("/v1/chat/completions", ", \"modalities\": [\"text\", \"audio\"]", "modalities")]
    [InlineData("/v1/chat/completions", ", \"reasoning_effort\": \"high\"", "reasoning_effort")]
    [InlineData("/v1/chat/completions", ", \"stream_options\": {\"include_usage\": true, \"chunk\": 1}", "stream_options.chunk")]
    [InlineData("/v1/chat/completions", ", \"clocklm\": {\"verbose\": true}", "clocklm.verbose")]
    [InlineData("/v1/chat/completions", ", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"schema\": {\"type\": \"string\", \"format\": \"email\"}}}", "response_format.json_schema.schema")]
    [InlineData("/v1/chat/completions", ", \"response_format\": {\"type\": \"xml\"}", "response_format.type")]
    [InlineData("/v1/chat/completions", ", \"grammar\": \"root ::= foo\"", "grammar")]
    [InlineData("/v1/chat/completions", ", \"grammar\": \"root ::= \\\"a\\\"\", \"json_schema\": {\"type\": \"integer\"}", "json_schema")]
    [InlineData("/v1/chat/completions", ", \"tool_choice\": \"required\"", "tool_choice")]
    [InlineData("/v1/chat/completions", ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"g\"}}", "tool_choice.function.name")]
    [InlineData("/v1/chat/completions", ", \"tools\": [{\"type\": \"retrieval\"}]", "tools[0].type")]
    [InlineData("/v1/chat/completions", ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\", \"not\": {}}}}]", "tools[0].function.parameters")]
    [InlineData("/v1/completions", ", \"best_of\": 3", "best_of")]
    [InlineData("/v1/completions", ", \"echo\": true", "echo")]
    [InlineData("/v1/completions", ", \"suffix\": \"The end.\"", "suffix")]
    [InlineData("/v1/completions", ", \"logit_bias\": {\"1\": -100}", "logit_bias")]
    [InlineData("/v1/completions", ", \"tools\": []", "tools")]
    [InlineData("/v1/completions", ", \"foo\": 1", "foo")]
    [InlineData("/v1/embeddings", ", \"foo\": 1", "foo")]
    public async Task UnsupportedFieldsAreA400NamingThem(string path, string extra, string param)
    {
        string core = path switch
        {
            "/v1/chat/completions" => "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 4",
            "/v1/completions" => "\"prompt\": \"Hi\", \"max_tokens\": 4",
            _ => "\"input\": \"Hi\"",
        };
        var (status, body) = await PostAsync(path, JsonNode.Parse("{" + core + extra + "}")!);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, (string?)body!["error"]!["param"]);
        Assert.Contains(param.Split('.', '[')[0], (string?)body["error"]!["message"]);
    }

    [Theory]
    [InlineData("{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"data:,\"}}]}", "messages[0].content")]
    [InlineData("{\"role\": \"user\", \"content\": \"Hi\", \"audio\": {\"id\": \"a\"}}", "messages[0].audio")]
    [InlineData("{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c\", \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{oops\"}}]}", "messages[0].tool_calls[0].function.arguments")]
    public async Task UnsupportedMessagePartsAreA400NamingThem(string message, string param)
    {
        var (status, body) = await PostAsync("/v1/chat/completions", JsonNode.Parse($"{{\"messages\": [{message}], \"max_tokens\": 4}}")!);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, (string?)body!["error"]!["param"]);
    }

    [Fact]
    public async Task NeutralValuesOfUnsupportedFieldsAreAccepted()
    {
        var (status, _) = await PostAsync("/v1/chat/completions", Chat(", \"n\": 1, \"logit_bias\": {}, \"frequency_penalty\": 0, \"presence_penalty\": 0, \"store\": false, \"user\": \"u1\", \"modalities\": [\"text\"], \"max_tokens\": 4"));
        Assert.Equal(HttpStatusCode.OK, status);
        (status, _) = await PostAsync("/v1/completions", JsonNode.Parse("{\"prompt\": \"Hi\", \"max_tokens\": 4, \"best_of\": 1, \"echo\": false, \"suffix\": \"\", \"n\": 1}")!);
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task JsonSchemaResponseIsValidAndStreamsTheSameText()
    {
        string extra = $", \"response_format\": {{\"type\": \"json_schema\", \"json_schema\": {{\"name\": \"item\", \"strict\": true, \"schema\": {ItemSchema}}}}}";
        var (status, body) = await PostAsync("/v1/chat/completions", Chat(extra));
        Assert.Equal(HttpStatusCode.OK, status);
        string content = (string)body!["choices"]![0]!["message"]!["content"]!;
        JsonSchemaGrammarTests.AssertValid(ItemSchema, content, "chat response_format");
        Assert.Equal("stop", (string?)body["choices"]![0]!["finish_reason"]);

        var stream = Chat(extra);
        stream["stream"] = true;
        var chunks = await StreamAsync("/v1/chat/completions", stream);
        string streamed = string.Concat(chunks.Select(c => (string?)c["choices"]?.AsArray().FirstOrDefault()?["delta"]?["content"]));
        Assert.Equal(content, streamed);
        Assert.True(chunks.Count(c => c["choices"]?.AsArray().FirstOrDefault()?["delta"]?["content"] is not null) > 3, "the constrained answer was not streamed");
    }

    [Fact]
    public async Task JsonObjectAndLlamaCppFieldsConstrainChatAndCompletions()
    {
        var (_, body) = await PostAsync("/v1/chat/completions", Chat(", \"response_format\": {\"type\": \"json_object\"}, \"max_tokens\": 400"));
        var content = (string)body!["choices"]![0]!["message"]!["content"]!;
        if ((string?)body["choices"]![0]!["finish_reason"] == "stop") Assert.IsType<JsonObject>(JsonNode.Parse(content));
        else Assert.StartsWith("{", content);

        (_, body) = await PostAsync("/v1/chat/completions", Chat($", \"json_schema\": {ItemSchema}"));
        JsonSchemaGrammarTests.AssertValid(ItemSchema, (string)body!["choices"]![0]!["message"]!["content"]!, "chat json_schema");

        for (int seed = 1; seed <= 5; seed++)
        {
            (_, body) = await PostAsync("/v1/completions", JsonNode.Parse($$"""{"prompt": "The dog", "max_tokens": 20, "temperature": 1, "seed": {{seed}}, "grammar": "root ::= (\"yes\" | \"no\" | \"maybe\") \"!\" [ ]?"}""")!);
            Assert.Matches("^(yes|no|maybe)! ?$", (string)body!["choices"]![0]!["text"]!);
        }
        (_, body) = await PostAsync("/v1/completions", JsonNode.Parse($$"""{"prompt": "The dog", "max_tokens": 300, "temperature": 1, "json_schema": {{ItemSchema}}}""")!);
        JsonSchemaGrammarTests.AssertValid(ItemSchema, (string)body!["choices"]![0]!["text"]!, "completions json_schema");
    }

    [Fact]
    public async Task RequiredToolChoiceGivesValidCallsAndTheToolCallsFinish()
    {
        var tools = JsonNode.Parse(WeatherTools)!.AsArray();
        var schemas = tools.ToDictionary(t => (string)t!["function"]!["name"]!, t => t!["function"]!["parameters"]?.ToJsonString() ?? """{"type": "object", "properties": {}}""");
        for (int seed = 1; seed <= 4; seed++)
        {
            var request = Chat($", \"tools\": {WeatherTools}, \"tool_choice\": \"required\"");
            request["seed"] = seed;
            var (status, body) = await PostAsync("/v1/chat/completions", request);
            Assert.True(status == HttpStatusCode.OK, body?.ToJsonString());
            var choice = body!["choices"]![0]!;
            Assert.Equal("tool_calls", (string?)choice["finish_reason"]);
            var calls = choice["message"]!["tool_calls"]!.AsArray();
            Assert.NotEmpty(calls);
            foreach (var call in calls)
            {
                Assert.StartsWith("call_", (string)call!["id"]!);
                Assert.Equal("function", (string?)call["type"]);
                string name = (string)call["function"]!["name"]!;
                Assert.Contains(name, schemas.Keys);
                JsonSchemaGrammarTests.AssertValid(schemas[name], (string)call["function"]!["arguments"]!, $"seed {seed} {name}");
            }
        }
    }

    [Fact]
    public async Task NamedToolChoiceStreamsDeltaToolCallsLikeOpenAi()
    {
        string extra = $", \"tools\": {WeatherTools}, \"tool_choice\": {{\"type\": \"function\", \"function\": {{\"name\": \"weather\"}}}}, \"parallel_tool_calls\": false";
        var (_, whole) = await PostAsync("/v1/chat/completions", Chat(extra));
        var call = whole!["choices"]![0]!["message"]!["tool_calls"]!.AsArray().Single()!;
        Assert.Equal("weather", (string?)call["function"]!["name"]);
        Assert.Null(whole["choices"]![0]!["message"]!["content"]);

        var request = Chat(extra);
        request["stream"] = true;
        var chunks = await StreamAsync("/v1/chat/completions", request);
        var deltas = chunks.Select(c => c["choices"]?.AsArray().FirstOrDefault()?["delta"]?["tool_calls"]).Where(d => d is not null).SelectMany(d => d!.AsArray()).ToList();
        Assert.True(deltas.Count >= 2);
        Assert.All(deltas, d => Assert.Equal(0, (int)d!["index"]!));
        Assert.StartsWith("call_", (string)deltas[0]!["id"]!);
        Assert.Equal("function", (string?)deltas[0]!["type"]);
        Assert.Equal("weather", (string?)deltas[0]!["function"]!["name"]);
        string arguments = string.Concat(deltas.Select(d => (string?)d!["function"]?["arguments"]));
        Assert.Equal((string)call["function"]!["arguments"]!, arguments);
        Assert.Equal("tool_calls", (string?)chunks.Last(c => c["choices"]!.AsArray().Count > 0)["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task ToolChoiceNoneAnswersInTextAndHistoryWithCallsAndResultsIsAccepted()
    {
        var (status, body) = await PostAsync("/v1/chat/completions", Chat($", \"tools\": {WeatherTools}, \"tool_choice\": \"none\", \"max_tokens\": 10"));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Null(body!["choices"]![0]!["message"]!["tool_calls"]);
        Assert.NotEqual("tool_calls", (string?)body["choices"]![0]!["finish_reason"]);

        var history = JsonNode.Parse("""
            {"messages": [
              {"role": "user", "content": "Weather in Oslo?"},
              {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\", \"days\": 1}"}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}],
             "max_tokens": 8}
            """)!;
        history["tools"] = JsonNode.Parse(WeatherTools);
        (status, body) = await PostAsync("/v1/chat/completions", history);
        Assert.Equal(HttpStatusCode.OK, status);
        int withHistory = (int)body!["usage"]!["prompt_tokens"]!;
        (_, body) = await PostAsync("/v1/chat/completions", JsonNode.Parse("{\"messages\": [{\"role\": \"user\", \"content\": \"Weather in Oslo?\"}], \"max_tokens\": 8}")!);
        Assert.True(withHistory > (int)body!["usage"]!["prompt_tokens"]! + 20, "the tools, the call and its result did not reach the prompt");
    }
}
