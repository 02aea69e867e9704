using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ClockLM.Chat.Tools;

/// <summary>What the parser releases from a model's output: text for the user, or a complete call.</summary>
public abstract record ToolStreamEvent;

/// <summary>Ordinary text of the answer.</summary>
public sealed record ContentEvent(string Text) : ToolStreamEvent;

/// <summary>A complete call, the <paramref name="Index"/>-th of the answer (from 0).</summary>
public sealed record ToolCallEvent(int Index, ParsedToolCall Call) : ToolStreamEvent;

/// <summary>
/// Splits a model's output, as it streams, into text and tool calls in one family's syntax. Text that may be the
/// start of a call (a prefix of the family's marker, or, where calls are bare JSON, a JSON value at the very start of
/// the answer) is held back until it is decided; a call is released whole once its JSON is complete. Feeding a whole
/// answer and then calling <see cref="Finish"/> gives the same events as feeding it piece by piece.
/// </summary>
public sealed class ToolCallParser
{
    private enum Mode { Text, AfterMarker, LeadingJson, AfterJsonCall }

    private readonly ToolCallFormat _format;
    private readonly StringBuilder _buffer = new();
    private readonly List<ParsedToolCall> _calls = [];
    private readonly StringBuilder _content = new();
    private Mode _mode = Mode.Text;
    private bool _textSeen;   // non-blank text has been released, so a JSON value is no longer "at the start"

    /// <summary>A parser for <paramref name="format"/>'s syntax.</summary>
    public ToolCallParser(ToolCallFormat format)
    {
        ArgumentNullException.ThrowIfNull(format);
        _format = format;
    }

    /// <summary>The calls found so far.</summary>
    public IReadOnlyList<ParsedToolCall> Calls => _calls;

    /// <summary>The text released so far (without the calls).</summary>
    public string Content => _content.ToString();

    /// <summary>Adds output text; returns what is now decided.</summary>
    public List<ToolStreamEvent> Append(string text)
    {
        _buffer.Append(text);
        return Drain(final: false);
    }

    /// <summary>Adds one generated token's update. A control token that is this family's marker (Mistral's
    /// <c>[TOOL_CALLS]</c>, Llama's <c>&lt;|python_tag|&gt;</c>) has no text of its own, so its piece is added here.</summary>
    public List<ToolStreamEvent> Append(CompletionUpdate update, ClockLM.Tokenizers.Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(update);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (update.TokenId >= 0 && update.TokenId < tokenizer.VocabSize && tokenizer.GetKind(update.TokenId) == ClockLM.Tokenizers.TokenKind.Control
            && tokenizer.GetPiece(update.TokenId) == _format.Marker)
            _buffer.Append(_format.Marker);
        return Append(update.Text);
    }

    /// <summary>Ends the output: whatever is held back is decided (an unfinished call becomes text).</summary>
    public List<ToolStreamEvent> Finish() => Drain(final: true);

    /// <summary>Parses a whole answer: its text (trimmed) and its calls.</summary>
    public static (string Content, IReadOnlyList<ParsedToolCall> Calls) ParseAll(ToolCallFormat format, string output)
    {
        var parser = new ToolCallParser(format);
        parser.Append(output);
        parser.Finish();
        return (parser.Content.Trim(), parser.Calls);
    }

