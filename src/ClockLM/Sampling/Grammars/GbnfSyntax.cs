namespace ClockLM.Sampling.Grammars;

/// <summary>One item of a GBNF sequence, as written (before compilation to bytes).</summary>
internal abstract record GbnfItem(int Line, int Column);

/// <summary><c>"text"</c>: these code points in order.</summary>
internal sealed record GbnfLiteral(int[] CodePoints, int Line, int Column) : GbnfItem(Line, Column);

/// <summary><c>[a-z_]</c>, <c>[^"\\]</c> or <c>.</c>: one code point from a set of inclusive ranges (complemented when negated).</summary>
internal sealed record GbnfClass(List<(int Low, int High)> Ranges, bool Negated, int Line, int Column) : GbnfItem(Line, Column);

/// <summary>A rule name used in a sequence.</summary>
internal sealed record GbnfReference(string Name, int Line, int Column) : GbnfItem(Line, Column);

/// <summary><c>( a | b )</c>: alternatives, each a sequence.</summary>
internal sealed record GbnfGroup(List<List<GbnfItem>> Alternatives, int Line, int Column) : GbnfItem(Line, Column);

/// <summary><c>x*</c>, <c>x+</c>, <c>x?</c>, <c>x{m}</c>, <c>x{m,}</c>, <c>x{m,n}</c>: Max null means unbounded.</summary>
internal sealed record GbnfRepeat(GbnfItem Item, int Min, int? Max, int Line, int Column) : GbnfItem(Line, Column);

/// <summary>A rule: its name, its alternatives and where it was defined.</summary>
internal sealed record GbnfRule(string Name, List<List<GbnfItem>> Alternatives, int Line, int Column);

/// <summary>
/// Reads llama.cpp's GBNF: <c>name ::= alternatives</c> rules, one per line (a rule continues over lines inside
/// parentheses and after <c>|</c>); literals with escapes <c>\n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH</c>;
/// character classes with ranges and <c>^</c>; <c>.</c>; groups; <c>* + ? {m} {m,} {m,n}</c>; <c>#</c> comments.
/// Every error is a <see cref="GrammarException"/> with line:column.
/// </summary>
internal sealed class GbnfParser
{
    /// <summary>Most repetitions <c>{m,n}</c> may ask for: a bound on the compiled size.</summary>
    public const int MaxRepetition = 10_000;

    private readonly string _text;
    private int _pos;

    private GbnfParser(string text) => _text = text;

    /// <summary>Parses grammar text into its rules, in order of definition.</summary>
    public static List<GbnfRule> Parse(string text)
    {
        var parser = new GbnfParser(text);
        var rules = new List<GbnfRule>();
        var seen = new Dictionary<string, GbnfRule>();
        parser.SkipSpace(newlines: true);
        while (!parser.AtEnd)
        {
            var rule = parser.ParseRule();
            if (seen.TryGetValue(rule.Name, out var first))
                throw parser.Error(rule.Line, rule.Column, $"rule '{rule.Name}' is defined twice (first at {first.Line}:{first.Column})");
            seen[rule.Name] = rule;
            rules.Add(rule);
            parser.SkipSpace(newlines: true);
        }
        return rules;
    }

    private bool AtEnd => _pos >= _text.Length;
    private char Peek(int ahead = 0) => _pos + ahead < _text.Length ? _text[_pos + ahead] : '\0';

    private GbnfRule ParseRule()
    {
        var (line, column) = Where(_pos);
        string name = ParseName();
        SkipSpace(newlines: false);
        if (!_text.AsSpan(_pos).StartsWith("::="))
            throw Error(_pos, $"expected '::=' after the rule name '{name}'");
        _pos += 3;
        SkipSpace(newlines: true);
        var alternatives = ParseAlternatives(nested: false);
        if (!AtEnd && Peek() != '\n' && Peek() != '\r')
            throw Error(_pos, $"unexpected '{Peek()}' in rule '{name}'; expected a literal, a class, a rule name, a group, a repetition, '|' or the end of the line");
        return new GbnfRule(name, alternatives, line, column);
    }

