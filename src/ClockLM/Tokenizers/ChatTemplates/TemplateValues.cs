using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ClockLM.Tokenizers.ChatTemplates;

// Template values are plain objects with Python's meaning:
//   null = None, bool, long = int, double = float, string = str, List<object?> = list/tuple,
//   OrderedDictionary<string, object?> = dict, and the classes below.

/// <summary>A name or attribute that does not exist. Renders as "", is falsy, fails when used as a value.</summary>
internal sealed class Undefined(string hint)
{
    public string Hint { get; } = hint;
}

/// <summary>A Python tuple: a list that prints as <c>(a, b)</c>.</summary>
internal sealed class TupleValue : List<object?>
{
    public TupleValue() { }
    public TupleValue(IEnumerable<object?> items) : base(items) { }
}

/// <summary>The mutable object <c>namespace(...)</c> returns: the only thing <c>{% set ns.x = ... %}</c> may change.</summary>
internal sealed class Namespace
{
    public OrderedDictionary<string, object?> Attributes { get; } = new();
}

/// <summary><c>range(start, stop, step)</c>, kept lazy so that a huge range costs nothing until iterated.</summary>
internal sealed record RangeValue(long Start, long Stop, long Step)
{
    public long Count => Step > 0
        ? (Stop > Start ? (Stop - Start + Step - 1) / Step : 0)
        : (Start > Stop ? (Start - Stop - Step - 1) / -Step : 0);

    public long this[long i] => Start + i * Step;
}

/// <summary>Anything a template can call: macros, globals such as <c>range</c>, bound methods such as <c>s.strip</c>.</summary>
internal abstract class TemplateCallable
{
    public abstract string Name { get; }
    public abstract object? Invoke(TemplateRenderer renderer, List<object?> args, Dictionary<string, object?> kwargs, Node at);
}

internal sealed class BuiltinFunction(string name, Func<TemplateRenderer, List<object?>, Dictionary<string, object?>, Node, object?> body)
    : TemplateCallable
{
    public override string Name => name;
    public override object? Invoke(TemplateRenderer renderer, List<object?> args, Dictionary<string, object?> kwargs, Node at) =>
        body(renderer, args, kwargs, at);
}

/// <summary>A method looked up on a value (<c>message.content.strip</c>), called later.</summary>
internal sealed class BoundMethod(object? target, string method) : TemplateCallable
{
    public object? Target { get; } = target;
    public override string Name => method;
    public override object? Invoke(TemplateRenderer renderer, List<object?> args, Dictionary<string, object?> kwargs, Node at) =>
        TemplateBuiltins.CallMethod(renderer, Target, method, args, kwargs, at);
}

/// <summary>The <c>loop</c> variable inside a for loop.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items, LoopContext? parent)
{
    public int Index0 { get; set; }
    public IReadOnlyList<object?> Items { get; } = items;
    public LoopContext? Parent { get; } = parent;
    public int Depth => Parent == null ? 1 : Parent.Depth + 1;
    public ForNode? Node { get; init; }
    public Scope? Scope { get; init; }

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(Items.Count - Index0),
        "revindex0" => (long)(Items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Items.Count - 1,
        "length" => (long)Items.Count,
        "depth" => (long)Depth,
        "depth0" => (long)Depth - 1,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 + 1 < Items.Count ? Items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => new BuiltinFunction("loop.cycle", (_, args, _, _) => args.Count == 0 ? null : args[Index0 % args.Count]),
        _ => new Undefined($"loop has no attribute '{name}'"),
    };
}

