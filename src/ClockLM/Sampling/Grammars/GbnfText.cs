using System.Text;

namespace ClockLM.Sampling.Grammars;

/// <summary>Writes GBNF source: quoted literals, character classes, and a rule set with unique names.</summary>
internal sealed class GbnfText
{
    private readonly Dictionary<string, string> _rules = new();
    private readonly List<string> _order = [];

    /// <summary>True when a rule of that name has been added.</summary>
    public bool Has(string name) => _rules.ContainsKey(name);

    /// <summary>Adds (or replaces) rule <paramref name="name"/> with body <paramref name="body"/>.</summary>
    public void Set(string name, string body)
    {
        if (!_rules.ContainsKey(name)) _order.Add(name);
        _rules[name] = body;
    }

    /// <summary>A rule name not used yet, made of <paramref name="hint"/>'s letters, digits and dashes.</summary>
    public string NewName(string hint)
    {
        var sb = new StringBuilder();
        foreach (char c in hint)
            sb.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        string name = sb.Length == 0 ? "rule" : sb.ToString();
        if (!_rules.ContainsKey(name)) { Set(name, "\"\""); return name; }
        for (int i = 1; ; i++)
            if (!_rules.ContainsKey($"{name}-{i}")) { Set($"{name}-{i}", "\"\""); return $"{name}-{i}"; }
    }

    /// <summary>The grammar: root first, then the other rules in the order they were added.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (string name in _order.OrderBy(n => n == "root" ? 0 : 1))
            sb.Append(name).Append(" ::= ").Append(_rules[name]).Append('\n');
        return sb.ToString();
    }

    /// <summary><paramref name="text"/> as a GBNF literal.</summary>
    public static string Literal(string text)
    {
        var sb = new StringBuilder("\"");
        foreach (var rune in text.EnumerateRunes()) AppendChar(sb, rune.Value, inClass: false);
        return sb.Append('"').ToString();
    }

    /// <summary>A GBNF character class of the inclusive code-point ranges.</summary>
    public static string Class(IEnumerable<(int Low, int High)> ranges, bool negated = false)
    {
        var sb = new StringBuilder(negated ? "[^" : "[");
        foreach (var (low, high) in ranges)
        {
            AppendChar(sb, low, inClass: true);
            if (high == low) continue;
            if (high > low + 1) sb.Append('-');
            AppendChar(sb, high, inClass: true);
        }
        return sb.Append(']').ToString();
    }

    private static void AppendChar(StringBuilder sb, int cp, bool inClass)
    {
        switch (cp)
        {
            case '\n': sb.Append("\\n"); return;
            case '\r': sb.Append("\\r"); return;
            case '\t': sb.Append("\\t"); return;
            case '\\': sb.Append("\\\\"); return;
            case '"': sb.Append("\\\""); return;
        }
        if (inClass && cp is ']' or '[' or '-' or '^') { sb.Append('\\').Append((char)cp); return; }
        if (cp < 0x20 || cp == 0x7F) { sb.Append($"\\x{cp:X2}"); return; }
        if (cp is >= 0xD800 and <= 0xDFFF) { sb.Append($"\\u{cp:X4}"); return; }
        sb.Append(char.ConvertFromUtf32(cp));
    }
}
