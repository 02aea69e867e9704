using System.Globalization;
using System.Text;

namespace ClockLM.Tokenizers.ChatTemplates;

/// <summary>
/// The filters, tests, methods and global functions chat templates use, with the behaviour of Jinja 3
/// and Python (and Hugging Face's <c>tojson</c>, <c>raise_exception</c> and <c>strftime_now</c>).
/// </summary>
internal static class TemplateBuiltins
{
    public static readonly HashSet<string> FilterNames =
    [
        "trim", "tojson", "length", "count", "upper", "lower", "title", "capitalize", "first", "last", "join",
        "default", "d", "replace", "selectattr", "rejectattr", "select", "reject", "map", "list", "string", "int",
        "float", "items", "round", "abs", "reverse", "sort", "unique", "dictsort", "sum", "min", "max", "safe",
        "escape", "e", "indent", "attr", "wordcount", "batch",
    ];

    public static readonly HashSet<string> TestNames =
    [
        "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false", "mapping",
        "iterable", "sequence", "callable", "equalto", "eq", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">", "ge",
        ">=", "lessthan", "greaterthan", "in", "odd", "even", "divisibleby", "sameas", "lower", "upper", "escaped",
    ];

    public static readonly Dictionary<string, object?> Globals = new(StringComparer.Ordinal)
    {
        ["range"] = new BuiltinFunction("range", Range),
        ["namespace"] = new BuiltinFunction("namespace", MakeNamespace),
        ["dict"] = new BuiltinFunction("dict", MakeDict),
        ["raise_exception"] = new BuiltinFunction("raise_exception", (r, args, _, at) =>
        {
            string message = args.Count > 0 ? r.Str(args[0], at) : "";
            var (line, col) = r.Locate(at);
            throw new ChatTemplateRaisedException(line, col, message);
        }),
        ["strftime_now"] = new BuiltinFunction("strftime_now", (r, args, _, at) =>
            Strftime(r.Options.Now(), args.Count > 0 ? r.Str(args[0], at) : "")),
    };

    private static object? Arg(List<object?> args, Dictionary<string, object?> kwargs, int index, string name, object? fallback) =>
        index < args.Count ? args[index] : kwargs.TryGetValue(name, out var v) ? v : fallback;

    private static long IntArg(TemplateRenderer r, Node at, object? v, string what) => v switch
    {
        long or bool => PyValue.ToLong(v),
        _ => throw r.Fail(at, $"{what} must be an integer, not '{PyValue.TypeName(v)}'"),
    };

    // ---------------- globals ----------------

    private static object? Range(TemplateRenderer r, List<object?> args, Dictionary<string, object?> kwargs, Node at)
    {
        if (args.Count is < 1 or > 3) throw r.Fail(at, $"range expects 1 to 3 arguments, got {args.Count}");
        long start = 0, step = 1, stop;
        if (args.Count == 1) stop = IntArg(r, at, args[0], "range stop");
        else
        {
            start = IntArg(r, at, args[0], "range start");
            stop = IntArg(r, at, args[1], "range stop");
            if (args.Count == 3) step = IntArg(r, at, args[2], "range step");
        }
        if (step == 0) throw r.Fail(at, "range step must not be zero");
        return new RangeValue(start, stop, step);
    }

    private static object? MakeNamespace(TemplateRenderer r, List<object?> args, Dictionary<string, object?> kwargs, Node at)
    {
        var ns = new Namespace();
        foreach (var arg in args)
        {
            if (arg is not OrderedDictionary<string, object?> d) throw r.Fail(at, "namespace() takes a dict or keyword arguments");
            foreach (var (k, v) in d) ns.Attributes[k] = v;
        }
        foreach (var (k, v) in kwargs) ns.Attributes[k] = v;
        return ns;
    }

    private static object? MakeDict(TemplateRenderer r, List<object?> args, Dictionary<string, object?> kwargs, Node at)
    {
        var dict = new OrderedDictionary<string, object?>();
        foreach (var arg in args)
        {
            if (arg is not OrderedDictionary<string, object?> d) throw r.Fail(at, "dict() takes a dict or keyword arguments");
            foreach (var (k, v) in d) dict[k] = v;
        }
        foreach (var (k, v) in kwargs) dict[k] = v;
        return dict;
    }