    private List<ToolStreamEvent> Drain(bool final)
    {
        var events = new List<ToolStreamEvent>();
        while (true)
        {
            string buffer = _buffer.ToString();
            switch (_mode)
            {
                case Mode.Text:
                {
                    string? marker = _format.Marker;
                    int at = marker is null ? -1 : buffer.IndexOf(marker, StringComparison.Ordinal);
                    if (!_textSeen && _format.Family != ToolCallFamily.Hermes)
                    {
                        int first = FirstNonBlank(buffer);
                        // The answer may still be opening with the marker (e.g. "[TOOL_CALLS]" read so far as "[TOO").
                        if (first >= 0 && marker is not null && !final && buffer.Length - first < marker.Length
                            && marker.StartsWith(buffer[first..], StringComparison.Ordinal))
                            return events;
                        if (first >= 0 && buffer[first] is '{' or '[' && (at < 0 || first < at))
                        {
                            Take(first);
                            _mode = Mode.LeadingJson;
                            continue;
                        }
                        if (first < 0 && !final) return events; // only blanks so far: undecided
                    }
                    if (at >= 0)
                    {
                        Emit(events, Take(at));
                        Take(marker!.Length);
                        _mode = Mode.AfterMarker;
                        continue;
                    }
                    int hold = final || marker is null ? 0 : HeldBack(buffer, marker);
                    Emit(events, Take(buffer.Length - hold));
                    return events;
                }
                case Mode.AfterMarker when _format.Family is ToolCallFamily.Hermes or ToolCallFamily.Generic:
                {
                    const string close = "</tool_call>";
                    int end = buffer.IndexOf(close, StringComparison.Ordinal);
                    if (end < 0 && !final) return events;
                    string inside = end < 0 ? buffer : buffer[..end];
                    Take(end < 0 ? buffer.Length : end + close.Length);
                    if (!AddCalls(events, inside)) Emit(events, _format.Marker + inside + (end < 0 ? "" : close));
                    _mode = Mode.Text;
                    continue;
                }
                case Mode.AfterMarker when _format.Family == ToolCallFamily.Llama3 && FirstNonBlank(buffer) is var f && (f < 0 || buffer[f] != '{'):
                {
                    // <|python_tag|>name.call(key="value", ...): decided at the end of the answer.
                    if (!final) return events;
                    Take(buffer.Length);
                    if (!AddPythonCall(events, buffer)) Emit(events, _format.Marker + buffer);
                    _mode = Mode.Text;
                    return events;
                }
                case Mode.AfterMarker:
                case Mode.LeadingJson:
                {
                    int start = FirstNonBlank(buffer);
                    if (start < 0)
                    {
                        if (!final) return events;
                        Emit(events, (_mode == Mode.AfterMarker ? _format.Marker : "") + Take(buffer.Length));
                        _mode = Mode.Text;
                        return events;
                    }
                    int end = JsonValueEnd(buffer, start);
                    if (end < 0 && !final) return events;
                    string json = end < 0 ? buffer : buffer[..end];
                    Take(json.Length);
                    bool wasMarker = _mode == Mode.AfterMarker;
                    if (!AddCalls(events, json)) Emit(events, (wasMarker ? _format.Marker : "") + json);
                    _mode = _calls.Count > 0 ? Mode.AfterJsonCall : Mode.Text;
                    continue;
                }
                case Mode.AfterJsonCall:
                {
                    // Llama 3.2 separates several calls with ';'; anything else after a call is text.
                    int next = FirstNonBlank(buffer);
                    if (next < 0 && !final) return events;
                    if (next >= 0 && buffer[next] == ';')
                    {
                        Take(next + 1);
                        _mode = Mode.LeadingJson;
                        continue;
                    }
                    _textSeen = true;
                    _mode = Mode.Text;
                    continue;
                }
            }
        }
    }

    private string Take(int count)
    {
        string taken = _buffer.ToString(0, count);
        _buffer.Remove(0, count);
        return taken;
    }

    private void Emit(List<ToolStreamEvent> events, string text)
    {
        if (text.Length == 0) return;
        if (text.Any(c => !char.IsWhiteSpace(c))) _textSeen = true;
        _content.Append(text);
        events.Add(new ContentEvent(text));
    }

