using System.Text;
using System.Text.Json;
using ClockLM.Sampling.Grammars;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Chat.Tools;

/// <summary>The ways model families write tool calls.</summary>
public enum ToolCallFamily
{
    /// <summary>Hermes, Qwen 2.5, Qwen 3: <c>&lt;tool_call&gt;{"name": …, "arguments": …}&lt;/tool_call&gt;</c>, one block per call.</summary>
    Hermes,
    /// <summary>Llama 3.1 / 3.2: a bare <c>{"name": …, "parameters": …}</c>, or <c>&lt;|python_tag|&gt;</c> then a call.</summary>
    Llama3,
    /// <summary>Mistral: <c>[TOOL_CALLS][{"name": …, "arguments": …}, …]</c>.</summary>
    Mistral,
    /// <summary>Any other template: calls as in Hermes, or a JSON object (or array) of calls; the tools are described
    /// in a system message when the template does not show them itself.</summary>
    Generic,
}

/// <summary>
/// How one chat template's model writes tool calls: its family (read from the template text), the grammar that forces
/// a valid call when the request requires one, and the system message that describes the tools to models whose
/// template does not.
/// </summary>
public sealed class ToolCallFormat
{
    private ToolCallFormat(ToolCallFamily family, bool templateShowsTools)
    {
        Family = family;
        TemplateShowsTools = templateShowsTools;
    }

    /// <summary>The family.</summary>
    public ToolCallFamily Family { get; }

    /// <summary>True when the template renders <c>tools</c> itself.</summary>
    public bool TemplateShowsTools { get; }

    /// <summary>The key of the arguments object in a call: <c>parameters</c> for Llama 3, <c>arguments</c> otherwise.</summary>
    public string ArgumentsKey => Family == ToolCallFamily.Llama3 ? "parameters" : "arguments";

    /// <summary>The text that opens a block of calls (a special token's text), or null when calls are bare JSON.</summary>
    public string? Marker => Family switch
    {
        ToolCallFamily.Hermes or ToolCallFamily.Generic => "<tool_call>",
        ToolCallFamily.Mistral => "[TOOL_CALLS]",
        ToolCallFamily.Llama3 => "<|python_tag|>",
        _ => null,
    };

    /// <summary>The format a template implies.</summary>
    public static ToolCallFormat For(ChatTemplate template)
    {
        ArgumentNullException.ThrowIfNull(template);
        string source = template.Source;
        // ChatML as ClockLM writes it for files without a template: calls as in Hermes or as JSON, tools described.
        if (template.IsFallback || source == ChatTemplate.ChatMLSource) return new(ToolCallFamily.Generic, false);
        bool shows = !template.IsFallback && source.Contains("tools", StringComparison.Ordinal);
        if (source.Contains("[TOOL_CALLS]", StringComparison.Ordinal)) return new(ToolCallFamily.Mistral, shows);
        if (source.Contains("<tool_call>", StringComparison.Ordinal)) return new(ToolCallFamily.Hermes, shows);
        if (source.Contains("<|python_tag|>", StringComparison.Ordinal) || (source.Contains("<|start_header_id|>", StringComparison.Ordinal) && source.Contains("ipython", StringComparison.Ordinal)))
            return new(ToolCallFamily.Llama3, shows);
        return new(ToolCallFamily.Generic, shows);
    }

    /// <summary>A format of a given family (for tests and for callers that know their model).</summary>
    public static ToolCallFormat Of(ToolCallFamily family, bool templateShowsTools = true) => new(family, templateShowsTools);

    /// <summary>
    /// GBNF that admits only well-formed calls of <paramref name="tools"/> in this family's syntax, each call's arguments
    /// valid against the function's schema; one call, or several when <paramref name="parallel"/>.
    /// </summary>
    /// <exception cref="JsonSchemaException">A function's parameters use a keyword ClockLM cannot constrain.</exception>
    public string Gbnf(IReadOnlyList<ToolDefinition> tools, bool parallel)
    {
        if (tools.Count == 0) throw new ArgumentException("no tools to call", nameof(tools));
        var text = new GbnfText();
        text.Set("root", "\"\"");
        JsonGrammar.AddPrimitive(text, "ws");
        var calls = new List<string>();
        foreach (var tool in tools)
        {
            string arguments = JsonSchemaGrammar.AddTo(text, tool.ParametersOrEmpty, $"{tool.Name}-args");
            string rule = text.NewName($"{tool.Name}-call");
            text.Set(rule, $"\"{{\" ws \"\\\"name\\\"\" ws \":\" ws {GbnfText.Literal(JsonSchemaGrammar.JsonText(tool.Name))} ws \",\" ws " +
                           $"\"\\\"{ArgumentsKey}\\\"\" ws \":\" ws {arguments} \"}}\"");
            calls.Add(rule);
        }
        text.Set("call", string.Join(" | ", calls));
        text.Set("root", Family switch
        {
            ToolCallFamily.Llama3 => "call",
            ToolCallFamily.Mistral => parallel ? "\"[\" call (\",\" ws call)* \"]\"" : "\"[\" call \"]\"",
            _ => parallel
                ? "\"<tool_call>\\n\" call \"\\n</tool_call>\" (\"\\n<tool_call>\\n\" call \"\\n</tool_call>\")*"
                : "\"<tool_call>\\n\" call \"\\n</tool_call>\"",
        });
        return text.ToString();
    }

    /// <summary>
    /// For a template that does not render <c>tools</c>: a system message listing them and saying how to call them
    /// (null when the template shows the tools itself).
    /// </summary>
    public string? ToolSystemMessage(IReadOnlyList<ToolDefinition> tools)
    {
        if (TemplateShowsTools || tools.Count == 0) return null;
        var sb = new StringBuilder("You can call these functions:\n");
        foreach (var tool in tools) sb.Append(tool.ToTemplateJson().ToJsonString()).Append('\n');
        sb.Append(Family switch
        {
            ToolCallFamily.Llama3 => "To call one, answer with only {\"name\": function name, \"parameters\": arguments object}.",
            ToolCallFamily.Mistral => "To call functions, answer with [TOOL_CALLS] and a JSON array of {\"name\": function name, \"arguments\": arguments object}.",
            _ => "To call one, answer with <tool_call>\n{\"name\": function name, \"arguments\": arguments object}\n</tool_call>",
        });
        return sb.ToString();
    }
}
