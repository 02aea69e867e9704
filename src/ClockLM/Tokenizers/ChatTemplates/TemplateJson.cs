using System.Globalization;
using System.Text;

namespace ClockLM.Tokenizers.ChatTemplates;

/// <summary>
/// The <c>tojson</c> filter as Hugging Face defines it for chat templates: Python's
/// <c>json.dumps(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False)</c>.
/// Without indent items are separated by ", " and keys by ": "; with indent by "," and newlines.
/// </summary>
internal static class TemplateJson
{
    public sealed record Settings(string? Indent, string ItemSeparator, string KeySeparator, bool EnsureAscii, bool SortKeys);

    public static Settings DefaultSettings { get; } = new(null, ", ", ": ", false, false);

    public static string Serialize(object? value, Settings settings, int limit)
    {
        var sb = new StringBuilder();
        Write(sb, value, settings, 0, limit);
        return sb.ToString();
    }

    private static void NewLine(StringBuilder sb, Settings s, int level)
    {
        sb.Append('\n');
        for (int i = 0; i < level; i++) sb.Append(s.Indent);
    }

    private static void Write(StringBuilder sb, object? value, Settings s, int level, int limit)
    {
        if (sb.Length > limit || level > 64) throw new StringLimitException();
        switch (value)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity"
                    : double.IsNegativeInfinity(d) ? "-Infinity" : PyValue.FormatFloat(d));
                break;
            case string str: WriteString(sb, str, s.EnsureAscii); break;
            case List<object?> list:
                if (list.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(s.ItemSeparator);
                    if (s.Indent != null) NewLine(sb, s, level + 1);
                    Write(sb, list[i], s, level + 1, limit);
                }
                if (s.Indent != null) NewLine(sb, s, level);
                sb.Append(']');
                break;
            case RangeValue r:
                var items = new List<object?>();
                for (long i = 0; i < r.Count && sb.Length + items.Count <= limit; i++) items.Add(r[i]);
                Write(sb, items, s, level, limit);
                break;
            case OrderedDictionary<string, object?> dict:
                if (dict.Count == 0) { sb.Append("{}"); break; }
                IEnumerable<KeyValuePair<string, object?>> pairs = dict;
                if (s.SortKeys) pairs = dict.OrderBy(p => p.Key, StringComparer.Ordinal);
                sb.Append('{');
                bool first = true;
                foreach (var (key, item) in pairs)
                {
                    if (!first) sb.Append(s.ItemSeparator);
                    first = false;
                    if (s.Indent != null) NewLine(sb, s, level + 1);
                    WriteString(sb, key, s.EnsureAscii);
                    sb.Append(s.KeySeparator);
                    Write(sb, item, s, level + 1, limit);
                }
                if (s.Indent != null) NewLine(sb, s, level);
                sb.Append('}');
                break;
            default:
                throw new NotJsonException(PyValue.TypeName(value));
        }
    }

    private static void WriteString(StringBuilder sb, string str, bool ensureAscii)
    {
        sb.Append('"');
        foreach (char c in str)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ensureAscii && c > 0x7e))
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}

/// <summary>A value with no JSON form (undefined, a macro, a namespace) reached <c>tojson</c>.</summary>
internal sealed class NotJsonException(string typeName) : Exception($"Object of type {typeName} is not JSON serializable");
