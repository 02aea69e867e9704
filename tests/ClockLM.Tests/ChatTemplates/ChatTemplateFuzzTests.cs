using System.Reflection;
using System.Text;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Tests.ChatTemplates;

/// <summary>
/// Broken and random templates: whatever the input, parsing and rendering either succeed or throw a
/// <see cref="ChatTemplateException"/> (never another exception type, a hang or a stack overflow).
/// Set FUZZ_SEED to explore other inputs.
/// </summary>
public class ChatTemplateFuzzTests
{
    private static readonly string[] Published = typeof(PublishedTemplates)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (string)f.GetRawConstantValue()!)
        .ToArray();

    internal static readonly string[] Fragments =
    [
        "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", "if", "elif", "else", "endif", "for", "in", "endfor",
        "set", "endset", "macro", "endmacro", "call", "endcall", "filter", "endfilter", "raw", "endraw", "break", "continue",
        "x", "messages", "loop", "loop.index", "ns", "namespace(a=1)", "range(5)", "range(-3)", "caller()", "raise_exception('r')",
        "(", ")", "[", "]", "{", "}", ",", ":", ".", "|", "~", "+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", ">", "not", "and",
        "or", "is", "defined", "none", "true", "'s'", "\"t\"", "0", "1", "-1", "2.5", "1e999", "9223372036854775807", "tojson",
        "length", "join", "items", "list", "string", "int", "round", "trim", "first", "last", "default", "selectattr", "map",
        "sort", "reverse", "[::-1]", "[1:]", "[0]", "['role']", ".content", ".strip()", ".split()", " ", "\n", "text",
    ];

    internal static readonly ChatMessage[] Conversation =
    [
        new("system", "sys"), new("user", "Hello"), new("assistant", "Hi") { ToolCalls = [new ChatToolCall("f", "{\"a\": [1, 2]}", "id1")] },
        new("tool", "result") { ToolCallId = "id1" }, new("user", "Bye"),
    ];

    internal static readonly ChatTemplateOptions Small = ChatTemplateOptions.Default with
    {
        MaxLoopIterations = 10_000, MaxOutputChars = 100_000, MaxListLength = 10_000, MaxCallDepth = 16, Timeout = TimeSpan.FromSeconds(5),
    };

    private static void Try(string template)
    {
        try
        {
            var parsed = ChatTemplate.Parse(template, Small);
            parsed.Render(Conversation, true, "<s>", "</s>", new Dictionary<string, object?> { ["tools"] = new[] { new Dictionary<string, object?> { ["name"] = "f" } } });
        }
        catch (ChatTemplateException)
        {
        }
        catch (Exception e)
        {
            Assert.Fail($"{e.GetType().Name}: {e.Message}\ntemplate: {template}\n{e.StackTrace}");
        }
    }

    [Fact]
    public void RandomFragmentSequencesFailOnlyWithChatTemplateExceptions()
    {
        var random = new Random(int.Parse(Environment.GetEnvironmentVariable("FUZZ_SEED") ?? "1234"));
        for (int i = 0; i < 1500; i++)
        {
            var sb = new StringBuilder();
            int n = random.Next(1, 30);
            for (int j = 0; j < n; j++) sb.Append(Fragments[random.Next(Fragments.Length)]).Append(random.Next(3) == 0 ? " " : "");
            Try(sb.ToString());
        }
    }

    private static readonly string[] Atoms =
    [
        "none", "true", "false", "0", "1", "-2", "3.5", "0.0", "''", "'abc'", "'a b'", "[]", "[1, 'x', none]", "{}", "{'k': 1, 'role': 'user'}",
        "(1, 2)", "messages", "messages[0]", "messages[2].tool_calls", "tools", "loop", "ns", "range(3)", "range(10**12)", "undefined_name",
        "bos_token", "add_generation_prompt", "namespace(x=1)", "raise_exception", "caller",
    ];

    private static readonly string[] FilterCalls =
    [
        "trim", "tojson", "tojson(indent=2)", "tojson(indent='x')", "tojson(separators=1)", "length", "upper", "title", "capitalize", "first", "last",
        "join", "join(',')", "join(attribute='role')", "default(1)", "replace('a', 'b')", "replace(1, 2, 3)", "selectattr('role')",
        "selectattr('role', 'equalto', 'user')", "rejectattr('x', 'defined')", "select('odd')", "reject", "map('upper')", "map(attribute='content')",
        "list", "string", "int", "int('x')", "int(0, 'z')", "float", "items", "round", "round(2)", "round(1, 'floor')", "round('x')", "abs", "reverse",
        "sort", "sort(attribute='role')", "unique", "dictsort", "sum", "sum(attribute='x')", "min", "max", "safe", "e", "indent", "indent('>>')",
        "indent(-5)", "attr('role')", "wordcount", "batch(2)", "batch(0)", "count", "d",
    ];

    private static readonly string[] Methods =
    [
        ".strip()", ".strip(1)", ".lstrip('a')", ".split()", ".split(',')", ".split('')", ".split(none, 1)", ".rsplit(',', 1)", ".startswith('a')",
        ".startswith(('a', 1))", ".endswith(1)", ".replace('a', 'b')", ".upper()", ".title()", ".find('b')", ".count('a')", ".join(['a'])",
        ".join([1])", ".items()", ".keys()", ".values()", ".get('role')", ".get()", ".index(1)", ".count(1)", ".role", ".content", "[0]", "[-1]",
        "['role']", "[1:]", "[::-1]", "[::0]", "[1:'x']", ".0", "()", "(1, x=2)",
    ];

    private static readonly string[] Operators = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "in", "not in", "and", "or"];

    private static readonly string[] Tests =
    [
        "defined", "none", "string", "number", "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby 0", "divisibleby(2)",
        "equalto 1", "lt 'a'", "in [1]", "in 1", "sameas none", "lower", "upper", "integer", "float", "boolean", "true",
    ];

    private static string Expression(Random random, int depth)
    {
        if (depth <= 0) return Atoms[random.Next(Atoms.Length)];
        return random.Next(7) switch
        {
            0 => $"{Expression(random, depth - 1)}|{FilterCalls[random.Next(FilterCalls.Length)]}",
            1 => $"{Expression(random, depth - 1)}{Methods[random.Next(Methods.Length)]}",
            2 => $"({Expression(random, depth - 1)} {Operators[random.Next(Operators.Length)]} {Expression(random, depth - 1)})",
            3 => $"({Expression(random, depth - 1)} is {(random.Next(2) == 0 ? "not " : "")}{Tests[random.Next(Tests.Length)]})",
            4 => $"({Expression(random, depth - 1)} if {Expression(random, depth - 1)} else {Expression(random, depth - 1)})",
            5 => $"[{Expression(random, depth - 1)}, {Expression(random, depth - 1)}]",
            _ => $"{{'k': {Expression(random, depth - 1)}}}",
        };
    }

    [Fact]
    public void RandomExpressionsFailOnlyWithChatTemplateExceptions()
    {
        var random = new Random(int.Parse(Environment.GetEnvironmentVariable("FUZZ_SEED") ?? "7"));
        for (int i = 0; i < 1500; i++)
        {
            string e = Expression(random, random.Next(1, 5));
            Try(random.Next(4) switch
            {
                0 => $"{{{{ {e} }}}}",
                1 => $"{{% for x in {e} %}}{{{{ x }}}}{{{{ loop.index }}}}{{% endfor %}}",
                2 => $"{{% set ns = namespace(v=0) %}}{{% set ns.v = {e} %}}{{{{ ns.v|tojson }}}}",
                _ => $"{{% macro m(a, b=1) %}}{{{{ a }}}}{{{{ caller() if caller is defined }}}}{{% endmacro %}}{{{{ m({e}) }}}}{{% if {e} %}}y{{% endif %}}",
            });
        }
    }

    [Fact]
    public void MutatedPublishedTemplatesFailOnlyWithChatTemplateExceptions()
    {
        var random = new Random(int.Parse(Environment.GetEnvironmentVariable("FUZZ_SEED") ?? "42"));
        for (int i = 0; i < 800; i++)
        {
            var text = new StringBuilder(Published[random.Next(Published.Length)]);
            int edits = random.Next(1, 4);
            for (int e = 0; e < edits && text.Length > 0; e++)
            {
                int at = random.Next(text.Length);
                switch (random.Next(3))
                {
                    case 0: text.Remove(at, Math.Min(text.Length - at, random.Next(1, 20))); break;
                    case 1: text.Insert(at, Fragments[random.Next(Fragments.Length)]); break;
                    default: text.Length = at; break;
                }
            }
            Try(text.ToString());
        }
    }
}
