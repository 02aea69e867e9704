using System.Text;

namespace ClockLM.Sampling.Grammars;

/// <summary>
/// Turns a JSON Schema <c>pattern</c> into GBNF for the content of a JSON string (what goes between the quotes, with
/// <c>"</c> and <c>\</c> escaped as JSON requires). The supported subset of ECMA-262 regular expressions: literals;
/// <c>.</c>; classes <c>[a-z]</c>, <c>[^...]</c>; escapes <c>\d \D \w \W \s \S \n \r \t \xHH \uHHHH</c> and escaped
/// punctuation; groups <c>(...)</c>, <c>(?:...)</c>, <c>(?&lt;name&gt;...)</c>; alternation <c>|</c>; quantifiers
/// <c>* + ? {m} {m,} {m,n}</c> (a lazy <c>?</c> after them is accepted: it matches the same strings); <c>^</c> and
/// <c>$</c> only at the ends. A pattern without <c>^</c> (or <c>$</c>) may have any text before (or after) it, as JSON
/// Schema's search semantics say. Anything else (look-arounds, back-references, <c>\b</c>) is an error naming it.
/// Control characters other than tab, newline and carriage return are never generated.
/// </summary>
internal sealed class PatternGrammar
{
    private readonly string _pattern;
    private readonly string _path;
    private int _pos;

    private PatternGrammar(string pattern, string path)
    {
        _pattern = pattern;
        _path = path;
    }

    /// <summary>The GBNF expression of the strings <paramref name="pattern"/> matches (JSON-escaped content).
    /// <paramref name="path"/> names the schema location in errors.</summary>
    public static string Expression(string pattern, string path)
    {
        var parser = new PatternGrammar(pattern, path);
        bool anchoredStart = pattern.StartsWith('^');
        if (anchoredStart) parser._pos = 1;
        string body = parser.ParseAlternation(topLevel: true);
        bool anchoredEnd = parser._pos < pattern.Length && pattern[parser._pos] == '$';
        if (anchoredEnd) parser._pos++;
        if (parser._pos != pattern.Length) throw parser.Error($"unexpected '{pattern[parser._pos]}' at offset {parser._pos}");
        string any = $"({AnyChar})*";
        return $"{(anchoredStart ? "" : any + " ")}({body}){(anchoredEnd ? "" : " " + any)}";
    }

    /// <summary>One character of string content, escaped as JSON needs: any character but controls, quote and backslash
    /// as themselves, or a JSON escape.</summary>
    private static readonly string AnyChar = "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})";

    private string ParseAlternation(bool topLevel)
    {
        var alternatives = new List<string> { ParseSequence() };
        while (_pos < _pattern.Length && _pattern[_pos] == '|')
        {
            _pos++;
            alternatives.Add(ParseSequence());
        }
        if (topLevel && _pos < _pattern.Length && _pattern[_pos] == ')') throw Error($"unbalanced ')' at offset {_pos}");
        return string.Join(" | ", alternatives.Select(a => a.Length == 0 ? "\"\"" : a));
    }

    private string ParseSequence()
    {
        var items = new List<string>();
        while (_pos < _pattern.Length)
        {
            char c = _pattern[_pos];
            if (c is '|' or ')') break;
            if (c == '$')
            {
                if (_pos == _pattern.Length - 1) break; // end anchor, handled by the caller
                throw Error($"'$' is supported only at the end of the pattern (offset {_pos})");
            }
            string atom = ParseAtom();
            items.Add(ParseQuantifier(atom));
        }
        return string.Join(" ", items);
    }