/// <summary>Python's view of values: truth, str(), repr(), ==, ordering.</summary>
internal static class PyValue
{
    public static bool IsTrue(object? v) => v switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        OrderedDictionary<string, object?> d => d.Count > 0,
        RangeValue r => r.Count > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        TupleValue => "tuple",
        List<object?> => "list",
        OrderedDictionary<string, object?> => "dict",
        RangeValue => "range",
        Namespace => "Namespace",
        LoopContext => "LoopContext",
        TemplateCallable => "function",
        _ => v.GetType().Name,
    };

    /// <summary>Python's str(v). <paramref name="limit"/> caps the length so cyclic or huge values stop early.</summary>
    public static string Str(object? v, int limit)
    {
        if (v is string s) return s;
        if (v is Undefined) return "";
        var sb = new StringBuilder();
        Write(sb, v, repr: false, limit, 0);
        return sb.ToString();
    }

    public static string Repr(object? v, int limit)
    {
        var sb = new StringBuilder();
        Write(sb, v, repr: true, limit, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? v, bool repr, int limit, int depth)
    {
        if (sb.Length > limit) throw new StringLimitException();
        if (depth > 64) throw new StringLimitException();
        switch (v)
        {
            case null: sb.Append("None"); break;
            case Undefined: break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FormatFloat(d)); break;
            case string s:
                if (repr) AppendRepr(sb, s); else sb.Append(s);
                break;
            case List<object?> list:
                bool tuple = list is TupleValue;
                sb.Append(tuple ? '(' : '[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    Write(sb, list[i], true, limit, depth + 1);
                    if (sb.Length > limit) throw new StringLimitException();
                }
                if (tuple && list.Count == 1) sb.Append(',');
                sb.Append(tuple ? ')' : ']');
                break;
            case OrderedDictionary<string, object?> dict:
                sb.Append('{');
                bool first = true;
                foreach (var (key, value) in dict)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendRepr(sb, key);
                    sb.Append(": ");
                    Write(sb, value, true, limit, depth + 1);
                    if (sb.Length > limit) throw new StringLimitException();
                }
                sb.Append('}');
                break;
            case RangeValue r:
                sb.Append("range(").Append(r.Start).Append(", ").Append(r.Stop);
                if (r.Step != 1) sb.Append(", ").Append(r.Step);
                sb.Append(')');
                break;
            case Namespace ns:
                sb.Append("<Namespace {");
                bool firstAttr = true;
                foreach (var (key, value) in ns.Attributes)
                {
                    if (!firstAttr) sb.Append(", ");
                    firstAttr = false;
                    AppendRepr(sb, key);
                    sb.Append(": ");
                    Write(sb, value, true, limit, depth + 1);
                }
                sb.Append("}>");
                break;
            case TemplateCallable c: sb.Append("<function ").Append(c.Name).Append('>'); break;
            case LoopContext: sb.Append("<LoopContext>"); break;
            default: sb.Append(v); break;
        }
    }

    private static void AppendRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append(quote);
    }

    /// <summary>Python's repr(float): shortest round-trip digits, exponent form below 1e-4 and from 1e16.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // Shortest round-trip digits come from "R"; split it into digits and a decimal exponent.
        string shortest = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        string mantissa = shortest;
        int exponent = 0;
        int e = shortest.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            mantissa = shortest[..e];
            exponent = int.Parse(shortest[(e + 1)..], CultureInfo.InvariantCulture);
        }
        int dot = mantissa.IndexOf('.');
        string digits = dot < 0 ? mantissa : mantissa.Remove(dot, 1);
        int pointPos = (dot < 0 ? mantissa.Length : dot) + exponent;   // digits before the decimal point
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; pointPos--; }
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int sciExp = pointPos - 1;
        string sign = d < 0 ? "-" : "";
        if (sciExp < -4 || sciExp >= 16)
        {
            string m = digits.Length > 1 ? digits[0] + "." + digits[1..] : digits;
            return $"{sign}{m}e{(sciExp < 0 ? "-" : "+")}{Math.Abs(sciExp):00}";
        }
        if (pointPos <= 0) return sign + "0." + new string('0', -pointPos) + digits;
        if (pointPos >= digits.Length) return sign + digits + new string('0', pointPos - digits.Length) + ".0";
        return sign + digits[..pointPos] + "." + digits[pointPos..];
    }

    /// <summary>Most elements one comparison may visit: values shared inside lists can make a small template
    /// compare exponentially many elements.</summary>
    public const long MaxCompareSteps = 1_000_000;

    public static new bool Equals(object? a, object? b)
    {
        long budget = MaxCompareSteps;
        return Equals(a, b, ref budget, 0);
    }

    private static bool Equals(object? a, object? b, ref long budget, int depth)
    {
        if (--budget < 0 || depth > 64) throw new CompareLimitException();
        if (ReferenceEquals(a, b) && a is not double) return true;
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a == null || b == null) return a == null && b == null;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case string sa: return b is string sb && sa == sb;
            case List<object?> la:
                if (b is not List<object?> lb || la.Count != lb.Count || (la is TupleValue) != (lb is TupleValue)) return false;
                for (int i = 0; i < la.Count; i++)
                    if (!Equals(la[i], lb[i], ref budget, depth + 1)) return false;
                return true;
            case OrderedDictionary<string, object?> da:
                if (b is not OrderedDictionary<string, object?> db || da.Count != db.Count) return false;
                foreach (var (key, value) in da)
                    if (!db.TryGetValue(key, out var other) || !Equals(value, other, ref budget, depth + 1)) return false;
                return true;
            case RangeValue ra: return b is RangeValue rb && ra == rb;
            default: return ReferenceEquals(a, b);
        }
    }

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => 0,
    };

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => d,
        _ => 0,
    };

    /// <summary>Python ordering; null when the two values cannot be ordered.</summary>
    public static int? Compare(object? a, object? b)
    {
        long budget = MaxCompareSteps;
        return Compare(a, b, ref budget, 0);
    }

    private static int? Compare(object? a, object? b, ref long budget, int depth)
    {
        if (--budget < 0 || depth > 64) throw new CompareLimitException();
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a).CompareTo(ToDouble(b));
            return ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string sa && b is string sb) return Math.Sign(string.CompareOrdinal(sa, sb));
        if (a is List<object?> la && b is List<object?> lb)
        {
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (Equals(la[i], lb[i], ref budget, depth + 1)) continue;
                return Compare(la[i], lb[i], ref budget, depth + 1);
            }
            return la.Count.CompareTo(lb.Count);
        }
        return null;
    }

    /// <summary>Converts .NET data (strings, numbers, dictionaries, lists, JSON nodes and elements) to template values.</summary>
    public static object? FromDotNet(object? v, int depth = 0)
    {
        if (depth > 64) throw new ArgumentException("value nests deeper than 64 levels");
        switch (v)
        {
            case null: return null;
            case string or bool or long or double: return v;
            case int i: return (long)i;
            case short s: return (long)s;
            case byte b: return (long)b;
            case sbyte sb: return (long)sb;
            case ushort us: return (long)us;
            case uint ui: return (long)ui;
            case ulong ul: return checked((long)ul);
            case float f: return (double)f;
            case decimal m: return (double)m;
            case char c: return c.ToString();
            case JsonElement e: return FromJson(e, depth);
            case JsonNode n: return FromJson(JsonDocument.Parse(n.ToJsonString()).RootElement, depth);
            case OrderedDictionary<string, object?> od: return od;
            case ChatToolCall call: return ToolCallValue(call, depth);
            case IEnumerable<KeyValuePair<string, object?>> pairs:
            {
                var dict = new OrderedDictionary<string, object?>();
                foreach (var (key, value) in pairs) dict[key] = FromDotNet(value, depth + 1);
                return dict;
            }
            case IDictionary d:
            {
                var dict = new OrderedDictionary<string, object?>();
                foreach (DictionaryEntry entry in d) dict[Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? ""] = FromDotNet(entry.Value, depth + 1);
                return dict;
            }
            case IEnumerable items:
            {
                var list = new List<object?>();
                foreach (object? item in items) list.Add(FromDotNet(item, depth + 1));
                return list;
            }
            default:
                throw new ArgumentException($"a {v.GetType().Name} cannot be passed to a chat template; use strings, numbers, bools, lists, dictionaries or JSON");
        }
    }

    private static object? FromJson(JsonElement e, int depth)
    {
        if (depth > 64) throw new ArgumentException("JSON value nests deeper than 64 levels");
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
            {
                var dict = new OrderedDictionary<string, object?>();
                foreach (var p in e.EnumerateObject()) dict[p.Name] = FromJson(p.Value, depth + 1);
                return dict;
            }
            case JsonValueKind.Array:
            {
                var list = new List<object?>();
                foreach (var item in e.EnumerateArray()) list.Add(FromJson(item, depth + 1));
                return list;
            }
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.Number: return e.TryGetInt64(out long l) ? (object)l : e.GetDouble();
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            default: return null;
        }
    }

    private static OrderedDictionary<string, object?> ToolCallValue(ChatToolCall call, int depth)
    {
        object? arguments = call.Arguments is string json && LooksLikeJson(json)
            ? FromJson(JsonDocument.Parse(json).RootElement, depth + 2)
            : FromDotNet(call.Arguments, depth + 2);
        var result = new OrderedDictionary<string, object?>();
        if (call.Id != null) result["id"] = call.Id;
        result["type"] = "function";
        result["function"] = new OrderedDictionary<string, object?> { ["name"] = call.Name, ["arguments"] = arguments };
        return result;
    }

    private static bool LooksLikeJson(string s)
    {
        string t = s.TrimStart();
        return t.StartsWith('{') || t.StartsWith('[');
    }
}

/// <summary>Thrown inside value formatting when a string outgrows its limit; the renderer turns it into a
/// <see cref="ChatTemplateLimitException"/> with the template position.</summary>
internal sealed class StringLimitException : Exception;

/// <summary>A comparison visited more than <see cref="PyValue.MaxCompareSteps"/> elements or nested deeper than 64.</summary>
internal sealed class CompareLimitException : Exception;
