using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Chat.Tools;

namespace ClockLM.Server;

/// <summary>Tool calls in the response shapes of the APIs: OpenAI's <c>message.tool_calls</c> (arguments as JSON text)
/// and <c>delta.tool_calls</c> when streamed; Ollama's <c>message.tool_calls</c> (arguments as an object).</summary>
internal static class ToolCallJson
{
    /// <summary>The calls to answer with: all, or only the first when parallel calls were turned off.</summary>
    public static IReadOnlyList<ParsedToolCall> Kept(ToolCallParser? parser, ToolOptions? tools) =>
        parser is null || tools is null ? [] : tools.Parallel ? parser.Calls : parser.Calls.Take(1).ToList();

    /// <summary>An assistant message with calls: content is the remaining text, or null when there is none.</summary>
    public static JsonObject Message(string content, IReadOnlyList<ParsedToolCall> calls) => new()
    {
        ["role"] = "assistant",
        ["content"] = content.Trim() is { Length: > 0 } text ? text : null,
        ["tool_calls"] = new JsonArray(calls.Select(c => (JsonNode)new JsonObject
        {
            ["id"] = c.Id,
            ["type"] = "function",
            ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
        }).ToArray()),
    };

    /// <summary>The deltas of one streamed call: first its index, id, type and name with empty arguments, then the
    /// arguments (clients concatenate the argument fragments of each index).</summary>
    public static IEnumerable<JsonObject> Deltas(int index, ParsedToolCall call)
    {
        yield return new JsonObject
        {
            ["tool_calls"] = new JsonArray(new JsonObject
            {
                ["index"] = index,
                ["id"] = call.Id,
                ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = call.Name, ["arguments"] = "" },
            }),
        };
        yield return new JsonObject
        {
            ["tool_calls"] = new JsonArray(new JsonObject
            {
                ["index"] = index,
                ["function"] = new JsonObject { ["arguments"] = call.Arguments },
            }),
        };
    }

    /// <summary>
    /// One call as Ollama answers it: <c>{"id", "function": {"index", "name", "arguments": {...}}}</c>, the arguments
    /// an object rather than JSON text. Null when the model's arguments are not a JSON object, which Ollama's shape
    /// cannot carry (the caller answers the call's text as content instead).
    /// </summary>
    public static JsonObject? Ollama(int index, ParsedToolCall call)
    {
        JsonNode? arguments;
        try { arguments = JsonNode.Parse(call.Arguments); }
        catch (JsonException) { return null; }
        if (arguments is not JsonObject) return null;
        return new JsonObject
        {
            ["id"] = call.Id,
            ["function"] = new JsonObject { ["index"] = index, ["name"] = call.Name, ["arguments"] = arguments },
        };
    }

    /// <summary>The text of a call as a model of the generic family writes it, for a call answered as content.</summary>
    public static string Text(ParsedToolCall call) =>
        new JsonObject { ["name"] = call.Name, ["arguments"] = call.Arguments }.ToJsonString();
}