    private string ParseAtom()
    {
        int at = _pos;
        char c = _pattern[_pos++];
        switch (c)
        {
            case '(':
                if (_pattern.AsSpan(_pos).StartsWith("?:")) _pos += 2;
                else if (_pattern.AsSpan(_pos).StartsWith("?<") && !_pattern.AsSpan(_pos).StartsWith("?<=") && !_pattern.AsSpan(_pos).StartsWith("?<!"))
                {
                    int close = _pattern.IndexOf('>', _pos);
                    if (close < 0) throw Error($"unterminated group name at offset {at}");
                    _pos = close + 1;
                }
                else if (_pos < _pattern.Length && _pattern[_pos] == '?')
                    throw Error($"look-arounds and other '(?' groups are not supported (offset {at})");
                string inner = ParseAlternation(topLevel: false);
                if (_pos >= _pattern.Length || _pattern[_pos] != ')') throw Error($"unclosed '(' at offset {at}");
                _pos++;
                return $"({inner})";
            case '[':
                return Characters(ParseClass(at));
            case '.':
                return Characters(Utf8Ranges.Normalize([('\n', '\n'), ('\r', '\r')], negated: true));
            case '^':
                throw Error($"'^' is supported only at the start of the pattern (offset {at})");
            case '*' or '+' or '?' or '{':
                throw Error($"'{c}' at offset {at} has nothing to repeat");
            case '\\':
                return Characters(ParseEscape(at, inClass: false));
            default:
                _pos--;
                int cp = char.ConvertToUtf32(_pattern, _pos);
                _pos += char.IsSurrogatePair(_pattern, _pos) ? 2 : 1;
                return Characters([(cp, cp)]);
        }
    }

    private string ParseQuantifier(string atom)
    {
        if (_pos >= _pattern.Length) return atom;
        char c = _pattern[_pos];
        string? quantified = null;
        if (c is '*' or '+' or '?')
        {
            _pos++;
            quantified = $"({atom}){c}";
        }
        else if (c == '{' && TryParseBraces(out int min, out int? max))
        {
            quantified = max is { } m ? $"({atom}){{{min},{m}}}" : $"({atom}){{{min},}}";
        }
        if (quantified is null) return atom;
        if (_pos < _pattern.Length && _pattern[_pos] == '?') _pos++; // lazy: same strings
        else if (_pos < _pattern.Length && _pattern[_pos] == '+') throw Error($"possessive quantifiers are not supported (offset {_pos})");
        return quantified;
    }

    private bool TryParseBraces(out int min, out int? max)
    {
        min = 0;
        max = null;
        int close = _pattern.IndexOf('}', _pos);
        if (close < 0) return false;
        string inside = _pattern[(_pos + 1)..close];
        string[] parts = inside.Split(',');
        if (parts.Length > 2 || !int.TryParse(parts[0], out min)) return false;
        if (parts.Length == 1) max = min;
        else if (parts[1].Length > 0)
        {
            if (!int.TryParse(parts[1], out int m)) return false;
            max = m;
        }
        if (min > GbnfParser.MaxRepetition || max > GbnfParser.MaxRepetition || max < min)
            throw Error($"repetition {{{inside}}} is out of range (at most {GbnfParser.MaxRepetition}, maximum not below minimum)");
        _pos = close + 1;
        return true;
    }

    private List<(int Low, int High)> ParseClass(int at)
    {
        bool negated = _pos < _pattern.Length && _pattern[_pos] == '^';
        if (negated) _pos++;
        var ranges = new List<(int Low, int High)>();
        bool first = true;
        while (true)
        {
            if (_pos >= _pattern.Length) throw Error($"unclosed '[' at offset {at}");
            char c = _pattern[_pos];
            if (c == ']' && !first) { _pos++; break; }
            first = false;
            List<(int Low, int High)> item;
            int start = _pos;
            if (c == '\\') { _pos++; item = ParseEscape(start, inClass: true); }
            else
            {
                int cp = char.ConvertToUtf32(_pattern, _pos);
                _pos += char.IsSurrogatePair(_pattern, _pos) ? 2 : 1;
                item = [(cp, cp)];
            }
            if (item.Count == 1 && item[0].Low == item[0].High && _pos + 1 < _pattern.Length && _pattern[_pos] == '-' && _pattern[_pos + 1] != ']')
            {
                _pos++;
                int hiStart = _pos;
                List<(int Low, int High)> high;
                if (_pattern[_pos] == '\\') { _pos++; high = ParseEscape(hiStart, inClass: true); }
                else
                {
                    int cp = char.ConvertToUtf32(_pattern, _pos);
                    _pos += char.IsSurrogatePair(_pattern, _pos) ? 2 : 1;
                    high = [(cp, cp)];
                }
                if (high.Count != 1 || high[0].Low != high[0].High) throw Error($"a class range cannot end in a class escape (offset {hiStart})");
                if (high[0].Low < item[0].Low) throw Error($"class range out of order at offset {start}");
                item = [(item[0].Low, high[0].Low)];
            }
            ranges.AddRange(item);
        }
        return Utf8Ranges.Normalize(ranges, negated);
    }

