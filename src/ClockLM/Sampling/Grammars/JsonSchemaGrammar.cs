using System.Text.Encodings.Web;
using System.Text.Json;

namespace ClockLM.Sampling.Grammars;

/// <summary>
/// Turns a JSON Schema into a GBNF grammar whose every sentence is a JSON text valid against the schema.
/// <para>
/// Supported: <c>type</c> (object, array, string, number, integer, boolean, null, or a list of them), <c>properties</c>,
/// <c>required</c>, <c>additionalProperties</c> (false, true or a schema), <c>items</c>, <c>prefixItems</c>,
/// <c>minItems</c>/<c>maxItems</c>, <c>enum</c>, <c>const</c>, <c>anyOf</c>/<c>oneOf</c>, <c>allOf</c> of objects,
/// <c>$ref</c> to <c>#</c>, <c>#/$defs/…</c>, <c>#/definitions/…</c> (recursion allowed), string <c>pattern</c> (the
/// regular-expression subset of <see cref="PatternGrammar"/>), <c>format</c> date, time, date-time and uuid,
/// <c>minLength</c>/<c>maxLength</c>, and <c>minimum</c>/<c>maximum</c>/<c>exclusiveMinimum</c>/<c>exclusiveMaximum</c>
/// on integers. Annotations (title, description, default, examples, $schema, $id, $comment, deprecated, readOnly,
/// writeOnly) are ignored. Any other keyword is a <see cref="JsonSchemaException"/> naming it: ClockLM never quietly
/// generates output the schema does not constrain.
/// </para>
/// <para>
/// Choices where the schema leaves freedom (each still produces only valid JSON): properties are written in the
/// schema's order, optional ones may be left out; an object with <c>properties</c> gets no other properties unless
/// <c>additionalProperties</c> is true or a schema; <c>prefixItems</c> are all written unless <c>maxItems</c> is lower;
/// <c>oneOf</c> is treated as <c>anyOf</c> (a value matching two branches is possible).
/// </para>
/// </summary>
public sealed class JsonSchemaGrammar
{
    private static readonly HashSet<string> Annotations =
        ["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "$anchor"];

    private static readonly HashSet<string> Understood =
    [
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "enum",
        "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions", "pattern", "format", "minLength", "maxLength",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    ];

    private static readonly JsonWriterOptions LiteralJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The compact JSON text of a string (quoted and escaped), non-ASCII characters kept as they are.</summary>
    internal static string JsonText(string value) => JsonText(writer => writer.WriteStringValue(value));

    /// <summary>The compact JSON text of <paramref name="value"/>, non-ASCII characters kept as they are.</summary>
    private static string JsonText(JsonElement value) => JsonText(value.WriteTo);

    private static string JsonText(Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, LiteralJson)) write(writer);
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private readonly JsonElement _root;
    private readonly GbnfText _text;
    private readonly Dictionary<string, string> _refRules = new();

    private JsonSchemaGrammar(JsonElement root, GbnfText text)
    {
        _root = root;
        _text = text;
    }

    /// <summary>The GBNF grammar of <paramref name="schema"/>'s JSON texts (rule <c>root</c>).</summary>
    /// <exception cref="JsonSchemaException">A keyword is not supported, or a value is not what the keyword expects.</exception>
    public static string ToGbnf(JsonElement schema)
    {
        var text = new GbnfText();
        text.Set("root", AddTo(text, schema, "root"));
        return text.ToString();
    }

    /// <summary>Adds the rules of <paramref name="schema"/> to <paramref name="text"/> (names seeded by
    /// <paramref name="name"/>, shared primitives added once) and returns the expression of one valid value.</summary>
    internal static string AddTo(GbnfText text, JsonElement schema, string name) =>
        new JsonSchemaGrammar(schema, text).Visit(schema, "#", name);

