using Microsoft.AspNetCore.Http;
using System.Text.Json;

namespace ClockLM.Server;

/// <summary>Reads typed fields from a request's JSON object; a missing field gives the default, a wrong type or value a 400 naming the field.</summary>
internal sealed class JsonRequest(JsonElement root)
{
    public JsonElement Root { get; } = root;

    /// <summary>Reads the body, whose root must be a JSON object (or <paramref name="root"/>, e.g. an array).</summary>
    public static async Task<JsonRequest> ReadAsync(HttpRequest request, CancellationToken cancellation, JsonValueKind root = JsonValueKind.Object)
    {
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, new JsonDocumentOptions { MaxDepth = 64 }, cancellation);
        }
        catch (JsonException e)
        {
            throw ApiException.BadRequest($"the request body is not valid JSON: {e.Message}", code: "invalid_json");
        }
        if (document.RootElement.ValueKind != root)
            throw ApiException.BadRequest($"the request body must be {(root == JsonValueKind.Object ? "a JSON object" : "a JSON array")}, not {Describe(document.RootElement)}", code: "invalid_json");
        CheckText(document.RootElement, "");
        return new JsonRequest(document.RootElement);
    }

    /// <summary>Every key and string in the body must be text: no bytes that are not UTF-8 (the JSON reader lets them
    /// through inside strings) and no lone surrogate escapes. A 400 names the first that is not, by its path
    /// (e.g. <c>messages[0].content</c>). The walk is bounded by the body's size and its nesting limit.</summary>
    private static void CheckText(JsonElement value, string path)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                Text(value, path.Length == 0 ? "the body" : path);
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in value.EnumerateArray()) CheckText(item, $"{path}[{i++}]");
                break;
            case JsonValueKind.Object:
                foreach (var property in value.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = property.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        throw ApiException.BadRequest(
                            $"a key in {(path.Length == 0 ? "the body" : path)} is not valid text: it holds a lone UTF-16 surrogate or bytes that are not UTF-8",
                            path.Length == 0 ? null : path, "invalid_text");
                    }
                    CheckText(property.Value, path.Length == 0 ? name : $"{path}.{name}");
                }
                break;
        }
    }

    public JsonElement? Get(string name) =>
        Root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public string? String(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.String) throw WrongType(name, "a string", v);
        return Text(v, name);
    }

    /// <summary>A JSON string's text. One that holds a lone surrogate (<c>"\ud800"</c>) or bytes that are not UTF-8 has no
    /// text: a 400 naming the field.</summary>
    public static string Text(JsonElement v, string name)
    {
        try
        {
            return v.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw ApiException.BadRequest(
                $"{name} is not valid text: it holds a lone UTF-16 surrogate (an escape in \\ud800-\\udfff without its pair) or bytes that are not UTF-8",
                name, "invalid_text");
        }
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw WrongType(name, "true or false", v);
        return v.GetBoolean();
    }

    /// <summary>A number field in [min, max]; <paramref name="field"/> names it in errors when it is nested (<c>lora[0].scale</c>).</summary>
    public double? Number(string name, double min, double max, string? field = null)
    {
        if (Get(name) is not { } v) return null;
        name = field ?? name;
        if (v.ValueKind != JsonValueKind.Number) throw WrongType(name, "a number", v);
        if (!v.TryGetDouble(out double d)) throw ApiException.BadRequest($"{name} is {v.GetRawText()}, beyond the range of a number; expected a number from {min} to {max}", name);
        if (!(d >= min && d <= max)) throw ApiException.BadRequest($"{name} is {d}; expected a number from {min} to {max}", name);
        return d;
    }

    /// <summary>An integer field in [min, max]; <paramref name="field"/> names it in errors when it is nested.</summary>
    public long? Integer(string name, long min, long max, string? field = null)
    {
        if (Get(name) is not { } v) return null;
        name = field ?? name;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n)) throw WrongType(name, "an integer", v);
        if (n < min || n > max) throw ApiException.BadRequest($"{name} is {n}; expected an integer from {min} to {max}", name);
        return n;
    }

    /// <summary>OpenAI's <c>stop</c>: a string or an array of up to 16 strings.</summary>
    public List<string> Stops(string name)
    {
        if (Get(name) is not { } v) return [];
        if (v.ValueKind == JsonValueKind.String) return [Text(v, name)];
        if (v.ValueKind != JsonValueKind.Array) throw WrongType(name, "a string or an array of strings", v);
        var stops = new List<string>();
        foreach (var item in v.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String) throw WrongType(name, "an array of strings", item);
            stops.Add(Text(item, name));
        }
        if (stops.Count > 16) throw ApiException.BadRequest($"{name} has {stops.Count} sequences; at most 16 are accepted", name);
        return stops;
    }

    /// <summary>A nested object (e.g. <c>stream_options</c>, <c>clocklm</c>), or null.</summary>
    public JsonRequest? Object(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Object) throw WrongType(name, "an object", v);
        return new JsonRequest(v);
    }

    /// <summary>An array of token ids, each below <paramref name="vocabSize"/>.</summary>
    public static int[] TokenIds(JsonElement array, string name, int vocabSize)
    {
        if (array.ValueKind != JsonValueKind.Array) throw WrongType(name, "an array of token ids", array);
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int id)) throw WrongType(name, "an array of token ids", item);
            if ((uint)id >= (uint)vocabSize) throw ApiException.BadRequest($"{name} holds token id {id}; expected 0 to {vocabSize - 1}", name);
            ids[i++] = id;
        }
        return ids;
    }

    public static ApiException WrongType(string name, string expected, JsonElement value) =>
        ApiException.BadRequest($"{name} must be {expected}, not {Describe(value)}", name);

    public static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "null",
    };
}