    private List<(int Low, int High)> ParseEscape(int at, bool inClass)
    {
        if (_pos >= _pattern.Length) throw Error("the pattern ends in '\\'");
        char e = _pattern[_pos++];
        List<(int, int)> digits = [('0', '9')];
        List<(int, int)> word = [('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
        List<(int, int)> space = [('\t', '\r'), (' ', ' '), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)];
        switch (e)
        {
            case 'd': return digits;
            case 'D': return Utf8Ranges.Normalize(digits, negated: true);
            case 'w': return word;
            case 'W': return Utf8Ranges.Normalize(word, negated: true);
            case 's': return space;
            case 'S': return Utf8Ranges.Normalize(space, negated: true);
            case 'n': return [('\n', '\n')];
            case 'r': return [('\r', '\r')];
            case 't': return [('\t', '\t')];
            case 'f': return [('\f', '\f')];
            case 'v': return [('\v', '\v')];
            case '0': return [(0, 0)];
            case 'x': return [Hex(at, 2)];
            case 'u': return [Hex(at, 4)];
            case 'b' when inClass: return [('\b', '\b')];
        }
        if (char.IsAsciiLetterOrDigit(e))
            throw Error($"the escape '\\{e}' (offset {at}) is not supported; supported: \\d \\D \\w \\W \\s \\S \\n \\r \\t \\f \\v \\xHH \\uHHHH and escaped punctuation");
        return [(e, e)];
    }

    private (int, int) Hex(int at, int digits)
    {
        if (_pos + digits > _pattern.Length || !int.TryParse(_pattern.AsSpan(_pos, digits), System.Globalization.NumberStyles.HexNumber, null, out int v))
            throw Error($"the escape at offset {at} needs {digits} hex digits");
        _pos += digits;
        return (v, v);
    }

    /// <summary>GBNF for one character of the set, as JSON string content: most characters as themselves; quote,
    /// backslash, tab, newline and carriage return as their JSON escapes; other controls never.</summary>
    private string Characters(List<(int Low, int High)> ranges)
    {
        var set = Utf8Ranges.Normalize(ranges, negated: false);
        // The characters JSON writes as themselves: everything but controls, quote and backslash.
        (int Low, int High)[] unescaped = [(0x20, 0x21), (0x23, 0x5B), (0x5D, Utf8Ranges.MaxCodePoint)];
        var plain = new List<(int Low, int High)>();
        foreach (var (low, high) in set)
            foreach (var (a, b) in unescaped)
                if (Math.Max(low, a) <= Math.Min(high, b)) plain.Add((Math.Max(low, a), Math.Min(high, b)));
        bool Has(int cp) => set.Any(r => r.Low <= cp && cp <= r.High);
        var options = new List<string>();
        if (plain.Count == 1 && plain[0].Low == plain[0].High) options.Add(GbnfText.Literal(char.ConvertFromUtf32(plain[0].Low)));
        else if (plain.Count > 0) options.Add(GbnfText.Class(plain));
        foreach (var (cp, escape) in new[] { ('"', "\\\""), ('\\', "\\\\"), ('\n', "\\n"), ('\r', "\\r"), ('\t', "\\t") })
            if (Has(cp)) options.Add(GbnfText.Literal(escape));
        if (options.Count == 0) throw Error($"a character set at offset {_pos} holds only control characters, which are never generated");
        return options.Count == 1 ? options[0] : $"({string.Join(" | ", options)})";
    }

    private JsonSchemaException Error(string problem) =>
        new(_path, "pattern", $"pattern \"{_pattern}\": {problem}");
}
