using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Chat.Tools;
using ClockLM.Sampling.Grammars;
using ClockLM.Tests.ChatTemplates;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Tests.Sampling;

/// <summary>Tool calls per family: parsing goldens (whole and streamed), forced-call grammars, and the round trip of
/// tools, calls and results through the published chat templates.</summary>
public sealed class ToolCallTests
{
    private static readonly ToolDefinition Weather = new("get_weather", "Current weather of a city",
        JsonDocument.Parse("""{"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city"]}""").RootElement);
    private static readonly ToolDefinition Time = new("get_time", null, null);

    public static TheoryData<ToolCallFamily, string, string, string[]> Goldens => new()
    {
        { ToolCallFamily.Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "", ["get_weather {\"city\":\"Paris\"}"] },
        { ToolCallFamily.Hermes, "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
            "Let me check.", ["get_weather {\"city\":\"Oslo\",\"days\":2}", "get_time {}"] },
        { ToolCallFamily.Hermes, "<think>\nweather needed\n</think>\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"UTC\\\"}\"}\n</tool_call>",
            "<think>\nweather needed\n</think>", ["get_time {\"tz\":\"UTC\"}"] },
        { ToolCallFamily.Hermes, "No tools needed: 2 + 2 = 4. Use <tool_ (a tag) freely.", "No tools needed: 2 + 2 = 4. Use <tool_ (a tag) freely.", [] },
        { ToolCallFamily.Hermes, "<tool_call>\n{\"name\": broken}\n</tool_call>", "<tool_call>\n{\"name\": broken}\n</tool_call>", [] },
        { ToolCallFamily.Llama3, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}", "", ["get_weather {\"city\":\"Rome\"}"] },
        { ToolCallFamily.Llama3, "  {\"type\": \"function\", \"name\": \"get_time\", \"parameters\": {}}; {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Bern\"}}", "", ["get_time {}", "get_weather {\"city\":\"Bern\"}"] },
        { ToolCallFamily.Llama3, "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Lima\"}}", "", ["get_weather {\"city\":\"Lima\"}"] },
        { ToolCallFamily.Llama3, "<|python_tag|>brave_search.call(query=\"ClockLM news\", count=3)", "", ["brave_search {\"query\":\"ClockLM news\",\"count\":3}"] },
        { ToolCallFamily.Llama3, "{\"answer\": 42} is the JSON you asked for.", "{\"answer\": 42} is the JSON you asked for.", [] },
        { ToolCallFamily.Llama3, "The weather is fine {\"name\": \"x\"}", "The weather is fine {\"name\": \"x\"}", [] },
        { ToolCallFamily.Mistral, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Kyiv\"}, \"id\": \"abcDEF123\"}, {\"name\": \"get_time\", \"arguments\": {}}]", "",
            ["get_weather {\"city\":\"Kyiv\"}", "get_time {}"] },
        { ToolCallFamily.Mistral, "[{\"name\": \"get_time\", \"arguments\": {}}]", "", ["get_time {}"] },
        { ToolCallFamily.Mistral, "Sure, here it is.", "Sure, here it is.", [] },
        { ToolCallFamily.Generic, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>", "", ["get_time {}"] },
        { ToolCallFamily.Generic, "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Nuuk\"}}]}", "", ["get_weather {\"city\":\"Nuuk\"}"] },
        { ToolCallFamily.Generic, "{\"tool_call\": {\"name\": \"get_time\", \"arguments\": {}}}", "", ["get_time {}"] },
        { ToolCallFamily.Generic, "Plain answer.", "Plain answer.", [] },
    };

    private static string Describe(ParsedToolCall c) => $"{c.Name} {JsonNode.Parse(c.Arguments)!.ToJsonString()}";

    [Theory]
    [MemberData(nameof(Goldens))]
    public void ParsesEachFamily(ToolCallFamily family, string output, string content, string[] calls)
    {
        var (text, parsed) = ToolCallParser.ParseAll(ToolCallFormat.Of(family), output);
        Assert.Equal(content, text);
        Assert.Equal(calls, parsed.Select(Describe).ToArray());
        Assert.All(parsed, c => Assert.True(c.Id.Length > 0));
        if (family == ToolCallFamily.Mistral && calls.Length == 2) Assert.Equal("abcDEF123", parsed[0].Id);
    }

    /// <summary>Streamed one character (and three characters) at a time, the events carry the same text and calls,
    /// and no text that belongs to a call is ever released as content.</summary>
    [Theory]
    [MemberData(nameof(Goldens))]
    public void StreamedDeltasEqualTheWholeParse(ToolCallFamily family, string output, string content, string[] calls)
    {
        foreach (int step in new[] { 1, 3 })
        {
            var parser = new ToolCallParser(ToolCallFormat.Of(family));
            var events = new List<ToolStreamEvent>();
            for (int i = 0; i < output.Length; i += step) events.AddRange(parser.Append(output.Substring(i, Math.Min(step, output.Length - i))));
            events.AddRange(parser.Finish());
            string streamed = string.Concat(events.OfType<ContentEvent>().Select(e => e.Text));
            Assert.Equal(content, streamed.Trim());
            var streamedCalls = events.OfType<ToolCallEvent>().ToList();
            Assert.Equal(calls, streamedCalls.Select(e => Describe(e.Call)).ToArray());
            Assert.Equal(Enumerable.Range(0, streamedCalls.Count), streamedCalls.Select(e => e.Index));
            if (calls.Length > 0) Assert.DoesNotContain(events.OfType<ContentEvent>(), e => e.Text.Contains("\"name\""));
        }
    }

