namespace ClockLM.Tokenizers.ChatTemplates;

/// <summary>
/// One turn of a conversation as chat templates see it: <c>message.role</c>, <c>message.content</c> and,
/// when set, <c>tool_calls</c>, <c>tool_call_id</c>, <c>name</c> and <c>reasoning_content</c>
/// (the OpenAI / Hugging Face message shape).
/// </summary>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>Tool calls an assistant turn made (<c>message.tool_calls</c>); absent when null.</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary>For a <c>tool</c> turn: the id of the call it answers (<c>message.tool_call_id</c>).</summary>
    public string? ToolCallId { get; init; }

    /// <summary>For a <c>tool</c> turn: the tool's name (<c>message.name</c>).</summary>
    public string? Name { get; init; }

    /// <summary>An assistant turn's reasoning, for templates that render it (<c>message.reasoning_content</c>).</summary>
    public string? ReasoningContent { get; init; }
}

/// <summary>
/// A function call made by the assistant. Templates see
/// <c>{"id": Id, "type": "function", "function": {"name": Name, "arguments": Arguments}}</c>.
/// </summary>
/// <param name="Name">Function name.</param>
/// <param name="Arguments">The arguments: a dictionary, a list, a JSON node or element, or a JSON string.</param>
/// <param name="Id">Call id, or null to leave <c>id</c> out.</param>
public sealed record ChatToolCall(string Name, object? Arguments, string? Id = null);