    /// <summary>Parses <paramref name="schemaJson"/> and converts it.</summary>
    /// <exception cref="JsonSchemaException">The text is not JSON, or the schema cannot be converted.</exception>
    public static string ToGbnf(string schemaJson)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(schemaJson, new JsonDocumentOptions { MaxDepth = 128 });
        }
        catch (JsonException e)
        {
            throw new JsonSchemaException("#", "", $"the schema is not valid JSON: {e.Message}");
        }
        using (document) return ToGbnf(document.RootElement);
    }

    /// <summary>The compiled grammar of <paramref name="schema"/>.</summary>
    public static Grammar Compile(JsonElement schema) => Grammar.Parse(ToGbnf(schema));

    /// <summary>The GBNF expression of a value valid against <paramref name="schema"/> at <paramref name="path"/>;
    /// <paramref name="name"/> seeds the names of rules it adds.</summary>
    private string Visit(JsonElement schema, string path, string name)
    {
        if (schema.ValueKind == JsonValueKind.True) return Primitive("value");
        if (schema.ValueKind == JsonValueKind.False)
            throw new JsonSchemaException(path, "false", "the schema 'false' accepts no value, so nothing can be generated");
        if (schema.ValueKind != JsonValueKind.Object)
            throw new JsonSchemaException(path, "", $"a schema must be an object or a boolean, not {Kind(schema)}");

        foreach (var property in schema.EnumerateObject())
            if (!Understood.Contains(property.Name) && !Annotations.Contains(property.Name))
                throw new JsonSchemaException(path, property.Name, $"the keyword '{property.Name}' is not supported; ClockLM supports {string.Join(", ", Understood)}");

        if (schema.TryGetProperty("$ref", out var reference))
        {
            CheckAlone(schema, path, "$ref", ["$defs", "definitions"]);
            return Reference(reference, path);
        }
        if (schema.TryGetProperty("const", out var constant)) return JsonLiteral(constant);
        if (schema.TryGetProperty("enum", out var values))
        {
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
                throw new JsonSchemaException(path, "enum", "enum must be a non-empty array");
            return "(" + string.Join(" | ", values.EnumerateArray().Select(JsonLiteral)) + ")";
        }
        foreach (string keyword in new[] { "anyOf", "oneOf" })
            if (schema.TryGetProperty(keyword, out var branches))
            {
                CheckAlone(schema, path, keyword, ["$defs", "definitions", "type"]);
                var list = Array(branches, path, keyword);
                if (schema.TryGetProperty("type", out _)) list = WithType(list, schema, path, keyword);
                return "(" + string.Join(" | ", list.Select((b, i) => Visit(b, $"{path}/{keyword}/{i}", $"{name}-{i}"))) + ")";
            }
        if (schema.TryGetProperty("allOf", out var all)) return AllOf(schema, all, path, name);

        var types = Types(schema, path);
        if (types.Count == 0) return Primitive("value");
        var alternatives = types.Select(type => type switch
        {
            "object" => ObjectRule(schema, path, name),
            "array" => ArrayRule(schema, path, name),
            "string" => StringRule(schema, path, name),
            "integer" => IntegerRule(schema, path),
            "number" => NumberRule(schema, path),
            "boolean" => Primitive("boolean"),
            "null" => Primitive("null"),
            _ => throw new JsonSchemaException(path, "type", $"type '{type}' is unknown; expected object, array, string, number, integer, boolean or null"),
        }).ToList();
        return alternatives.Count == 1 ? alternatives[0] : "(" + string.Join(" | ", alternatives) + ")";
    }

    /// <summary>The types a schema allows: its <c>type</c>, or the one its keywords imply, or none (any value).</summary>
    private static List<string> Types(JsonElement schema, string path)
    {
        if (schema.TryGetProperty("type", out var type))
        {
            if (type.ValueKind == JsonValueKind.String) return [type.GetString()!];
            if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0 && type.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String))
                return type.EnumerateArray().Select(t => t.GetString()!).Distinct().ToList();
            throw new JsonSchemaException(path, "type", "type must be a string or a non-empty array of strings");
        }
        bool Has(params string[] keywords) => keywords.Any(k => schema.TryGetProperty(k, out _));
        if (Has("properties", "required", "additionalProperties")) return ["object"];
        if (Has("items", "prefixItems", "minItems", "maxItems")) return ["array"];
        if (Has("pattern", "format", "minLength", "maxLength")) return ["string"];
        if (Has("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")) return ["number"];
        return [];
    }

    private string ObjectRule(JsonElement schema, string path, string name)
    {
        var properties = new List<(string Key, JsonElement Schema)>();
        if (schema.TryGetProperty("properties", out var props))
        {
            if (props.ValueKind != JsonValueKind.Object) throw new JsonSchemaException(path, "properties", "properties must be an object");
            foreach (var p in props.EnumerateObject()) properties.Add((p.Name, p.Value));
        }
        var required = new HashSet<string>();
        if (schema.TryGetProperty("required", out var req))
        {
            if (req.ValueKind != JsonValueKind.Array || req.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
                throw new JsonSchemaException(path, "required", "required must be an array of strings");
            foreach (var r in req.EnumerateArray())
            {
                required.Add(r.GetString()!);
                if (!properties.Any(p => p.Key == r.GetString())) properties.Add((r.GetString()!, TrueSchema));
            }
        }
        JsonElement? additional = null;
        if (schema.TryGetProperty("additionalProperties", out var extra))
        {
            if (extra.ValueKind is JsonValueKind.True or JsonValueKind.Object) additional = extra;
            else if (extra.ValueKind != JsonValueKind.False) throw new JsonSchemaException(path, "additionalProperties", "additionalProperties must be a boolean or a schema");
        }
        else if (!schema.TryGetProperty("properties", out _))
            additional = TrueSchema; // a bare object: any properties
        return ObjectBody(properties, required, additional, path, name);
    }

    private string ObjectBody(List<(string Key, JsonElement Schema)> properties, HashSet<string> required, JsonElement? additional, string path, string name)
    {
        Primitive("ws");
        var pairs = properties.Select(p =>
        {
            string value = Visit(p.Schema, $"{path}/properties/{Pointer(p.Key)}", $"{name}-{p.Key}");
            string rule = _text.NewName($"{name}-{p.Key}-kv");
            _text.Set(rule, $"{GbnfText.Literal(JsonText(p.Key))} ws \":\" ws {value}");
            return (Rule: rule, Optional: !required.Contains(p.Key));
        }).ToList();

        string? extraPair = null;
        if (additional is { } schemaOfExtra)
        {
            string value = Visit(schemaOfExtra, $"{path}/additionalProperties", $"{name}-additional");
            string key = KeyOtherThan(properties.Select(p => p.Key).ToList(), name);
            extraPair = _text.NewName($"{name}-additional-kv");
            _text.Set(extraPair, $"{key} ws \":\" ws {value}");
        }

        // rest(i): the pairs from i on when one has been written already; first(i): when none has.
        int n = pairs.Count;
        string rest = extraPair is null ? "\"\"" : $"(\",\" ws {extraPair})*";
        string first = extraPair is null ? "\"\"" : $"({extraPair} (\",\" ws {extraPair})*)?";
        for (int i = n - 1; i >= 0; i--)
        {
            string restRule = _text.NewName($"{name}-rest{i}");
            string firstRule = _text.NewName($"{name}-first{i}");
            _text.Set(restRule, pairs[i].Optional ? $"(\",\" ws {pairs[i].Rule})? {rest}" : $"\",\" ws {pairs[i].Rule} {rest}");
            _text.Set(firstRule, pairs[i].Optional ? $"{pairs[i].Rule} {rest} | {first}" : $"{pairs[i].Rule} {rest}");
            rest = restRule;
            first = firstRule;
        }
        return $"\"{{\" ws {first} \"}}\" ws";
    }

    /// <summary>A JSON string that is none of <paramref name="keys"/> (so extra properties never repeat declared ones):
    /// a rule per node of the keys' trie, each allowing the text to stop (unless a key ends there), to continue with a
    /// character no key continues with (then anything), or to follow a key one character further.</summary>
    private string KeyOtherThan(List<string> keys, string name)
    {
        Primitive("string");
        if (keys.Count == 0) return "string";
        if (keys.Any(k => k.Any(c => c < 0x20 || c == '"' || c == '\\'))) return "string"; // escaped keys: not excluded
        string Node(string prefix)
        {
            var next = keys.Where(k => k.Length > prefix.Length && k.StartsWith(prefix, StringComparison.Ordinal))
                .Select(k => char.ConvertToUtf32(k, prefix.Length)).Distinct().OrderBy(c => c).ToList();
            var options = new List<string>();
            if (!keys.Contains(prefix)) options.Add("\"\\\"\"");
            var others = Utf8Ranges.Normalize(next.Select(c => (c, c)).Append(('"', '"')).Append(('\\', '\\')).Append((0, 0x1F)), negated: true);
            options.Add($"{GbnfText.Class(others)} char* \"\\\"\"");
            options.Add("\"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) char* \"\\\"\"");
            foreach (int c in next)
                options.Add($"{GbnfText.Literal(char.ConvertFromUtf32(c))} {Node(prefix + char.ConvertFromUtf32(c))}");
            string rule = _text.NewName($"{name}-key");
            _text.Set(rule, string.Join(" | ", options));
            return rule;
        }
        return $"\"\\\"\" {Node("")} ws";
    }

    private string ArrayRule(JsonElement schema, string path, string name)
    {
        Primitive("ws");
        int min = (int)Math.Min(Count(schema, "minItems", path) ?? 0, int.MaxValue);
        long? max = Count(schema, "maxItems", path);
        if (max < min) throw new JsonSchemaException(path, "maxItems", $"maxItems {max} is below minItems {min}");
        // The tuple: prefixItems, or items as an array (drafts before 2020-12). prefixItems as one schema is read as
        // items, as llama.cpp reads it.
        bool hasPrefix = schema.TryGetProperty("prefixItems", out var tuple);
        bool hasItems = schema.TryGetProperty("items", out var items);
        if (hasPrefix && tuple.ValueKind != JsonValueKind.Array && !hasItems) (hasPrefix, hasItems, items) = (false, true, tuple);
        if (hasItems && items.ValueKind == JsonValueKind.Array)
        {
            if (hasPrefix) throw new JsonSchemaException(path, "items", "items as an array beside prefixItems is not supported");
            (hasPrefix, hasItems, tuple) = (true, false, items);
        }
        var prefix = new List<string>();
        if (hasPrefix)
        {
            var list = Array(tuple, path, "prefixItems");
            for (int i = 0; i < list.Count && (max is null || i < max); i++)
                prefix.Add(Visit(list[i], $"{path}/prefixItems/{i}", $"{name}-{i}"));
        }

        // The items after the prefix: between tailMin and tailMax (null: unbounded) of `item`.
        int tailMin = Math.Max(0, min - prefix.Count);
        long? tailMax = max is { } m ? m - prefix.Count : null;
        string? item;
        if (hasItems)
        {
            item = items.ValueKind == JsonValueKind.False ? null : Visit(items, $"{path}/items", $"{name}-item");
            if (item is null) tailMax = 0;
        }
        else if (prefix.Count == 0)
            item = Primitive("value");
        else
        {
            item = tailMin > 0 ? Primitive("value") : null; // after a tuple, only as many extra items as minItems needs
            tailMax = tailMin;
        }
        if (tailMin > tailMax)
            throw new JsonSchemaException(path, "minItems", $"minItems {min} cannot be met: items is false after {prefix.Count} prefixItems");
        if (tailMin > GbnfParser.MaxRepetition || tailMax > GbnfParser.MaxRepetition)
            throw new JsonSchemaException(path, "maxItems", $"item counts above {GbnfParser.MaxRepetition} are not supported");

        string Repeat(int low, long? high) => high is { } h ? $"{{{low},{h}}}" : $"{{{low},}}";
        string body;
        if (prefix.Count > 0)
        {
            body = string.Join(" \",\" ws ", prefix);
            if (item is not null && tailMax != 0) body += $" (\",\" ws {item}){Repeat(tailMin, tailMax)}";
        }
        else if (item is null || tailMax == 0)
            body = "";
        else if (tailMin == 0)
            body = $"({item} (\",\" ws {item}){Repeat(0, tailMax - 1)})?";
        else
            body = $"{item} (\",\" ws {item}){Repeat(tailMin - 1, tailMax - 1)}";
        return $"\"[\" ws {(body.Length == 0 ? "" : body + " ")}\"]\" ws";
    }

    private string StringRule(JsonElement schema, string path, string name)
    {
        Primitive("ws");
        bool hasPattern = schema.TryGetProperty("pattern", out var pattern);
        bool hasFormat = schema.TryGetProperty("format", out var format);
        long? minLength = Count(schema, "minLength", path), maxLength = Count(schema, "maxLength", path);
        if (hasPattern && (hasFormat || minLength is not null || maxLength is not null))
            throw new JsonSchemaException(path, "pattern", "pattern together with format, minLength or maxLength is not supported");
        if (hasPattern)
        {
            if (pattern.ValueKind != JsonValueKind.String) throw new JsonSchemaException(path, "pattern", "pattern must be a string");
            string rule = _text.NewName($"{name}-pattern");
            _text.Set(rule, PatternGrammar.Expression(pattern.GetString()!, path));
            return $"\"\\\"\" {rule} \"\\\"\" ws";
        }
        if (hasFormat)
        {
            if (minLength is not null || maxLength is not null)
                throw new JsonSchemaException(path, "format", "format together with minLength or maxLength is not supported");
            string f = format.ValueKind == JsonValueKind.String ? format.GetString()! : throw new JsonSchemaException(path, "format", "format must be a string");
            if (f is not ("date" or "time" or "date-time" or "uuid"))
                throw new JsonSchemaException(path, "format", $"format '{f}' is not supported; supported: date, time, date-time, uuid");
            return $"\"\\\"\" {Primitive(f)} \"\\\"\" ws";
        }
        Primitive("char");
        if (minLength is null && maxLength is null) return Primitive("string");
        if (maxLength < minLength) throw new JsonSchemaException(path, "maxLength", $"maxLength {maxLength} is below minLength {minLength}");
        if (minLength > GbnfParser.MaxRepetition || maxLength > GbnfParser.MaxRepetition)
            throw new JsonSchemaException(path, maxLength > GbnfParser.MaxRepetition ? "maxLength" : "minLength", $"string lengths above {GbnfParser.MaxRepetition} are not supported");
        string count = maxLength is { } m ? $"{{{minLength ?? 0},{m}}}" : $"{{{minLength},}}";
        return $"\"\\\"\" char{count} \"\\\"\" ws";
    }

    private string IntegerRule(JsonElement schema, string path)
    {
        Primitive("ws");
        long? min = Bound(schema, "minimum", path, up: true, exclusive: false);
        long? exclusiveMin = Bound(schema, "exclusiveMinimum", path, up: true, exclusive: true);
        long? max = Bound(schema, "maximum", path, up: false, exclusive: false);
        long? exclusiveMax = Bound(schema, "exclusiveMaximum", path, up: false, exclusive: true);
        long? lo = min is null ? exclusiveMin : exclusiveMin is null ? min : Math.Max(min.Value, exclusiveMin.Value);
        long? hi = max is null ? exclusiveMax : exclusiveMax is null ? max : Math.Min(max.Value, exclusiveMax.Value);
        if (lo > hi) throw new JsonSchemaException(path, "minimum", $"no integer lies between the minimum {lo} and the maximum {hi}");
        if (lo is null && hi is null) return Primitive("integer");
        return $"({IntegerRangeGrammar.Expression(lo, hi)}) ws";
    }

    private string NumberRule(JsonElement schema, string path)
    {
        foreach (string keyword in new[] { "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum" })
            if (schema.TryGetProperty(keyword, out _))
                throw new JsonSchemaException(path, keyword, $"{keyword} is supported on integers only, not on numbers");
        return Primitive("number");
    }

    /// <summary>An integer bound: a fractional one is rounded inward; exclusive ones move one step inward.</summary>
    private static long? Bound(JsonElement schema, string keyword, string path, bool up, bool exclusive)
    {
        if (!schema.TryGetProperty(keyword, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number) throw new JsonSchemaException(path, keyword, $"{keyword} must be a number");
        double d = v.GetDouble();
        double r = up ? Math.Ceiling(d) : Math.Floor(d);
        if (exclusive && r == d) r += up ? 1 : -1;
        if (!(Math.Abs(r) < 9.2e18)) throw new JsonSchemaException(path, keyword, $"{keyword} {d} is beyond the 64-bit integers ClockLM bounds");
        return (long)r;
    }

    private static long? Count(JsonElement schema, string keyword, string path)
    {
        if (!schema.TryGetProperty(keyword, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n) || n < 0)
            throw new JsonSchemaException(path, keyword, $"{keyword} must be a non-negative integer");
        return n;
    }

    private string AllOf(JsonElement schema, JsonElement all, string path, string name)
    {
        var parts = Array(all, path, "allOf");
        CheckAlone(schema, path, "allOf", ["$defs", "definitions"]);
        if (parts.Count == 1) return Visit(parts[0], $"{path}/allOf/0", name);
        var properties = new List<(string Key, JsonElement Schema)>();
        var required = new HashSet<string>();
        for (int i = 0; i < parts.Count; i++)
        {
            string at = $"{path}/allOf/{i}";
            var part = Resolve(parts[i], at);
            if (part.ValueKind != JsonValueKind.Object || !(Types(part, at) is ["object"]))
                throw new JsonSchemaException(at, "allOf", "allOf is supported only when every part is an object schema");
            foreach (var property in part.EnumerateObject())
                if (property.Name is not ("type" or "properties" or "required" or "additionalProperties") && !Annotations.Contains(property.Name))
                    throw new JsonSchemaException(at, property.Name, $"'{property.Name}' inside allOf is not supported");
            if (part.TryGetProperty("properties", out var props))
                foreach (var p in props.EnumerateObject())
                {
                    if (properties.Any(q => q.Key == p.Name)) throw new JsonSchemaException(at, "properties", $"property '{p.Name}' is declared by two parts of allOf");
                    properties.Add((p.Name, p.Value));
                }
            if (part.TryGetProperty("required", out var req))
                foreach (var r in req.EnumerateArray()) required.Add(r.GetString() ?? "");
        }
        foreach (string r in required)
            if (!properties.Any(p => p.Key == r)) properties.Add((r, TrueSchema));
        // Only the declared properties are generated: valid whatever each part says of additional ones.
        return ObjectBody(properties, required, additional: null, path, name);
    }

    /// <summary>
    /// The branches of an <c>anyOf</c> that has a <c>type</c> beside it, each with that type added: allowed when every
    /// branch (its <c>$ref</c>s followed) is an object schema with no type of its own or only types the outer one allows.
    /// </summary>
    private List<JsonElement> WithType(List<JsonElement> branches, JsonElement schema, string path, string keyword)
    {
        var outer = Types(schema, path);
        var result = new List<JsonElement>();
        for (int i = 0; i < branches.Count; i++)
        {
            var branch = Resolve(branches[i], $"{path}/{keyword}/{i}");
            if (branch.ValueKind != JsonValueKind.Object || (branch.TryGetProperty("type", out _) && !Types(branch, path).All(outer.Contains)))
                throw new JsonSchemaException(path, "type", $"'type' beside '{keyword}' is supported only when each branch allows no other type");
            var merged = System.Text.Json.Nodes.JsonNode.Parse(branch.GetRawText())!.AsObject();
            if (!merged.ContainsKey("type")) merged["type"] = System.Text.Json.Nodes.JsonNode.Parse(schema.GetProperty("type").GetRawText());
            result.Add(JsonDocument.Parse(merged.ToJsonString()).RootElement);
        }
        return result;
    }

    /// <summary>Follows <c>$ref</c>s until a schema that is not one.</summary>
    private JsonElement Resolve(JsonElement schema, string path)
    {
        for (int hops = 0; schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("$ref", out var r); hops++)
        {
            if (hops > 64) throw new JsonSchemaException(path, "$ref", "$ref chain longer than 64");
            schema = Lookup(r, path);
        }
        return schema;
    }

    private string Reference(JsonElement reference, string path)
    {
        string target = reference.ValueKind == JsonValueKind.String ? reference.GetString()! : throw new JsonSchemaException(path, "$ref", "$ref must be a string");
        if (_refRules.TryGetValue(target, out string? rule)) return rule;
        var schema = Lookup(reference, path);
        rule = _text.NewName(target == "#" ? "root-ref" : target.Split('/')[^1]);
        _refRules[target] = rule;
        _text.Set(rule, Visit(schema, target, rule));
        return rule;
    }

    private JsonElement Lookup(JsonElement reference, string path)
    {
        string target = reference.GetString() ?? "";
        if (!target.StartsWith('#'))
            throw new JsonSchemaException(path, "$ref", $"$ref '{target}' points outside the schema; only local references (#, #/$defs/..., #/definitions/...) are supported");
        var node = _root;
        foreach (string raw in target[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            string segment = Uri.UnescapeDataString(raw).Replace("~1", "/").Replace("~0", "~");
            if (node.ValueKind == JsonValueKind.Object && node.TryGetProperty(segment, out var child)) node = child;
            else if (node.ValueKind == JsonValueKind.Array && int.TryParse(segment, out int i) && i >= 0 && i < node.GetArrayLength()) node = node[i];
            else throw new JsonSchemaException(path, "$ref", $"$ref '{target}' does not resolve: '{segment}' is missing");
        }
        return node;
    }

    private static void CheckAlone(JsonElement schema, string path, string keyword, string[] allowed)
    {
        foreach (var property in schema.EnumerateObject())
            if (property.Name != keyword && !Annotations.Contains(property.Name) && !allowed.Contains(property.Name))
                throw new JsonSchemaException(path, property.Name, $"'{property.Name}' beside '{keyword}' is not supported; move it into the referenced or listed schemas");
    }

    private static List<JsonElement> Array(JsonElement value, string path, string keyword)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
            throw new JsonSchemaException(path, keyword, $"{keyword} must be a non-empty array of schemas");
        return value.EnumerateArray().ToList();
    }

    private string Primitive(string name)
    {
        JsonGrammar.AddPrimitive(_text, name);
        return name;
    }

    private string JsonLiteral(JsonElement value)
    {
        Primitive("ws");
        return $"{GbnfText.Literal(JsonText(value))} ws";
    }

    private static string Pointer(string key) => key.Replace("~", "~0").Replace("/", "~1");

    private static string Kind(JsonElement v) => v.ValueKind.ToString().ToLowerInvariant();

    private static readonly JsonElement TrueSchema = JsonDocument.Parse("true").RootElement;
}