    [Fact]
    public void ContentBeforeACallStreamsBeforeTheCallCompletes()
    {
        var parser = new ToolCallParser(ToolCallFormat.Of(ToolCallFamily.Hermes));
        var first = parser.Append("Checking the weather <tool");
        Assert.Equal("Checking the weather ", string.Concat(first.OfType<ContentEvent>().Select(e => e.Text)));
        Assert.Empty(parser.Append("_call>\n{\"name\": \"get_time\", "));
        var done = parser.Append("\"arguments\": {}}\n</tool_call>");
        Assert.Single(done.OfType<ToolCallEvent>());
    }

    [Theory]
    [InlineData(ToolCallFamily.Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>", true)]
    [InlineData(ToolCallFamily.Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>", true)]
    [InlineData(ToolCallFamily.Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 3}}\n</tool_call>", false)]
    [InlineData(ToolCallFamily.Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 9}}\n</tool_call>", false)]
    [InlineData(ToolCallFamily.Hermes, "<tool_call>\n{\"name\": \"get_wether\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", false)]
    [InlineData(ToolCallFamily.Llama3, "{\"name\": \"get_time\", \"parameters\": {}}", true)]
    [InlineData(ToolCallFamily.Llama3, "{\"name\": \"get_time\", \"arguments\": {}}", false)]
    [InlineData(ToolCallFamily.Mistral, "[{\"name\": \"get_time\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]", true)]
    public void ForcedCallGrammarAdmitsOnlyValidCalls(ToolCallFamily family, string text, bool valid)
    {
        var grammar = Grammar.Parse(ToolCallFormat.Of(family).Gbnf([Weather, Time], parallel: true));
        Assert.Equal(valid, GrammarTests.Matches(grammar, text));
        if (valid) Assert.NotEmpty(ToolCallParser.ParseAll(ToolCallFormat.Of(family), text).Calls);
    }

    [Fact]
    public void WithoutParallelCallsTheGrammarAdmitsOneCall()
    {
        var grammar = Grammar.Parse(ToolCallFormat.Of(ToolCallFamily.Hermes).Gbnf([Weather, Time], parallel: false));
        Assert.True(GrammarTests.Matches(grammar, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
        Assert.False(GrammarTests.Matches(grammar, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
    }

    [Theory]
    [InlineData(nameof(PublishedTemplates.Qwen25Instruct), ToolCallFamily.Hermes)]
    [InlineData(nameof(PublishedTemplates.Qwen3), ToolCallFamily.Hermes)]
    [InlineData(nameof(PublishedTemplates.Llama31Instruct), ToolCallFamily.Llama3)]
    [InlineData(nameof(PublishedTemplates.MistralV03), ToolCallFamily.Mistral)]
    [InlineData(nameof(PublishedTemplates.ChatML), ToolCallFamily.Generic)]
    public void FamilyIsReadFromTheTemplate(string name, ToolCallFamily family)
    {
        string source = (string)typeof(PublishedTemplates).GetField(name)!.GetValue(null)!;
        Assert.Equal(family, ToolCallFormat.For(ChatTemplate.Parse(source)).Family);
    }

    /// <summary>Tools, an assistant turn with calls and the tool results render through each family's published
    /// template in the shapes those models were trained on.</summary>
    [Theory]
    [InlineData(nameof(PublishedTemplates.Qwen25Instruct), "\"name\": \"get_weather\"", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "<tool_response>\n18 C\n</tool_response>")]
    [InlineData(nameof(PublishedTemplates.Qwen3), "\"name\": \"get_weather\"", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "<tool_response>\n18 C\n</tool_response>")]
    [InlineData(nameof(PublishedTemplates.Llama31Instruct), "\"name\": \"get_weather\"", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "<|start_header_id|>ipython<|end_header_id|>\n\n\"18 C\"<|eot_id|>")]
    [InlineData(nameof(PublishedTemplates.MistralV03), "\"name\": \"get_weather\"", "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcDEF123\"}]", "[TOOL_RESULTS] {\"content\": 18 C, \"call_id\": \"abcDEF123\"}[/TOOL_RESULTS]")]
    public void ToolsCallsAndResultsRenderThroughTheTemplate(string name, string toolShown, string callShown, string resultShown)
    {
        string source = (string)typeof(PublishedTemplates).GetField(name)!.GetValue(null)!;
        var template = ChatTemplate.Parse(source);
        ChatMessage[] messages =
        [
            new("user", "Weather in Paris?"),
            new("assistant", "") { ToolCalls = [new ChatToolCall("get_weather", JsonNode.Parse("{\"city\": \"Paris\"}"), "abcDEF123")] },
            new("tool", "18 C") { ToolCallId = "abcDEF123", Name = "get_weather" },
        ];
        var extra = new Dictionary<string, object?> { ["tools"] = new JsonArray(Weather.ToTemplateJson(), Time.ToTemplateJson()) };
        string prompt = template.Render(messages, addGenerationPrompt: true, "<s>", "</s>", extra);
        Assert.Contains(toolShown, prompt);
        Assert.Contains(callShown, prompt);
        Assert.Contains(resultShown, prompt);
    }

    [Fact]
    public void ToolListsAreReadInOpenAiShapeWithClearErrors()
    {
        var tools = ToolDefinition.ParseList("""[{"type": "function", "function": {"name": "a", "description": "d", "parameters": {"type": "object"}}}, {"name": "b"}]""");
        Assert.Equal(["a", "b"], tools.Select(t => t.Name));
        Assert.Equal("d", tools[0].Description);
        Assert.Null(tools[1].Parameters);
        Assert.Contains("tools[1] has no function name", Assert.Throws<ArgumentException>(() => ToolDefinition.ParseList("""[{"name": "a"}, {"function": {}}]""")).Message);
        Assert.Contains("not valid JSON", Assert.Throws<ArgumentException>(() => ToolDefinition.ParseList("[{")).Message);
    }
}