    /// <summary>Python's strftime for the directives chat templates use.</summary>
    public static string Strftime(DateTime t, string format)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            char d = format[++i];
            sb.Append(d switch
            {
                'a' => t.ToString("ddd", ci),
                'A' => t.ToString("dddd", ci),
                'b' or 'h' => t.ToString("MMM", ci),
                'B' => t.ToString("MMMM", ci),
                'd' => t.ToString("dd", ci),
                'e' => t.Day.ToString(ci).PadLeft(2),
                'H' => t.ToString("HH", ci),
                'I' => t.ToString("hh", ci),
                'j' => t.DayOfYear.ToString("000", ci),
                'm' => t.ToString("MM", ci),
                'M' => t.ToString("mm", ci),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'S' => t.ToString("ss", ci),
                'y' => t.ToString("yy", ci),
                'Y' => t.Year.ToString(ci),
                'w' => ((int)t.DayOfWeek).ToString(ci),
                'F' => t.ToString("yyyy-MM-dd", ci),
                'T' => t.ToString("HH:mm:ss", ci),
                'Z' or 'z' => "",
                '%' => "%",
                _ => "%" + d,
            });
        }
        return sb.ToString();
    }

    // ---------------- filters ----------------

    public static object? ApplyFilter(TemplateRenderer r, FilterExpr node, object? value, List<object?> args, Dictionary<string, object?> kwargs) =>
        Filter(r, node, node.Name, value, args, kwargs);

    private static object? Filter(TemplateRenderer r, Node at, string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        switch (name)
        {
            case "default" or "d":
            {
                bool boolean = PyValue.IsTrue(Arg(args, kwargs, 1, "boolean", false));
                return value is Undefined || (boolean && !PyValue.IsTrue(value)) ? Arg(args, kwargs, 0, "default_value", "") : value;
            }
            case "length" or "count":
                return value switch
                {
                    string s => (long)s.Length,
                    List<object?> l => (long)l.Count,
                    OrderedDictionary<string, object?> d => (long)d.Count,
                    RangeValue rv => rv.Count,
                    Undefined => 0L,
                    Namespace ns => (long)ns.Attributes.Count,
                    _ => throw r.Fail(at, $"object of type '{PyValue.TypeName(value)}' has no len()"),
                };
            case "tojson":
                return ToJson(r, at, value, args, kwargs);
            case "safe" or "string":
                return r.Str(value, at);
            case "escape" or "e":
                return r.Str(value, at).Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;")
                    .Replace("\"", "&#34;").Replace("'", "&#39;");
            case "list":
                return r.ToList(value, at);
            case "first":
            {
                var items = r.Iterate(value, at);
                return items.Count > 0 ? items[0] : new Undefined("first of an empty sequence");
            }
            case "last":
            {
                var items = r.Iterate(value, at);
                return items.Count > 0 ? items[^1] : new Undefined("last of an empty sequence");
            }
            case "join":
            {
                string separator = r.Str(Arg(args, kwargs, 0, "d", ""), at);
                var attribute = Arg(args, kwargs, 1, "attribute", null);
                var sb = new StringBuilder();
                bool first = true;
                foreach (var item in r.Iterate(value, at))
                {
                    if (!first) sb.Append(separator);
                    first = false;
                    sb.Append(r.Str(attribute == null ? item : AttributePath(r, at, item, attribute), at));
                    r.CheckStringLength(sb.Length, at);
                }
                return sb.ToString();
            }
            case "attr":
                return r.GetAttr(value, r.Str(Arg(args, kwargs, 0, "name", ""), at), at);
            case "selectattr" or "rejectattr" or "select" or "reject":
                return Select(r, at, name, value, args);
            case "map":
                return Map(r, at, value, args, kwargs);
            case "items":
                if (value is Undefined) return new List<object?>();
                if (value is not OrderedDictionary<string, object?> dict) throw r.Fail(at, $"items filter needs a dict, got '{PyValue.TypeName(value)}'");
                return dict.Select(p => (object?)new TupleValue { p.Key, p.Value }).ToList();
            case "dictsort":
            {
                if (value is not OrderedDictionary<string, object?> sortable) throw r.Fail(at, $"dictsort needs a dict, got '{PyValue.TypeName(value)}'");
                bool caseSensitive = PyValue.IsTrue(Arg(args, kwargs, 0, "case_sensitive", false));
                bool byValue = r.Str(Arg(args, kwargs, 1, "by", "key"), at) == "value";
                bool reverse = PyValue.IsTrue(Arg(args, kwargs, 2, "reverse", false));
                var pairs = sortable.Select(p => (object?)new TupleValue { p.Key, p.Value }).ToList();
                return SortBy(r, at, pairs, p => SortKey(((List<object?>)p!)[byValue ? 1 : 0], caseSensitive), reverse);
            }
            case "sort":
            {
                bool reverse = PyValue.IsTrue(Arg(args, kwargs, 0, "reverse", false));
                bool caseSensitive = PyValue.IsTrue(Arg(args, kwargs, 1, "case_sensitive", false));
                var attribute = Arg(args, kwargs, 2, "attribute", null);
                return SortBy(r, at, r.ToList(value, at),
                    item => SortKey(attribute == null ? item : AttributePath(r, at, item, attribute), caseSensitive), reverse);
            }
            case "unique":
            {
                bool caseSensitive = PyValue.IsTrue(Arg(args, kwargs, 0, "case_sensitive", false));
                var attribute = Arg(args, kwargs, 1, "attribute", null);
                var result = new List<object?>();
                var seen = new List<object?>();
                foreach (var item in r.Iterate(value, at))
                {
                    var key = SortKey(attribute == null ? item : AttributePath(r, at, item, attribute), caseSensitive);
                    if (seen.Any(s => PyValue.Equals(s, key))) continue;
                    seen.Add(key);
                    result.Add(item);
                }
                return result;
            }
            case "min" or "max":
            {
                bool caseSensitive = PyValue.IsTrue(Arg(args, kwargs, 0, "case_sensitive", false));
                var attribute = Arg(args, kwargs, 1, "attribute", null);
                var sorted = SortBy(r, at, r.ToList(value, at),
                    item => SortKey(attribute == null ? item : AttributePath(r, at, item, attribute), caseSensitive), false);
                if (sorted.Count == 0) return new Undefined($"{name} of an empty sequence");
                return name == "min" ? sorted[0] : sorted[^1];
            }
            case "sum":
            {
                var attribute = Arg(args, kwargs, 0, "attribute", null);
                object? total = Arg(args, kwargs, 1, "start", 0L);
                foreach (var item in r.Iterate(value, at))
                {
                    var v = attribute == null ? item : AttributePath(r, at, item, attribute);
                    if (!PyValue.IsNumber(v) || !PyValue.IsNumber(total)) throw r.Fail(at, $"sum needs numbers, got '{PyValue.TypeName(v)}'");
                    total = total is double || v is double ? PyValue.ToDouble(total) + PyValue.ToDouble(v) : (object)checked(PyValue.ToLong(total) + PyValue.ToLong(v));
                }
                return total;
            }
            case "reverse":
                if (value is string rs)
                {
                    var chars = rs.ToCharArray();
                    Array.Reverse(chars);
                    return new string(chars);
                }
                var reversed = r.ToList(value, at);
                reversed.Reverse();
                return reversed;
            case "int":
                return ToInt(r, at, value, Arg(args, kwargs, 0, "default", 0L), Arg(args, kwargs, 1, "base", 10L));
            case "float":
                return ToFloat(value, Arg(args, kwargs, 0, "default", 0.0));
            case "abs":
                return value switch
                {
                    long l => (object)checked(Math.Abs(l)),
                    double d => Math.Abs(d),
                    bool b => b ? 1L : 0L,
                    _ => throw r.Fail(at, $"bad operand type for abs(): '{PyValue.TypeName(value)}'"),
                };
            case "round":
                return Round(r, at, value, Arg(args, kwargs, 0, "precision", 0L), r.Str(Arg(args, kwargs, 1, "method", "common"), at));
            case "wordcount":
                return (long)r.Str(value, at).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length;
            case "batch":
            {
                long size = IntArg(r, at, Arg(args, kwargs, 0, "linecount", 1L), "batch size");
                if (size <= 0) throw r.Fail(at, "batch size must be positive");
                var fill = Arg(args, kwargs, 1, "fill_with", null);
                var batches = new List<object?>();
                List<object?>? current = null;
                foreach (var item in r.Iterate(value, at))
                {
                    if (current == null || current.Count == size) batches.Add(current = []);
                    current.Add(item);
                }
                if (current != null && fill != null) while (current.Count < size) current.Add(fill);
                return batches;
            }
        }

        // The rest act on the value as a string.
        string str = r.Str(value, at);
        switch (name)
        {
            case "trim":
            {
                var chars = Arg(args, kwargs, 0, "chars", null);
                return chars == null ? str.Trim() : str.Trim(r.Str(chars, at).ToCharArray());
            }
            case "upper": return str.ToUpperInvariant();
            case "lower": return str.ToLowerInvariant();
            case "capitalize": return Capitalize(str);
            case "title": return TitleFilter(str);
            case "replace":
            {
                string old = r.Str(Arg(args, kwargs, 0, "old", ""), at), replacement = r.Str(Arg(args, kwargs, 1, "new", ""), at);
                var count = Arg(args, kwargs, 2, "count", null);
                return Replace(r, at, str, old, replacement, count == null ? -1 : IntArg(r, at, count, "count"));
            }
            case "indent":
                return Indent(r, at, str, Arg(args, kwargs, 0, "width", 4L), PyValue.IsTrue(Arg(args, kwargs, 1, "first", false)),
                    PyValue.IsTrue(Arg(args, kwargs, 2, "blank", false)));
        }
        throw r.Fail(at, $"unknown filter '{name}'");
    }

    private static string ToJson(TemplateRenderer r, Node at, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        // Hugging Face: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
        bool ensureAscii = PyValue.IsTrue(Arg(args, kwargs, 0, "ensure_ascii", false));
        var indentArg = Arg(args, kwargs, 1, "indent", null);
        var separators = Arg(args, kwargs, 2, "separators", null);
        bool sortKeys = PyValue.IsTrue(Arg(args, kwargs, 3, "sort_keys", false));
        string? indent = indentArg switch
        {
            null => null,
            long n => new string(' ', (int)Math.Clamp(n, 0, 64)),
            string s => s,
            _ => throw r.Fail(at, $"tojson indent must be an integer or a string, not '{PyValue.TypeName(indentArg)}'"),
        };
        string item = indent == null ? ", " : ",", key = ": ";
        if (separators != null)
        {
            if (separators is not List<object?> { Count: 2 } pair || pair[0] is not string a || pair[1] is not string b)
                throw r.Fail(at, "tojson separators must be a pair of strings");
            (item, key) = (a, b);
        }
        string json = TemplateJson.Serialize(value, new TemplateJson.Settings(indent, item, key, ensureAscii, sortKeys), r.Options.MaxOutputChars);
        r.CheckStringLength(json.Length, at);
        return json;
    }

    /// <summary><c>item.a.b</c> for selectattr/map/sort's attribute argument (dotted paths, integer parts index lists).</summary>
    private static object? AttributePath(TemplateRenderer r, Node at, object? item, object? path)
    {
        foreach (string part in r.Str(path, at).Split('.'))
        {
            if (item is Undefined) return item;
            object? key = long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long index) ? index : part;
            item = item is OrderedDictionary<string, object?> dict
                ? dict.TryGetValue(part, out var v) ? v : new Undefined($"no attribute '{part}'")
                : r.GetItem(item, key, at);
        }
        return item;
    }

    private static List<object?> Select(TemplateRenderer r, Node at, string name, object? value, List<object?> args)
    {
        bool byAttribute = name.EndsWith("attr", StringComparison.Ordinal);
        bool keep = name.StartsWith("select", StringComparison.Ordinal);
        int testIndex = byAttribute ? 1 : 0;
        if (byAttribute && args.Count == 0) throw r.Fail(at, $"{name} needs an attribute name");
        string? test = args.Count > testIndex ? r.Str(args[testIndex], at) : null;
        var testArgs = args.Count > testIndex + 1 ? args.GetRange(testIndex + 1, args.Count - testIndex - 1) : [];
        if (test != null && !TestNames.Contains(test)) throw r.Fail(at, $"unknown test '{test}' in {name}");
        var result = new List<object?>();
        foreach (var item in r.Iterate(value, at))
        {
            var subject = byAttribute ? AttributePath(r, at, item, args[0]) : item;
            bool pass = test == null ? PyValue.IsTrue(subject) : Test(r, at, test, subject, testArgs);
            if (pass == keep) result.Add(item);
        }
        return result;
    }

    private static List<object?> Map(TemplateRenderer r, Node at, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var result = new List<object?>();
        if (kwargs.TryGetValue("attribute", out var attribute))
        {
            kwargs.TryGetValue("default", out var fallback);
            foreach (var item in r.Iterate(value, at))
            {
                var v = AttributePath(r, at, item, attribute);
                result.Add(v is Undefined && kwargs.ContainsKey("default") ? fallback : v);
            }
            return result;
        }
        if (args.Count == 0) throw r.Fail(at, "map needs a filter name or attribute=");
        string filter = r.Str(args[0], at);
        if (!FilterNames.Contains(filter)) throw r.Fail(at, $"unknown filter '{filter}' in map");
        var rest = args.GetRange(1, args.Count - 1);
        foreach (var item in r.Iterate(value, at))
            result.Add(Filter(r, at, filter, item, rest, kwargs));
        return result;
    }

    private static object? SortKey(object? v, bool caseSensitive) =>
        !caseSensitive && v is string s ? s.ToLowerInvariant() : v;

    private static List<object?> SortBy(TemplateRenderer r, Node at, List<object?> items, Func<object?, object?> key, bool reverse)
    {
        var keyed = items.Select((item, i) => (Key: key(item), Index: i, Item: item)).ToList();
        // Check first that every key orders against the first one, so the comparison below cannot fail mid-sort.
        foreach (var k in keyed)
            if (PyValue.Compare(keyed[0].Key, k.Key) == null)
                throw r.Fail(at, $"cannot order '{PyValue.TypeName(keyed[0].Key)}' and '{PyValue.TypeName(k.Key)}'");
        keyed.Sort((a, b) =>
        {
            int c = PyValue.Compare(a.Key, b.Key) ?? 0;
            if (reverse) c = -c;
            return c != 0 ? c : a.Index.CompareTo(b.Index);
        });
        return keyed.Select(k => k.Item).ToList();
    }

    private static object? ToInt(TemplateRenderer r, Node at, object? value, object? fallback, object? baseArg)
    {
        switch (value)
        {
            case long l: return l;
            case bool b: return b ? 1L : 0L;
            case double d: return double.IsFinite(d) && Math.Abs(d) < 9.2e18 ? (long)d : fallback;
            case string s:
            {
                int numberBase = (int)IntArg(r, at, baseArg, "int base");
                string t = s.Trim().Replace("_", "");
                try
                {
                    if (numberBase == 10 && long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v)) return v;
                    if (numberBase is 2 or 8 or 16 && t.Length > 0) return Convert.ToInt64(t, numberBase);
                }
                catch (FormatException) { }
                catch (OverflowException) { }
                return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && double.IsFinite(f) && Math.Abs(f) < 9.2e18
                    ? (long)f : fallback;
            }
            default: return fallback;
        }
    }

    private static object? ToFloat(object? value, object? fallback) => value switch
    {
        long l => (double)l,
        bool b => b ? 1.0 : 0.0,
        double d => d,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double f) => f,
        _ => fallback,
    };

    private static object? Round(TemplateRenderer r, Node at, object? value, object? precisionArg, string method)
    {
        if (!PyValue.IsNumber(value)) throw r.Fail(at, $"round needs a number, got '{PyValue.TypeName(value)}'");
        int precision = (int)Math.Clamp(IntArg(r, at, precisionArg, "round precision"), -15, 15);
        double v = PyValue.ToDouble(value), scale = Math.Pow(10, precision);
        return method switch
        {
            "common" => precision >= 0 ? Math.Round(v, precision, MidpointRounding.ToEven) : Math.Round(v / Math.Pow(10, -precision), MidpointRounding.ToEven) * Math.Pow(10, -precision),
            "ceil" => Math.Ceiling(v * scale) / scale,
            "floor" => Math.Floor(v * scale) / scale,
            _ => throw r.Fail(at, $"round method must be 'common', 'ceil' or 'floor', not '{method}'"),
        };
    }

    private static string Capitalize(string s) =>
        s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Jinja's title filter: words start after whitespace, '-', or an opening bracket.</summary>
    private static string TitleFilter(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool start = true;
        foreach (char c in s)
        {
            bool separator = char.IsWhiteSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            sb.Append(separator ? c : start ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            start = separator;
        }
        return sb.ToString();
    }

    /// <summary>Python's str.title(): a letter after a non-letter starts a word.</summary>
    private static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return sb.ToString();
    }

    private static string Replace(TemplateRenderer r, Node at, string s, string old, string replacement, long count)
    {
        var sb = new StringBuilder();
        long done = 0;
        if (old.Length == 0)
        {
            for (int i = 0; i <= s.Length; i++)
            {
                if (count < 0 || done < count) { sb.Append(replacement); done++; }
                if (i < s.Length) sb.Append(s[i]);
                r.CheckStringLength(sb.Length, at);
            }
            return sb.ToString();
        }
        int pos = 0;
        while (count < 0 || done < count)
        {
            int found = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (found < 0) break;
            sb.Append(s, pos, found - pos).Append(replacement);
            r.CheckStringLength(sb.Length, at);
            pos = found + old.Length;
            done++;
        }
        sb.Append(s, pos, s.Length - pos);
        r.CheckStringLength(sb.Length, at);
        return sb.ToString();
    }

    private static string Indent(TemplateRenderer r, Node at, string s, object? width, bool first, bool blank)
    {
        string indentation = width is string w ? w : new string(' ', (int)Math.Clamp(IntArg(r, at, width, "indent width"), 0, 1024));
        var lines = SplitLines(s + "\n");
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Count; i++)
        {
            if (i > 0) sb.Append('\n');
            if (i > 0 && (blank || lines[i].Length > 0)) sb.Append(indentation);
            sb.Append(lines[i]);
            r.CheckStringLength(sb.Length, at);
        }
        return first ? indentation + sb : sb.ToString();
    }

    /// <summary>Python's str.splitlines() for \n, \r\n and \r.</summary>
    private static List<string> SplitLines(string s)
    {
        var lines = new List<string>();
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] is not ('\n' or '\r')) continue;
            lines.Add(s[start..i]);
            if (s[i] == '\r' && i + 1 < s.Length && s[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < s.Length) lines.Add(s[start..]);
        return lines;
    }

    // ---------------- tests ----------------

    public static bool ApplyTest(TemplateRenderer r, Node at, string name, object? value, List<object?> args) =>
        Test(r, at, name, value, args);

    private static bool Test(TemplateRenderer r, Node at, string name, object? value, List<object?> args)
    {
        object? Other() => args.Count > 0 ? args[0] : throw r.Fail(at, $"test '{name}' needs an argument");
        int Order()
        {
            var other = Other();
            return PyValue.Compare(value, other)
                   ?? throw r.Fail(at, $"cannot compare '{PyValue.TypeName(value)}' and '{PyValue.TypeName(other)}'");
        }
        return name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value == null,
            "string" => value is string,
            "number" => value is long or double or bool,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is OrderedDictionary<string, object?>,
            "iterable" or "sequence" => value is string or List<object?> or OrderedDictionary<string, object?> or RangeValue,
            "callable" => value is TemplateCallable,
            "equalto" or "eq" or "==" => PyValue.Equals(value, Other()),
            "ne" or "!=" => !PyValue.Equals(value, Other()),
            "lt" or "<" or "lessthan" => Order() < 0,
            "le" or "<=" => Order() <= 0,
            "gt" or ">" or "greaterthan" => Order() > 0,
            "ge" or ">=" => Order() >= 0,
            "in" => r.Contains(Other(), value, at),
            "odd" => IntArg(r, at, value, "odd test value") % 2 != 0,
            "even" => IntArg(r, at, value, "even test value") % 2 == 0,
            "divisibleby" => IntArg(r, at, Other(), "divisibleby argument") is long n && n != 0
                ? IntArg(r, at, value, "divisibleby value") % n == 0
                : throw r.Fail(at, "divisibleby 0"),
            "sameas" => value is null or bool ? Equals(value, Other()) : ReferenceEquals(value, Other()),
            "lower" => value is string s && s == s.ToLowerInvariant(),
            "upper" => value is string u && u == u.ToUpperInvariant(),
            "escaped" => false,
            _ => throw r.Fail(at, $"unknown test '{name}'"),
        };
    }

    // ---------------- methods ----------------

    private static readonly HashSet<string> StringMethods =
    [
        "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit", "replace", "upper", "lower", "title",
        "capitalize", "find", "rfind", "count", "join", "isdigit", "isalpha", "isalnum", "isspace", "islower",
        "isupper", "splitlines", "removeprefix", "removesuffix", "partition", "rpartition",
    ];

    public static bool IsMethod(object target, string name) => target switch
    {
        string => StringMethods.Contains(name),
        List<object?> => name is "index" or "count",
        _ => false,
    };

    public static object? CallMethod(TemplateRenderer r, object? target, string method, List<object?> args, Dictionary<string, object?> kwargs, Node at)
    {
        switch (target)
        {
            case OrderedDictionary<string, object?> dict:
                return method switch
                {
                    "items" => dict.Select(p => (object?)new TupleValue { p.Key, p.Value }).ToList(),
                    "keys" => dict.Keys.Cast<object?>().ToList(),
                    "values" => dict.Values.ToList(),
                    "get" => args.Count > 0 && dict.TryGetValue(r.Str(args[0], at), out var v) ? v : (args.Count > 1 ? args[1] : null),
                    _ => throw r.Fail(at, $"dict has no method '{method}'"),
                };
            case List<object?> list:
            {
                var item = args.Count > 0 ? args[0] : throw r.Fail(at, $"list.{method}() needs an argument");
                if (method == "count") return (long)list.Count(x => PyValue.Equals(x, item));
                int index = list.FindIndex(x => PyValue.Equals(x, item));
                if (index < 0) throw r.Fail(at, $"{PyValue.Repr(item, 100)} is not in list");
                return (long)index;
            }
            case string s:
                return StringMethod(r, at, s, method, args, kwargs);
        }
        throw r.Fail(at, $"'{PyValue.TypeName(target)}' object has no method '{method}'");
    }

    private static object? StringMethod(TemplateRenderer r, Node at, string s, string method, List<object?> args, Dictionary<string, object?> kwargs)
    {
        string? StrArg(int i, string name)
        {
            var v = Arg(args, kwargs, i, name, null);
            return v == null ? null : v as string ?? throw r.Fail(at, $"str.{method}() argument must be a string, not '{PyValue.TypeName(v)}'");
        }
        switch (method)
        {
            case "strip":
            case "lstrip":
            case "rstrip":
            {
                string? chars = StrArg(0, "chars");
                char[]? set = chars?.ToCharArray();
                return method switch
                {
                    "strip" => set == null ? s.Trim() : s.Trim(set),
                    "lstrip" => set == null ? s.TrimStart() : s.TrimStart(set),
                    _ => set == null ? s.TrimEnd() : s.TrimEnd(set),
                };
            }
            case "startswith":
            case "endswith":
            {
                var prefix = Arg(args, kwargs, 0, "prefix", null);
                var candidates = prefix is List<object?> options ? options : [prefix];
                foreach (var c in candidates)
                {
                    if (c is not string p) throw r.Fail(at, $"str.{method}() needs a string or a tuple of strings");
                    if (method == "startswith" ? s.StartsWith(p, StringComparison.Ordinal) : s.EndsWith(p, StringComparison.Ordinal)) return true;
                }
                return false;
            }
            case "split":
            case "rsplit":
            {
                string? sep = StrArg(0, "sep");
                long max = Arg(args, kwargs, 1, "maxsplit", -1L) is long m ? m : -1;
                if (sep == null) return SplitWhitespace(s, max, method == "rsplit");
                if (sep.Length == 0) throw r.Fail(at, "empty separator");
                var parts = new List<object?>();
                if (method == "split")
                {
                    int pos = 0;
                    while (max < 0 || parts.Count < max)
                    {
                        int found = s.IndexOf(sep, pos, StringComparison.Ordinal);
                        if (found < 0) break;
                        parts.Add(s[pos..found]);
                        pos = found + sep.Length;
                    }
                    parts.Add(s[pos..]);
                    return parts;
                }
                int end = s.Length;
                var reversed = new List<object?>();
                while (max < 0 || reversed.Count < max)
                {
                    int found = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
                    if (found < 0 || found + sep.Length > end) break;
                    reversed.Add(s[(found + sep.Length)..end]);
                    end = found;
                }
                reversed.Add(s[..end]);
                reversed.Reverse();
                return reversed;
            }
            case "replace":
            {
                string old = StrArg(0, "old") ?? "", replacement = StrArg(1, "new") ?? "";
                long count = Arg(args, kwargs, 2, "count", -1L) is long c ? c : -1;
                return Replace(r, at, s, old, replacement, count);
            }
            case "upper": return s.ToUpperInvariant();
            case "lower": return s.ToLowerInvariant();
            case "title": return PyTitle(s);
            case "capitalize": return Capitalize(s);
            case "find": return (long)s.IndexOf(StrArg(0, "sub") ?? "", StringComparison.Ordinal);
            case "rfind": return (long)s.LastIndexOf(StrArg(0, "sub") ?? "", StringComparison.Ordinal);
            case "count":
            {
                string sub = StrArg(0, "sub") ?? "";
                if (sub.Length == 0) return (long)s.Length + 1;
                long n = 0;
                for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
                return n;
            }
            case "join":
            {
                var sb = new StringBuilder();
                bool first = true;
                foreach (var item in r.Iterate(Arg(args, kwargs, 0, "iterable", null), at))
                {
                    if (!first) sb.Append(s);
                    first = false;
                    sb.Append(item as string ?? throw r.Fail(at, $"str.join() needs strings, found '{PyValue.TypeName(item)}'"));
                    r.CheckStringLength(sb.Length, at);
                }
                return sb.ToString();
            }
            case "isdigit": return s.Length > 0 && s.All(char.IsDigit);
            case "isalpha": return s.Length > 0 && s.All(char.IsLetter);
            case "isalnum": return s.Length > 0 && s.All(char.IsLetterOrDigit);
            case "isspace": return s.Length > 0 && s.All(char.IsWhiteSpace);
            case "islower": return s.Any(char.IsLetter) && s == s.ToLowerInvariant();
            case "isupper": return s.Any(char.IsLetter) && s == s.ToUpperInvariant();
            case "splitlines": return SplitLines(s).Cast<object?>().ToList();
            case "removeprefix":
            {
                string prefix = StrArg(0, "prefix") ?? "";
                return s.StartsWith(prefix, StringComparison.Ordinal) ? s[prefix.Length..] : s;
            }
            case "removesuffix":
            {
                string suffix = StrArg(0, "suffix") ?? "";
                return suffix.Length > 0 && s.EndsWith(suffix, StringComparison.Ordinal) ? s[..^suffix.Length] : s;
            }
            case "partition":
            case "rpartition":
            {
                string sep = StrArg(0, "sep") ?? "";
                if (sep.Length == 0) throw r.Fail(at, "empty separator");
                int i = method == "partition" ? s.IndexOf(sep, StringComparison.Ordinal) : s.LastIndexOf(sep, StringComparison.Ordinal);
                if (i < 0) return method == "partition" ? new TupleValue { s, "", "" } : new TupleValue { "", "", s };
                return new TupleValue { s[..i], sep, s[(i + sep.Length)..] };
            }
        }
        throw r.Fail(at, $"str has no method '{method}'");
    }

    private static List<object?> SplitWhitespace(string s, long max, bool fromRight)
    {
        var words = s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (max < 0 || words.Length <= max) return words.Cast<object?>().ToList();
        // Python keeps the unsplit remainder (without its outer whitespace) as the last (or first) part.
        var parts = new List<object?>();
        if (!fromRight)
        {
            int pos = 0;
            for (int i = 0; i < max; i++)
            {
                while (char.IsWhiteSpace(s[pos])) pos++;
                int start = pos;
                while (!char.IsWhiteSpace(s[pos])) pos++;
                parts.Add(s[start..pos]);
            }
            parts.Add(s[pos..].TrimStart());
            return parts;
        }
        int end = s.Length;
        var reversed = new List<object?>();
        for (int i = 0; i < max; i++)
        {
            while (char.IsWhiteSpace(s[end - 1])) end--;
            int stop = end;
            while (!char.IsWhiteSpace(s[end - 1])) end--;
            reversed.Add(s[end..stop]);
        }
        reversed.Add(s[..end].TrimEnd());
        reversed.Reverse();
        return reversed;
    }
}
