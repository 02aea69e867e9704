using System.Text.Json;
using ClockLM.Chat.Tools;
using ClockLM.Sampling.Grammars;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Server;

/// <summary>
/// The request fields that shape what is generated: OpenAI's <c>response_format</c>, llama.cpp's <c>grammar</c> and
/// <c>json_schema</c>, and OpenAI's <c>tools</c>, <c>tool_choice</c> and <c>parallel_tool_calls</c>. Every problem is
/// a 400 naming the field (an unsupported schema keyword names the keyword too).
/// </summary>
internal sealed class StructuredRequest
{
    /// <summary>The grammar the output must follow, or null.</summary>
    public Grammar? Grammar { get; private init; }

    /// <summary>The tools offered and how, or null when the request has none.</summary>
    public ToolOptions? Tools { get; private init; }

    /// <summary>Reads the fields of a chat (<paramref name="chat"/>) or text completion request.</summary>
    public static StructuredRequest Read(JsonRequest body, bool chat, ToolCallFormat toolFormat)
    {
        string? source = null, from = null;
        void Set(string? gbnf, string field)
        {
            if (gbnf is null) return;
            if (from is not null) throw ApiException.BadRequest($"{field} and {from} both constrain the output; give only one", field);
            source = gbnf;
            from = field;
        }
        Set(ResponseFormat(body), "response_format");
        if (body.String("grammar") is { } grammar)
        {
            if (grammar.Length > 1 << 20) throw ApiException.BadRequest("grammar is longer than 1 MiB", "grammar");
            Set(grammar, "grammar");
        }
        if (body.Get("json_schema") is { } schema) Set(SchemaGbnf(schema, "json_schema"), "json_schema");

        ToolOptions? tools = chat ? ReadTools(body) : null;
        if (!chat)
            foreach (string field in new[] { "tools", "tool_choice", "parallel_tool_calls" })
                if (body.Get(field) is not null) throw ApiException.BadRequest($"{field} is for /v1/chat/completions; text completions take no tools", field);
        if (tools is { Mode: ToolChoiceMode.Required or ToolChoiceMode.Named } forced)
        {
            if (from is not null)
                throw ApiException.BadRequest($"{from} cannot be combined with a tool_choice that forces a call: the call's arguments are already constrained", from);
            try
            {
                source = toolFormat.Gbnf(forced.Callable, forced.Parallel);
                from = "tools";
            }
            catch (JsonSchemaException e)
            {
                throw ApiException.BadRequest($"tools: {e.Message}", "tools", "unsupported_schema_keyword");
            }
        }
        else if (tools is { Mode: ToolChoiceMode.Auto } && from is not null)
            throw ApiException.BadRequest($"{from} together with tools is not supported unless tool_choice is \"none\"", from);

        return new StructuredRequest { Grammar = source is null ? null : Compile(source, from!), Tools = tools };
    }

