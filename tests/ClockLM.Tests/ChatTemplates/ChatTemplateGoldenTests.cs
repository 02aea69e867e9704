using ClockLM.Tokenizers.ChatTemplates;
using static ClockLM.Tests.ChatTemplates.PublishedTemplates;

namespace ClockLM.Tests.ChatTemplates;

/// <summary>
/// Published chat templates rendered against expected prompts. Expectations come from llama.cpp's
/// tests/test-chat-template.cpp and Hugging Face's chat-template tests where they exist, otherwise they are
/// worked out by reading the template (each such case says so).
/// </summary>
public class ChatTemplateGoldenTests
{
    /// <summary>The conversation of llama.cpp's test-chat-template.cpp.</summary>
    private static readonly ChatMessage[] Conversation =
    [
        new("system", "You are a helpful assistant"),
        new("user", "Hello"),
        new("assistant", "Hi there"),
        new("user", "Who are you"),
        new("assistant", "   I am an assistant   "),
        new("user", "Another question"),
    ];

    /// <summary>The conversation of Hugging Face's chat-template tests.</summary>
    private static readonly ChatMessage[] HfConversation =
    [
        new("user", "Hello, how are you?"),
        new("assistant", "I'm doing great. How can I help you today?"),
        new("user", "I'd like to show off how chat templating works!"),
    ];

    private static readonly ChatMessage HfSystem = new("system", "You are a friendly chatbot who always responds in the style of a pirate");

    private static readonly Dictionary<string, object?> WeatherTool = new()
    {
        ["type"] = "function",
        ["function"] = new Dictionary<string, object?>
        {
            ["name"] = "get_weather",
            ["description"] = "Get the weather",
            ["parameters"] = System.Text.Json.Nodes.JsonNode.Parse("""{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}"""),
        },
    };

    private static readonly ChatMessage[] ToolConversation =
    [
        new("user", "What is the weather in Paris?"),
        new("assistant", "") { ToolCalls = [new ChatToolCall("get_weather", new Dictionary<string, object?> { ["city"] = "Paris" }, "abc123def")] },
        new("tool", "22C") { ToolCallId = "abc123def", Name = "get_weather" },
    ];

    private static string Render(string template, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true,
        string bos = "", string eos = "", Dictionary<string, object?>? extra = null) =>
        ChatTemplate.Parse(template).Render(messages, addGenerationPrompt, bos, eos, extra);

    private const string ChatMLExpected =
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n" +
        "<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n" +
        "<|im_start|>assistant\n";

    [Fact]
    public void ChatML_MatchesLlamaCppExpectation()
    {
        Assert.Equal(ChatMLExpected, Render(ChatML, Conversation));
        Assert.Equal(ChatMLExpected, ChatTemplate.Fallback.Render(Conversation, true, "", ""));
    }

    [Fact]
    public void ChatMLFallbackShowsAnAssistantsToolCallsAsTheModelWritesThem()
    {
        ChatMessage[] conversation =
        [
            new("user", "Weather in Paris?"),
            new("assistant", "") { ToolCalls = [new ChatToolCall("get_weather", "{\"city\": \"Paris\", \"days\": 2}", "call_1")] },
            new("tool", "sunny") { ToolCallId = "call_1", Name = "get_weather" },
        ];
        Assert.Equal(
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<|im_end|>\n" +
            "<|im_start|>tool\nsunny<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplate.Fallback.Render(conversation, true, "", ""));
        // The same conversation without the call renders as before: nothing changes for turns without tool calls.
        Assert.Equal(ChatMLExpected, ChatTemplate.Fallback.Render(Conversation, true, "", ""));
    }

    [Fact]
    public void Llama2Chat_SystemGoesInsideTheFirstInstBlock()
    {
        // Worked out from the template: system wrapped in <<SYS>>, contents stripped, BOS before every [INST].
        Assert.Equal(
            "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST] I am an assistant </s>" +
            "<s>[INST] Another question [/INST]",
            Render(Llama2Chat, Conversation, bos: "<s>", eos: "</s>"));
        // Hugging Face's expectation for the same template family.
        Assert.Equal(
            "<s>[INST] <<SYS>>\nYou are a friendly chatbot who always responds in the style of a pirate\n<</SYS>>\n\nHello, how are you? [/INST] " +
            "I'm doing great. How can I help you today? </s><s>[INST] I'd like to show off how chat templating works! [/INST]",
            Render(Llama2Chat, [HfSystem, .. HfConversation], bos: "<s>", eos: "</s>"));
    }

    [Fact]
    public void Llama2Chat_RejectsTwoUserTurnsInARow()
    {
        var e = Assert.Throws<ChatTemplateRaisedException>(() =>
            Render(Llama2Chat, [new("user", "a"), new("user", "b")], bos: "<s>", eos: "</s>"));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", e.TemplateMessage);
        Assert.Equal(1, e.Line);
    }

    [Fact]
    public void Llama3Instruct_MatchesLlamaCppExpectationWithBos()
    {
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(Llama3Instruct, Conversation, bos: "<|begin_of_text|>", eos: "<|eot_id|>"));
    }

