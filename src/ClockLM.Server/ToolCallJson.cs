using System.Text.Json.Nodes;
using ClockLM.Chat.Tools;

namespace ClockLM.Server;

/// <summary>Tool calls in OpenAI's response shapes: <c>message.tool_calls</c>, and <c>delta.tool_calls</c> when streamed.</summary>
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
}