    /// <summary>Ollama's <c>format</c>: "" (free text), "json" (any JSON object) or a JSON schema object; null when
    /// the output is free.</summary>
    public static Grammar? OllamaFormat(JsonRequest body)
    {
        if (body.Get("format") is not { } format) return null;
        if (format.ValueKind == JsonValueKind.String)
            return format.GetString() switch
            {
                "" => null,
                "json" => Compile(JsonGrammar.AnyObjectGbnf, "format"),
                var other => throw ApiException.BadRequest($"format is '{other}'; expected \"json\" or a JSON schema object", "format"),
            };
        if (format.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest($"format is {format.ValueKind.ToString().ToLowerInvariant()}; expected \"json\" or a JSON schema object", "format");
        return Compile(SchemaGbnf(format, "format"), "format");
    }

    private static Grammar Compile(string source, string field)
    {
        try
        {
            return GrammarCache.Get(source);
        }
        catch (GrammarException e)
        {
            throw ApiException.BadRequest($"{field}: {e.Message}", field, "invalid_grammar");
        }
    }

    /// <summary>OpenAI's <c>response_format</c>: text (no constraint), json_object, or json_schema with its schema.</summary>
    private static string? ResponseFormat(JsonRequest body)
    {
        if (body.Object("response_format") is not { } format) return null;
        foreach (var property in format.Root.EnumerateObject())
            if (property.Name is not ("type" or "json_schema" or "schema"))
                throw ApiException.BadRequest($"response_format.{property.Name} is not a field ClockLM reads", $"response_format.{property.Name}");
        string type = format.String("type") ?? throw ApiException.BadRequest("response_format.type is required: text, json_object or json_schema", "response_format.type");
        switch (type)
        {
            case "text":
                return null;
            case "json_object":
                // llama.cpp lets json_object carry a schema too.
                return format.Get("schema") is { } inline ? SchemaGbnf(inline, "response_format.schema") : JsonGrammar.AnyObjectGbnf;
            case "json_schema":
                var wrapper = format.Object("json_schema") ?? throw ApiException.BadRequest("response_format.json_schema is required with type json_schema", "response_format.json_schema");
                foreach (var property in wrapper.Root.EnumerateObject())
                    if (property.Name is not ("name" or "schema" or "strict" or "description"))
                        throw ApiException.BadRequest($"response_format.json_schema.{property.Name} is not a field ClockLM reads", $"response_format.json_schema.{property.Name}");
                wrapper.String("name");
                wrapper.Bool("strict"); // always strict here: the grammar admits only valid output
                var schema = wrapper.Get("schema") ?? throw ApiException.BadRequest("response_format.json_schema.schema is required", "response_format.json_schema.schema");
                return SchemaGbnf(schema, "response_format.json_schema.schema");
            default:
                throw ApiException.BadRequest($"response_format.type is '{type}'; expected text, json_object or json_schema", "response_format.type");
        }
    }

    private static string SchemaGbnf(JsonElement schema, string field)
    {
        try
        {
            return JsonSchemaGrammar.ToGbnf(schema);
        }
        catch (JsonSchemaException e)
        {
            throw ApiException.BadRequest($"{field}: {e.Message}", field, "unsupported_schema_keyword");
        }
    }

    /// <summary><c>tools</c> (functions only), <c>tool_choice</c> and <c>parallel_tool_calls</c>.</summary>
    private static ToolOptions? ReadTools(JsonRequest body)
    {
        var list = body.Get("tools");
        bool? parallel = body.Bool("parallel_tool_calls");
        var choice = body.Get("tool_choice");
        if (list is null)
        {
            if (choice is { ValueKind: JsonValueKind.String } c && c.GetString() == "none") return null;
            if (choice is not null) throw ApiException.BadRequest("tool_choice needs tools", "tool_choice");
            if (parallel is not null) throw ApiException.BadRequest("parallel_tool_calls needs tools", "parallel_tool_calls");
            return null;
        }
        var tools = ReadToolList(list.Value, ["name", "description", "parameters", "strict"]);
        if (tools.Count == 0) throw ApiException.BadRequest("tools is empty; leave it out or give at least one function", "tools");
        var options = new ToolOptions(tools, Parallel: parallel ?? true);
        if (choice is null) return options;
        if (choice.Value.ValueKind == JsonValueKind.String)
        {
            return choice.Value.GetString() switch
            {
                "auto" => options,
                "none" => options with { Mode = ToolChoiceMode.None },
                "required" => options with { Mode = ToolChoiceMode.Required },
                var other => throw ApiException.BadRequest($"tool_choice is '{other}'; expected auto, none, required or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}", "tool_choice"),
            };
        }
        if (choice.Value.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType("tool_choice", "a string or an object", choice.Value);
        var named = new JsonRequest(choice.Value);
        if ((named.String("type") ?? "function") != "function") throw ApiException.BadRequest("tool_choice.type must be 'function'", "tool_choice.type");
        string? wanted = named.Object("function")?.String("name");
        if (wanted is null) throw ApiException.BadRequest("tool_choice.function.name is required", "tool_choice.function.name");
        if (!tools.Any(t => t.Name == wanted)) throw ApiException.BadRequest($"tool_choice names '{wanted}', which is not among the tools", "tool_choice.function.name");
        return options with { Mode = ToolChoiceMode.Named, FunctionName = wanted };
    }

    /// <summary>
    /// Ollama's <c>tools</c>: the same <c>[{"type": "function", "function": {"name", "description", "parameters"}}]</c>
    /// as OpenAI's, always offered as "auto" (Ollama has no <c>tool_choice</c>); null when absent or empty.
    /// </summary>
    public static ToolOptions? OllamaTools(JsonRequest body)
    {
        if (body.Get("tools") is not { } list || list.ValueKind == JsonValueKind.Null) return null;
        var tools = ReadToolList(list, ["name", "description", "parameters"]);
        return tools.Count == 0 ? null : new ToolOptions(tools);
    }

    /// <summary>
    /// A list of function tools, each <c>{"type": "function", "function": {...}}</c> whose function has only
    /// <paramref name="functionFields"/>: any other field is a 400 naming it, and so is a name that is not 1 to 64
    /// letters, digits, '_' or '-', a name given twice, or parameters the grammar cannot follow.
    /// </summary>
    private static List<ToolDefinition> ReadToolList(JsonElement list, string[] functionFields)
    {
        if (list.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType("tools", "an array", list);
        var tools = new List<ToolDefinition>();
        int i = 0;
        foreach (var item in list.EnumerateArray())
        {
            string at = $"tools[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType(at, "an object", item);
            var tool = new JsonRequest(item);
            foreach (var property in item.EnumerateObject())
                if (property.Name is not ("type" or "function"))
                    throw ApiException.BadRequest($"{at}.{property.Name} is not a field ClockLM reads", $"{at}.{property.Name}");
            string type = tool.String("type") ?? "function";
            if (type != "function") throw ApiException.BadRequest($"{at}.type is '{type}'; only function tools are supported", $"{at}.type");
            var function = tool.Object("function") ?? throw ApiException.BadRequest($"{at}.function is required", $"{at}.function");
            foreach (var property in function.Root.EnumerateObject())
                if (!functionFields.Contains(property.Name))
                    throw ApiException.BadRequest($"{at}.function.{property.Name} is not a field ClockLM reads", $"{at}.function.{property.Name}");
            string name = function.String("name") ?? throw ApiException.BadRequest($"{at}.function.name is required", $"{at}.function.name");
            if (name.Length is 0 or > 64 || !name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-'))
                throw ApiException.BadRequest($"{at}.function.name '{name}' must be 1 to 64 letters, digits, '_' or '-'", $"{at}.function.name");
            if (tools.Any(t => t.Name == name)) throw ApiException.BadRequest($"{at}.function.name '{name}' is given twice", $"{at}.function.name");
            function.Bool("strict");
            var parameters = function.Get("parameters");
            if (parameters is { } p)
            {
                if (p.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType($"{at}.function.parameters", "a JSON schema object", p);
                // Refuse a schema the grammar cannot follow now, not when a call is forced.
                SchemaGbnf(p, $"{at}.function.parameters");
            }
            tools.Add(new ToolDefinition(name, function.String("description"), parameters?.Clone()));
        }
        return tools;
    }

    /// <summary>An assistant message's <c>tool_calls</c>: <c>[{id, type: "function", function: {name, arguments}}]</c>,
    /// arguments parsed from their JSON text so templates can write them as objects.</summary>
    public static IReadOnlyList<ChatToolCall>? ReadToolCalls(JsonRequest message, string at)
    {
        if (message.Get("tool_calls") is not { } list) return null;
        if (list.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType($"{at}.tool_calls", "an array", list);
        var calls = new List<ChatToolCall>();
        int i = 0;
        foreach (var item in list.EnumerateArray())
        {
            string where = $"{at}.tool_calls[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType(where, "an object", item);
            var call = new JsonRequest(item);
            var function = call.Object("function") ?? throw ApiException.BadRequest($"{where}.function is required", $"{where}.function");
            string name = function.String("name") ?? throw ApiException.BadRequest($"{where}.function.name is required", $"{where}.function.name");
            object? arguments = null;
            if (function.Get("arguments") is { } args)
            {
                if (args.ValueKind == JsonValueKind.String)
                {
                    try { arguments = System.Text.Json.Nodes.JsonNode.Parse(args.GetString()!); }
                    catch (JsonException) { throw ApiException.BadRequest($"{where}.function.arguments is not JSON text", $"{where}.function.arguments"); }
                }
                else arguments = System.Text.Json.Nodes.JsonNode.Parse(args.GetRawText());
            }
            calls.Add(new ChatToolCall(name, arguments, call.String("id")));
        }
        return calls;
    }
}