    private List<List<GbnfItem>> ParseAlternatives(bool nested)
    {
        var alternatives = new List<List<GbnfItem>> { ParseSequence(nested) };
        while (true)
        {
            if (Peek() == '|')
            {
                _pos++;
                SkipSpace(newlines: true);
                alternatives.Add(ParseSequence(nested));
                continue;
            }
            // At the top level, a '|' that opens the next line continues the rule.
            int save = _pos;
            SkipSpace(newlines: true);
            if (Peek() == '|') continue;
            _pos = save;
            return alternatives;
        }
    }

    private List<GbnfItem> ParseSequence(bool nested)
    {
        var items = new List<GbnfItem>();
        while (!AtEnd)
        {
            char c = Peek();
            var (line, column) = Where(_pos);
            if (c == '"')
                items.Add(ParseLiteral());
            else if (c == '[')
                items.Add(ParseClass());
            else if (c == '.')
            {
                _pos++;
                items.Add(new GbnfClass([], Negated: true, line, column));
            }
            else if (c == '(')
            {
                _pos++;
                SkipSpace(newlines: true);
                var alternatives = ParseAlternatives(nested: true);
                SkipSpace(newlines: true);
                if (Peek() != ')') throw Error(_pos, AtEnd ? "expected ')' before the end of the grammar" : $"expected ')' but found '{Peek()}'");
                _pos++;
                items.Add(new GbnfGroup(alternatives, line, column));
            }
            else if (IsNameChar(c))
            {
                // A name followed by '::=' starts the next rule (possible only after a newline inside no group).
                int save = _pos;
                string name = ParseName();
                int after = _pos;
                SkipSpace(newlines: false);
                if (_text.AsSpan(_pos).StartsWith("::="))
                {
                    if (nested) throw Error(save, $"rule '{name}' starts inside a group; expected ')' first");
                    _pos = save;
                    break;
                }
                _pos = after;
                items.Add(new GbnfReference(name, line, column));
            }
            else if (c is '*' or '+' or '?' or '{')
            {
                if (items.Count == 0) throw Error(_pos, $"'{c}' must follow an item to repeat");
                items[^1] = ParseRepetition(items[^1]);
            }
            else if (c == '<')
                throw Error(_pos, "token references (<...>) are not supported; write the token's text as a literal");
            else
                break;
            SkipSpace(newlines: nested);
        }
        return items;
    }

    private GbnfRepeat ParseRepetition(GbnfItem item)
    {
        var (line, column) = Where(_pos);
        char c = _text[_pos++];
        switch (c)
        {
            case '*': return new GbnfRepeat(item, 0, null, line, column);
            case '+': return new GbnfRepeat(item, 1, null, line, column);
            case '?': return new GbnfRepeat(item, 0, 1, line, column);
        }
        SkipSpace(newlines: false);
        int min = ParseCount();
        int? max = min;
        SkipSpace(newlines: false);
        if (Peek() == ',')
        {
            _pos++;
            SkipSpace(newlines: false);
            max = char.IsAsciiDigit(Peek()) ? ParseCount() : null;
            SkipSpace(newlines: false);
        }
        if (Peek() != '}') throw Error(_pos, $"expected '}}' to close the repetition {{{min},...");
        _pos++;
        if (max < min) throw Error(line, column, $"repetition {{{min},{max}}} has its maximum below its minimum");
        return new GbnfRepeat(item, min, max, line, column);
    }

    private int ParseCount()
    {
        int start = _pos;
        while (char.IsAsciiDigit(Peek())) _pos++;
        if (_pos == start) throw Error(_pos, "expected a number in the repetition {m,n}");
        if (!int.TryParse(_text.AsSpan(start, _pos - start), out int n) || n > MaxRepetition)
            throw Error(start, $"repetition count {_text[start.._pos]} is above the limit of {MaxRepetition}");
        return n;
    }