    /// <summary>Parses <paramref name="json"/> as one call, an array of calls, or <c>{"tool_calls": [...]}</c> /
    /// <c>{"tool_call": {...}}</c>; false (nothing added) when it is none of them.</summary>
    private bool AddCalls(List<ToolStreamEvent> events, string json)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(json.Trim()); }
        catch (JsonException) { return false; }
        var found = new List<ParsedToolCall>();
        void Collect(JsonNode? n)
        {
            if (n is JsonArray array) { foreach (var item in array) Collect(item); return; }
            if (n is not JsonObject o) { found.Clear(); found.Add(null!); return; }
            if (o["tool_calls"] is JsonArray list && o.Count == 1) { Collect(list); return; }
            if (o["tool_call"] is JsonObject one && o.Count == 1) { Collect(one); return; }
            if (o["function"] is JsonObject fn && o["type"]?.ToString() == "function") { Collect(fn); return; }
            if (o["name"] is not JsonValue name || name.GetValueKind() != JsonValueKind.String) { found.Add(null!); return; }
            var arguments = o["arguments"] ?? o["parameters"];
            string text = arguments is null ? "{}"
                : arguments.GetValueKind() == JsonValueKind.String ? arguments.GetValue<string>()
                : arguments.ToJsonString();
            string id = o["id"] is JsonValue idValue && idValue.GetValueKind() == JsonValueKind.String ? idValue.GetValue<string>() : NewId();
            found.Add(new ParsedToolCall(id, name.GetValue<string>(), text));
        }
        Collect(node);
        if (found.Count == 0 || found.Any(c => c is null)) return false;
        foreach (var call in found)
        {
            events.Add(new ToolCallEvent(_calls.Count, call));
            _calls.Add(call);
        }
        return true;
    }

    /// <summary><c>name.call(key="value", n=1, flag=True)</c> (Llama 3.1's built-in tools) as a call with a JSON object.</summary>
    private bool AddPythonCall(List<ToolStreamEvent> events, string text)
    {
        var match = System.Text.RegularExpressions.Regex.Match(text.Trim(), @"^([A-Za-z_][A-Za-z0-9_]*)\.call\((.*)\)$", System.Text.RegularExpressions.RegexOptions.Singleline);
        if (!match.Success) return false;
        var arguments = new JsonObject();
        foreach (var argument in System.Text.RegularExpressions.Regex.Matches(match.Groups[2].Value,
            @"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(""(?:[^""\\]|\\.)*""|'(?:[^'\\]|\\.)*'|[^,]+)\s*(,|$)").Cast<System.Text.RegularExpressions.Match>())
        {
            string raw = argument.Groups[2].Value.Trim();
            JsonNode? value = raw switch
            {
                "True" => true,
                "False" => false,
                "None" => null,
                _ when raw.StartsWith('"') || raw.StartsWith('\'') => System.Text.RegularExpressions.Regex.Unescape(raw[1..^1]),
                _ when double.TryParse(raw, System.Globalization.CultureInfo.InvariantCulture, out double d) => d,
                _ => raw,
            };
            arguments[argument.Groups[1].Value] = value;
        }
        var call = new ParsedToolCall(NewId(), match.Groups[1].Value, arguments.ToJsonString());
        events.Add(new ToolCallEvent(_calls.Count, call));
        _calls.Add(call);
        return true;
    }

    private static string NewId() => "call_" + Guid.NewGuid().ToString("N")[..24];

    private static int FirstNonBlank(string s)
    {
        for (int i = 0; i < s.Length; i++)
            if (!char.IsWhiteSpace(s[i])) return i;
        return -1;
    }

    /// <summary>Length of the longest end of <paramref name="text"/> that begins <paramref name="marker"/>.</summary>
    private static int HeldBack(string text, string marker)
    {
        for (int n = Math.Min(text.Length, marker.Length - 1); n > 0; n--)
            if (string.CompareOrdinal(text, text.Length - n, marker, 0, n) == 0) return n;
        return 0;
    }

    /// <summary>The index just past the JSON object or array starting at <paramref name="start"/>, or -1 when it is not
    /// complete yet (strings and escapes are followed; the value is not validated here).</summary>
    internal static int JsonValueEnd(string s, int start)
    {
        if (s[start] is not ('{' or '['))
        {
            // A scalar: up to the first blank or separator.
            int i = start;
            while (i < s.Length && !char.IsWhiteSpace(s[i]) && s[i] != ';') i++;
            return i;
        }
        int depth = 0;
        bool inString = false, escaped = false;
        for (int i = start; i < s.Length; i++)
        {
            char c = s[i];
            if (inString)
            {
                if (escaped) escaped = false;
                else if (c == '\\') escaped = true;
                else if (c == '"') inString = false;
                continue;
            }
            switch (c)
            {
                case '"': inString = true; break;
                case '{' or '[': depth++; break;
                case '}' or ']':
                    if (--depth == 0) return i + 1;
                    break;
            }
        }
        return -1;
    }
}
