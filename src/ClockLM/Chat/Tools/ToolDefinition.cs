using System.Text.Json;
using System.Text.Json.Nodes;

namespace ClockLM.Chat.Tools;

/// <summary>A function the model may call: its name, what it does, and the JSON schema of its arguments.</summary>
/// <param name="Name">Function name (letters, digits, '_' and '-').</param>
/// <param name="Description">What the function does, for the model; may be null.</param>
/// <param name="Parameters">JSON schema of the arguments object; null means no arguments.</param>
public sealed record ToolDefinition(string Name, string? Description, JsonElement? Parameters)
{
    /// <summary>The schema of the arguments: <see cref="Parameters"/>, or an object without properties.</summary>
    public JsonElement ParametersOrEmpty => Parameters ?? EmptyObjectSchema;

    private static readonly JsonElement EmptyObjectSchema = JsonDocument.Parse("""{"type": "object", "properties": {}}""").RootElement;

    /// <summary>
    /// Reads tools written as OpenAI's request writes them: an array of <c>{"type": "function", "function": {"name",
    /// "description", "parameters"}}</c> (bare <c>{"name", ...}</c> objects are accepted too), or an object holding such
    /// an array under <c>tools</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The JSON is not a list of tools; the message names the entry and field.</exception>
    public static List<ToolDefinition> ParseList(string json)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new ArgumentException($"the tools are not valid JSON: {e.Message}"); }
        if (root is JsonObject holder && holder["tools"] is JsonArray inner) root = inner;
        if (root is not JsonArray list) throw new ArgumentException("the tools must be a JSON array (or an object with a 'tools' array)");
        var tools = new List<ToolDefinition>();
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not JsonObject entry) throw new ArgumentException($"tools[{i}] is not an object");
            var function = entry["function"] as JsonObject ?? entry;
            if (entry["type"] is { } type && type.ToString() != "function") throw new ArgumentException($"tools[{i}].type is '{type}'; only functions are supported");
            if (function["name"] is not JsonValue name || name.GetValueKind() != JsonValueKind.String || name.GetValue<string>().Length == 0)
                throw new ArgumentException($"tools[{i}] has no function name");
            var parameters = function["parameters"];
            if (parameters is not null and not JsonObject) throw new ArgumentException($"tools[{i}].parameters must be a JSON schema object");
            tools.Add(new ToolDefinition(name.GetValue<string>(), function["description"]?.ToString(),
                parameters is null ? null : JsonDocument.Parse(parameters.ToJsonString()).RootElement.Clone()));
        }
        return tools;
    }

    /// <summary>The OpenAI shape chat templates expect in <c>tools</c>:
    /// <c>{"type": "function", "function": {"name", "description", "parameters"}}</c>.</summary>
    public JsonObject ToTemplateJson()
    {
        var function = new JsonObject { ["name"] = Name };
        if (Description is not null) function["description"] = Description;
        function["parameters"] = JsonNode.Parse(ParametersOrEmpty.GetRawText());
        return new JsonObject { ["type"] = "function", ["function"] = function };
    }
}

/// <summary>Whether and how the model must call tools (OpenAI's <c>tool_choice</c>).</summary>
public enum ToolChoiceMode
{
    /// <summary>The model decides; its output is parsed for calls.</summary>
    Auto,
    /// <summary>No calls: the tools are not shown to the model.</summary>
    None,
    /// <summary>The model must call one of the tools: its output is grammar-constrained to calls.</summary>
    Required,
    /// <summary>The model must call the named function: its output is grammar-constrained to that call.</summary>
    Named,
}

/// <summary>The tools of a request and how they may be used.</summary>
/// <param name="Tools">The functions offered.</param>
/// <param name="Mode">Auto, none, required or named.</param>
/// <param name="FunctionName">With <see cref="ToolChoiceMode.Named"/>: the function to call.</param>
/// <param name="Parallel">Whether several calls may be made in one answer (OpenAI's <c>parallel_tool_calls</c>).</param>
public sealed record ToolOptions(IReadOnlyList<ToolDefinition> Tools, ToolChoiceMode Mode = ToolChoiceMode.Auto, string? FunctionName = null, bool Parallel = true)
{
    /// <summary>The tools the model may call under this choice (all, none, or the named one).</summary>
    public IReadOnlyList<ToolDefinition> Callable => Mode switch
    {
        ToolChoiceMode.None => [],
        ToolChoiceMode.Named => Tools.Where(t => t.Name == FunctionName).ToList(),
        _ => Tools,
    };
}

/// <summary>A call the model made.</summary>
/// <param name="Id">Call id (<c>call_…</c>, or the model's own when it wrote one).</param>
/// <param name="Name">Function name.</param>
/// <param name="Arguments">The arguments as JSON text (an object, as the model wrote it).</param>
public sealed record ParsedToolCall(string Id, string Name, string Arguments);
