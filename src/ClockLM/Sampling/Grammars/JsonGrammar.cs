namespace ClockLM.Sampling.Grammars;

/// <summary>
/// The GBNF rules of JSON values (RFC 8259) that schemas build on, and the grammar of any JSON object
/// (<c>response_format: {"type": "json_object"}</c>). Whitespace between tokens is bounded (a space, or a newline and up
/// to 20 spaces or tabs) so that a model cannot fill its answer with blanks; numbers have at most 16 integer and 16
/// fraction digits. Every text these rules match is valid JSON.
/// </summary>
public static class JsonGrammar
{
    /// <summary>Rule bodies by name; a schema grammar adds the ones it uses.</summary>
    internal static readonly IReadOnlyDictionary<string, string> Primitives = new Dictionary<string, string>
    {
        ["ws"] = "| \" \" | \"\\n\" [ \\t]{0,20}",
        ["boolean"] = "(\"true\" | \"false\") ws",
        ["null"] = "\"null\" ws",
        ["integral-part"] = "\"0\" | [1-9] [0-9]{0,15}",
        ["integer"] = "\"-\"? integral-part ws",
        ["number"] = "\"-\"? integral-part (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? ws",
        ["char"] = "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})",
        ["string"] = "\"\\\"\" char* \"\\\"\" ws",
        ["value"] = "object | array | string | number | boolean | null",
        ["object"] = "\"{\" ws (string \":\" ws value (\",\" ws string \":\" ws value)*)? \"}\" ws",
        ["array"] = "\"[\" ws (value (\",\" ws value)*)? \"]\" ws",
        ["date"] = "[0-9]{4} \"-\" (\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | [1-2] [0-9] | \"3\" [0-1])",
        ["time"] = "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,9})? (\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])",
        ["date-time"] = "date \"T\" time",
        ["uuid"] = "[0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12}",
    };

    /// <summary>Which primitives each primitive uses.</summary>
    internal static readonly IReadOnlyDictionary<string, string[]> Uses = new Dictionary<string, string[]>
    {
        ["ws"] = [],
        ["boolean"] = ["ws"],
        ["null"] = ["ws"],
        ["integral-part"] = [],
        ["integer"] = ["integral-part", "ws"],
        ["number"] = ["integral-part", "ws"],
        ["char"] = [],
        ["string"] = ["char", "ws"],
        ["value"] = ["object", "array", "string", "number", "boolean", "null"],
        ["object"] = ["ws", "string", "value"],
        ["array"] = ["ws", "value"],
        ["date"] = [],
        ["time"] = [],
        ["date-time"] = ["date", "time"],
        ["uuid"] = [],
    };

    /// <summary>GBNF of one JSON object of any content.</summary>
    public static string AnyObjectGbnf { get; } = Build("object");

    /// <summary>GBNF of any one JSON value.</summary>
    public static string AnyValueGbnf { get; } = Build("value");

    private static string Build(string root)
    {
        var text = new GbnfText();
        text.Set("root", root);
        AddPrimitive(text, root);
        return text.ToString();
    }

    /// <summary>Adds primitive <paramref name="name"/> and those it uses, once each.</summary>
    internal static void AddPrimitive(GbnfText text, string name)
    {
        if (text.Has(name)) return;
        text.Set(name, Primitives[name]);
        foreach (string used in Uses[name]) AddPrimitive(text, used);
    }
}