    [Fact]
    public void Llama31Instruct_SystemBlockCarriesDates()
    {
        // Worked out from the template: every tag strips its whitespace, the system message follows the date lines.
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
            "You are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(Llama31Instruct, Conversation, bos: "<|begin_of_text|>", eos: "<|eot_id|>"));
    }

    [Fact]
    public void Llama31Instruct_ToolsGoInTheFirstUserMessageAsIndentedJson()
    {
        // Worked out from the template: tojson(indent=4) for the tool, the call as {"name", "parameters"},
        // and the tool result passed through tojson because a string "is iterable".
        const string toolJson =
            "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the weather\",\n" +
            "        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n" +
            "                    \"type\": \"string\"\n                }\n            },\n            \"required\": [\n                \"city\"\n" +
            "            ]\n        }\n    }\n}";
        string expected =
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
            "You are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" +
            "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n" +
            "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n" +
            toolJson + "\n\nWhat is the weather in Paris?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>" +
            "<|start_header_id|>ipython<|end_header_id|>\n\n\"22C\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        Assert.Equal(expected, Render(Llama31Instruct, [new("system", "You are a helpful assistant"), .. ToolConversation],
            bos: "<|begin_of_text|>", eos: "<|eot_id|>", extra: new() { ["tools"] = new[] { WeatherTool } }));
    }

    [Fact]
    public void MistralV01_MatchesHuggingFaceExpectation()
    {
        Assert.Equal(
            "<s>[INST] Hello, how are you? [/INST]I'm doing great. How can I help you today?</s>[INST] I'd like to show off how chat templating works! [/INST]",
            Render(MistralV01, HfConversation, bos: "<s>", eos: "</s>"));
        Assert.Equal(
            "<s>[INST] Hello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]",
            Render(MistralV01, Conversation[1..], bos: "<s>", eos: "</s>"));
    }

    [Fact]
    public void MistralV01_HasNoSystemRole()
    {
        var e = Assert.Throws<ChatTemplateRaisedException>(() => Render(MistralV01, Conversation, bos: "<s>", eos: "</s>"));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", e.TemplateMessage);
    }

    [Fact]
    public void MistralV03_SystemJoinsTheLastUserMessage()
    {
        // llama.cpp's expected output for the "v3" template.
        Assert.Equal(
            "[INST] Hello[/INST] Hi there</s>[INST] Who are you[/INST] I am an assistant</s>[INST] You are a helpful assistant\n\nAnother question[/INST]",
            Render(MistralV03, Conversation, bos: "", eos: "</s>"));
    }

    [Fact]
    public void MistralV03_RendersToolsToolCallsAndResults()
    {
        // Worked out from the template: tools before the last user message, the call's JSON minus its final brace plus
        // the id, the result with content|string.
        Assert.Equal(
            "<s>[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", " +
            "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS]" +
            "[INST] What is the weather in Paris?[/INST][TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abc123def\"}]</s>" +
            "[TOOL_RESULTS] {\"content\": 22C, \"call_id\": \"abc123def\"}[/TOOL_RESULTS]",
            Render(MistralV03, ToolConversation, bos: "<s>", eos: "</s>", extra: new() { ["tools"] = new[] { WeatherTool } }));
    }

    [Fact]
    public void MistralV03_RejectsToolCallIdsOfTheWrongLength()
    {
        ChatMessage[] messages =
        [
            new("user", "Weather?"),
            new("assistant", "") { ToolCalls = [new ChatToolCall("get_weather", "{\"city\": \"Paris\"}", "short")] },
        ];
        var e = Assert.Throws<ChatTemplateRaisedException>(() => Render(MistralV03, messages, bos: "<s>", eos: "</s>"));
        Assert.Equal("Tool call IDs should be alphanumeric strings with length 9!", e.TemplateMessage);
    }

    [Fact]
    public void MistralNemo_MatchesPublishedExpectations()
    {
        Assert.Equal(
            "<s>[INST]Hello, how are you?[/INST]I'm doing great. How can I help you today?</s>[INST]I'd like to show off how chat templating works![/INST]",
            Render(MistralNemo, HfConversation, bos: "<s>", eos: "</s>"));
        Assert.Equal(
            "[INST]Hello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an assistant   </s>[INST]You are a helpful assistant\n\nAnother question[/INST]",
            Render(MistralNemo, Conversation, bos: "", eos: "</s>"));
    }

    [Fact]
    public void Qwen25_AddsDefaultSystemMessage()
    {
        // Hugging Face's expectation (no system message, no generation prompt).
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n" +
            "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n",
            Render(Qwen25Instruct, HfConversation, addGenerationPrompt: false));
        Assert.Equal(ChatMLExpected, Render(Qwen25Instruct, Conversation));
    }

    [Fact]
    public void Qwen25_RendersToolsBlockToolCallAndToolResponse()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
            "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", " +
            "\"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n</tools>\n\n" +
            "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n" +
            "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" +
            "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n" +
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n" +
            "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
            Render(Qwen25Instruct, [new("system", "You are a helpful assistant"), .. ToolConversation],
                extra: new() { ["tools"] = new[] { WeatherTool } }));
    }

    [Fact]
    public void Qwen3_PlainConversationIsChatML()
    {
        Assert.Equal(ChatMLExpected, Render(Qwen3, Conversation));
        Assert.Equal(ChatMLExpected + "<think>\n\n</think>\n\n", Render(Qwen3, Conversation, extra: new() { ["enable_thinking"] = false }));
    }

    [Fact]
    public void Qwen3_KeepsThinkingOnlyAfterTheLastUserQuery()
    {
        // Worked out from the template: reasoning of earlier turns is dropped, the final turn keeps it.
        ChatMessage[] messages =
        [
            new("user", "What is 2+2?"),
            new("assistant", "<think>\nAdd them.\n</think>\n\n4"),
            new("user", "And 3+3?"),
            new("assistant", "<think>\nAgain add.\n</think>\n\n6"),
        ];
        Assert.Equal(
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n" +
            "<|im_start|>assistant\n<think>\nAgain add.\n</think>\n\n6<|im_end|>\n",
            Render(Qwen3, messages, addGenerationPrompt: false));
    }

    [Fact]
    public void Gemma2_MapsAssistantToModel()
    {
        // Hugging Face's expectation.
        Assert.Equal(
            "<start_of_turn>user\nHello, how are you?<end_of_turn>\n<start_of_turn>model\nI'm doing great. How can I help you today?<end_of_turn>\n" +
            "<start_of_turn>user\nI'd like to show off how chat templating works!<end_of_turn>\n",
            Render(Gemma2, HfConversation, addGenerationPrompt: false));
        Assert.Equal(
            "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n" +
            "<start_of_turn>model\nI am an assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n",
            Render(Gemma2, Conversation[1..], bos: "<bos>", eos: "<eos>"));
    }

    [Fact]
    public void Gemma2_RaisesOnSystemRoleAndBadAlternation()
    {
        var system = Assert.Throws<ChatTemplateRaisedException>(() => Render(Gemma2, Conversation, bos: "<bos>"));
        Assert.Equal("System role not supported", system.TemplateMessage);
        var alternation = Assert.Throws<ChatTemplateRaisedException>(() =>
            Render(Gemma2, [new("user", "a"), new("assistant", "b"), new("assistant", "c")], bos: "<bos>"));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", alternation.TemplateMessage);
    }

    [Fact]
    public void Gemma3_PrefixesSystemToFirstUserTurn()
    {
        // Worked out from the template.
        Assert.Equal(
            "<bos><start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n" +
            "<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n" +
            "<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n",
            Render(Gemma3, Conversation, bos: "<bos>", eos: "<eos>"));
        var e = Assert.Throws<ChatTemplateRaisedException>(() => Render(Gemma3, [new("system", "s"), new("assistant", "x")], bos: "<bos>"));
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", e.TemplateMessage);
    }

    [Fact]
    public void Phi3_MatchesLlamaCppExpectation()
    {
        const string turns =
            "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n" +
            "<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n";
        Assert.Equal(turns + "<|assistant|>\n", Render(Phi3, Conversation, eos: "<|endoftext|>"));
        Assert.Equal(turns + "<|endoftext|>", Render(Phi3, Conversation, addGenerationPrompt: false, eos: "<|endoftext|>"));
    }

    [Fact]
    public void Zephyr_TrimBlocksRemovesNewlinesAfterTags()
    {
        Assert.Equal(
            "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n<|user|>\nHello, how are you?</s>\n" +
            "<|assistant|>\nI'm doing great. How can I help you today?</s>\n<|user|>\nI'd like to show off how chat templating works!</s>\n",
            Render(Zephyr, [HfSystem, .. HfConversation], addGenerationPrompt: false, eos: "</s>"));
        Assert.Equal(
            "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n<|user|>\nHow many helicopters can a human eat in one sitting?</s>\n<|assistant|>\n",
            Render(Zephyr, [HfSystem, new("user", "How many helicopters can a human eat in one sitting?")], eos: "</s>"));
    }

    [Fact]
    public void DeepSeekCoder_NamespaceAndWhitespaceControl()
    {
        Assert.Equal(
            "<｜begin of sentence｜>You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only answer " +
            "questions related to computer science. For politically sensitive questions, security and privacy issues, and other non-computer science questions, " +
            "you will refuse to answer\n### Instruction:\nHello, how are you?\n### Response:\nI'm doing great. How can I help you today?\n<|EOT|>\n" +
            "### Instruction:\nI'd like to show off how chat templating works!\n",
            Render(DeepSeekCoder, HfConversation, addGenerationPrompt: false, bos: "<｜begin of sentence｜>", eos: "<|EOT|>"));
    }

    [Fact]
    public void Synatra_TrimmingOutputTags()
    {
        Assert.Equal(
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nHello, how are you?" +
            "### Response:\nI'm doing great. How can I help you today?### Instruction:\nI'd like to show off how chat templating works!",
            Render(Synatra, HfConversation, addGenerationPrompt: false));
    }
}