    private string ParseName()
    {
        int start = _pos;
        while (IsNameChar(Peek())) _pos++;
        if (_pos == start) throw Error(_pos, AtEnd ? "expected a rule name" : $"expected a rule name but found '{Peek()}'");
        return _text[start.._pos];
    }

    private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_';

    private GbnfLiteral ParseLiteral()
    {
        var (line, column) = Where(_pos);
        _pos++; // opening quote
        var codePoints = new List<int>();
        while (true)
        {
            if (AtEnd || Peek() is '\n' or '\r') throw Error(line, column, "unterminated literal: expected a closing '\"' on the same line");
            if (Peek() == '"') { _pos++; break; }
            codePoints.Add(ParseChar());
        }
        return new GbnfLiteral(codePoints.ToArray(), line, column);
    }

    private GbnfClass ParseClass()
    {
        var (line, column) = Where(_pos);
        _pos++; // '['
        bool negated = Peek() == '^';
        if (negated) _pos++;
        var ranges = new List<(int, int)>();
        while (true)
        {
            if (AtEnd || Peek() is '\n' or '\r') throw Error(line, column, "unterminated character class: expected ']' on the same line");
            if (Peek() == ']') { _pos++; break; }
            int at = _pos;
            int low = ParseChar();
            int high = low;
            if (Peek() == '-' && Peek(1) is not (']' or '\n' or '\r' or '\0'))
            {
                _pos++;
                high = ParseChar();
                if (high < low) throw Error(at, $"range {Describe(low)}-{Describe(high)} ends below its start");
            }
            ranges.Add((low, high));
        }
        return new GbnfClass(ranges, negated, line, column);
    }

    /// <summary>One code point, escapes decoded.</summary>
    private int ParseChar()
    {
        int at = _pos;
        if (Peek() != '\\')
        {
            int cp = char.ConvertToUtf32(_text, _pos);
            _pos += char.IsSurrogatePair(_text, _pos) ? 2 : 1;
            return cp;
        }
        _pos++;
        if (AtEnd) throw Error(at, "'\\' at the end of the grammar");
        char e = _text[_pos++];
        switch (e)
        {
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case '\\' or '"' or '[' or ']' or '-' or '/' or '^': return e;
            case 'x': return ParseHex(at, 2);
            case 'u': return ParseHex(at, 4);
            case 'U': return ParseHex(at, 8);
            default: throw Error(at, $"unknown escape '\\{e}'; expected \\n, \\r, \\t, \\\\, \\\", \\[, \\], \\xHH, \\uHHHH or \\UHHHHHHHH");
        }
    }

    private int ParseHex(int at, int digits)
    {
        if (_pos + digits > _text.Length || !int.TryParse(_text.AsSpan(_pos, digits), System.Globalization.NumberStyles.HexNumber, null, out int value))
            throw Error(at, $"escape '\\{_text[_pos - 1]}' needs {digits} hex digits");
        _pos += digits;
        if (value > 0x10FFFF) throw Error(at, $"code point U+{value:X} is beyond U+10FFFF");
        return value;
    }

    /// <summary>Skips spaces, tabs and comments; newlines too when <paramref name="newlines"/>.</summary>
    private void SkipSpace(bool newlines)
    {
        while (!AtEnd)
        {
            char c = Peek();
            if (c is ' ' or '\t' || (newlines && c is '\n' or '\r')) _pos++;
            else if (c == '#')
                while (!AtEnd && Peek() is not ('\n' or '\r')) _pos++;
            else break;
        }
    }

    private (int Line, int Column) Where(int pos)
    {
        int line = 1, column = 1;
        for (int i = 0; i < pos && i < _text.Length; i++)
        {
            if (_text[i] == '\n') { line++; column = 1; }
            else column++;
        }
        return (line, column);
    }

    private GrammarException Error(int pos, string problem)
    {
        var (line, column) = Where(pos);
        return new GrammarException(line, column, problem);
    }

    private GrammarException Error(int line, int column, string problem) => new(line, column, problem);

    internal static string Describe(int cp) => cp is >= 0x20 and < 0x7F ? $"'{(char)cp}'" : $"U+{cp:X4}";
}
