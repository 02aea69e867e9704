using System.Globalization;
using System.Text;

namespace ClockLM.Tokenizers.ChatTemplates;

internal enum TokenKind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

internal readonly record struct Token(TokenKind Kind, string Value, int Offset, object? Number = null)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;
    public bool IsOp(string op) => Kind == TokenKind.Operator && Value == op;
    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;
}

/// <summary>Maps character offsets in the template source to 1-based line:column.</summary>
internal sealed class SourceMap
{
    private readonly List<int> _lineStarts = [0];

    public SourceMap(string source)
    {
        for (int i = 0; i < source.Length; i++)
            if (source[i] == '\n')
                _lineStarts.Add(i + 1);
    }

    public (int Line, int Column) Locate(int offset)
    {
        int index = _lineStarts.BinarySearch(offset);
        if (index < 0) index = ~index - 1;
        return (index + 1, offset - _lineStarts[index] + 1);
    }
}

/// <summary>
/// Splits template source into text and tag tokens the way Jinja does with <c>trim_blocks</c> and
/// <c>lstrip_blocks</c> on (the Hugging Face chat-template environment): a block or comment tag eats one newline
/// after it and the spaces before it on its own line; <c>-</c> inside a delimiter strips all whitespace on that
/// side; <c>+</c> turns the block rules off for that side.
/// </summary>
internal sealed class TemplateLexer
{
    private readonly string _src;
    private readonly SourceMap _map;
    private readonly List<Token> _tokens = [];
    private int _pos;

    private TemplateLexer(string source, SourceMap map)
    {
        _src = source;
        _map = map;
    }

    /// <summary>Line endings become <c>\n</c> and one trailing newline is dropped, as Jinja does by default.</summary>
    public static string Normalize(string source)
    {
        string s = source.Replace("\r\n", "\n").Replace('\r', '\n');
        return s.EndsWith('\n') ? s[..^1] : s;
    }

    public static List<Token> Tokenize(string normalizedSource, SourceMap map)
    {
        var lexer = new TemplateLexer(normalizedSource, map);
        lexer.Run();
        return lexer._tokens;
    }

    private ChatTemplateSyntaxException Error(int offset, string reason)
    {
        var (line, col) = _map.Locate(offset);
        return new ChatTemplateSyntaxException(line, col, reason);
    }

    private void Run()
    {
        bool lineStarting = true;
        while (_pos < _src.Length)
        {
            int tag = FindTagStart(_pos);
            int textEnd = tag < 0 ? _src.Length : tag;
            string text = _src[_pos..textEnd];
            if (tag < 0)
            {
                AddText(text, _pos);
                _pos = _src.Length;
                break;
            }

            char kind = _src[tag + 1];           // '{', '%' or '#'
            char sign = tag + 2 < _src.Length ? _src[tag + 2] : '\0';
            if (sign == '-')
                text = text.TrimEnd();
            else if (sign != '+' && kind != '{')
            {
                int lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && lineStart < text.Length && IsBlank(text, lineStart))
                    text = text[..lineStart];
            }
            AddText(text, _pos);

            int inner = tag + 2 + (sign is '-' or '+' ? 1 : 0);
            if (kind == '#')
                _pos = SkipComment(tag, inner);
            else if (kind == '{')
                _pos = LexTag(tag, inner, TokenKind.VarBegin, TokenKind.VarEnd, '}');
            else
                _pos = LexTag(tag, inner, TokenKind.BlockBegin, TokenKind.BlockEnd, '%');
            lineStarting = _pos == 0 || _src[_pos - 1] == '\n';
        }
        _tokens.Add(new Token(TokenKind.Eof, "", _src.Length));
    }

    private void AddText(string text, int offset)
    {
        if (text.Length > 0)
            _tokens.Add(new Token(TokenKind.Text, text, offset));
    }

    private static bool IsBlank(string s, int from)
    {
        for (int i = from; i < s.Length; i++)
            if (!char.IsWhiteSpace(s[i]))
                return false;
        return true;
    }

    private int FindTagStart(int from)
    {
        for (int i = from; i + 1 < _src.Length; i++)
            if (_src[i] == '{' && _src[i + 1] is '{' or '%' or '#')
                return i;
        return -1;
    }

    /// <summary>After a closing delimiter: '-' eats all whitespace, a block tag without '+' eats one newline.</summary>
    private int AfterClose(int pos, char sign, bool isBlock)
    {
        if (sign == '-')
            while (pos < _src.Length && char.IsWhiteSpace(_src[pos])) pos++;
        else if (sign != '+' && isBlock && pos < _src.Length && _src[pos] == '\n')
            pos++;
        return pos;
    }

    private int SkipComment(int tag, int inner)
    {
        int end = _src.IndexOf("#}", inner, StringComparison.Ordinal);
        if (end < 0) throw Error(tag, "comment '{#' is never closed with '#}'");
        char sign = end > inner && _src[end - 1] is '-' or '+' ? _src[end - 1] : '\0';
        return AfterClose(end + 2, sign, isBlock: true);
    }

    private int LexTag(int tag, int pos, TokenKind begin, TokenKind end, char closeChar)
    {
        _tokens.Add(new Token(begin, "", tag));
        int firstToken = _tokens.Count;
        var open = new Stack<Token>();      // brackets not yet closed; '}}' inside them is not the tag end
        int closeInsideBrackets = -1;
        while (true)
        {
            while (pos < _src.Length && char.IsWhiteSpace(_src[pos])) pos++;
            if (pos >= _src.Length)
            {
                if (closeInsideBrackets >= 0 && open.Count > 0)
                {
                    var (line, col) = _map.Locate(closeInsideBrackets);
                    throw Error(open.Peek().Offset, $"'{open.Peek().Value}' is never closed before '{closeChar}}}' at {line}:{col}");
                }
                throw Error(tag, $"tag is never closed; expected '{closeChar}}}'");
            }
            char c = _src[pos];
            int depth = open.Count;
            if (depth > 0 && closeInsideBrackets < 0 && pos + 1 < _src.Length && _src[pos] == closeChar && _src[pos + 1] == '}')
                closeInsideBrackets = pos;
            if (depth == 0)
            {
                char sign = c is '-' or '+' ? c : '\0';
                int at = sign != '\0' ? pos + 1 : pos;
                if (at + 1 < _src.Length && _src[at] == closeChar && _src[at + 1] == '}'
                    && (sign != '+' || end == TokenKind.BlockEnd))
                {
                    int next = AfterClose(at + 2, sign, end == TokenKind.BlockEnd);
                    if (end == TokenKind.BlockEnd && _tokens.Count == firstToken + 1 && _tokens[firstToken].IsName("raw"))
                        return LexRaw(firstToken, next);
                    _tokens.Add(new Token(end, "", pos));
                    return next;
                }
            }
            if (char.IsLetter(c) || c == '_')
            {
                int start = pos;
                while (pos < _src.Length && (char.IsLetterOrDigit(_src[pos]) || _src[pos] == '_')) pos++;
                _tokens.Add(new Token(TokenKind.Name, _src[start..pos], start));
            }
            else if (char.IsAsciiDigit(c) || (c == '.' && pos + 1 < _src.Length && char.IsAsciiDigit(_src[pos + 1])
                                              && (_tokens.Count == 0 || !EndsOperand(_tokens[^1]))))
                pos = LexNumber(pos);
            else if (c is '\'' or '"')
                pos = LexString(pos);
            else
            {
                string op = MatchOperator(pos) ?? throw Error(pos, $"unexpected character '{c}' in tag");
                var token = new Token(TokenKind.Operator, op, pos);
                if (op is "(" or "[" or "{") open.Push(token);
                else if (op is ")" or "]" or "}" && open.Count > 0)
                {
                    string expected = open.Peek().Value switch { "(" => ")", "[" => "]", _ => "}" };
                    if (op != expected)
                    {
                        if (closeInsideBrackets < 0) throw Error(pos, $"unexpected '{op}'; expected '{expected}'");
                        var (line, col) = _map.Locate(closeInsideBrackets);
                        throw Error(open.Peek().Offset, $"'{open.Peek().Value}' is never closed before '{closeChar}}}' at {line}:{col}");
                    }
                    open.Pop();
                }
                _tokens.Add(token);
                pos += op.Length;
            }
        }
    }

    private static bool EndsOperand(Token t) =>
        t.Kind is TokenKind.Name or TokenKind.Integer or TokenKind.Float or TokenKind.String || t.IsOp(")") || t.IsOp("]");

    /// <summary><c>{% raw %}</c>: everything up to <c>{% endraw %}</c> is text.</summary>
    private int LexRaw(int firstToken, int pos)
    {
        int rawBegin = firstToken - 1;
        _tokens.RemoveRange(rawBegin, _tokens.Count - rawBegin);
        for (int i = pos; i < _src.Length; i++)
        {
            if (_src[i] != '{' || i + 1 >= _src.Length || _src[i + 1] != '%') continue;
            int j = i + 2;
            char openSign = j < _src.Length && _src[j] is '-' or '+' ? _src[j++] : '\0';
            while (j < _src.Length && char.IsWhiteSpace(_src[j])) j++;
            if (string.CompareOrdinal(_src, j, "endraw", 0, 6) != 0) continue;
            j += 6;
            while (j < _src.Length && char.IsWhiteSpace(_src[j])) j++;
            char closeSign = j < _src.Length && _src[j] is '-' or '+' ? _src[j++] : '\0';
            if (j + 1 >= _src.Length || _src[j] != '%' || _src[j + 1] != '}') continue;
            string body = _src[pos..i];
            if (openSign == '-') body = body.TrimEnd();
            AddText(body, pos);
            return AfterClose(j + 2, closeSign, isBlock: true);
        }
        throw Error(pos, "'{% raw %}' is never closed with '{% endraw %}'");
    }

    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}"];

    private string? MatchOperator(int pos)
    {
        foreach (string op in Operators)
            if (string.CompareOrdinal(_src, pos, op, 0, op.Length) == 0)
                return op;
        return null;
    }

    private int LexNumber(int pos)
    {
        int start = pos;
        bool isFloat = false;
        while (pos < _src.Length && (char.IsAsciiDigit(_src[pos]) || _src[pos] == '_')) pos++;
        if (pos + 1 < _src.Length && _src[pos] == '.' && char.IsAsciiDigit(_src[pos + 1]))
        {
            isFloat = true;
            pos++;
            while (pos < _src.Length && (char.IsAsciiDigit(_src[pos]) || _src[pos] == '_')) pos++;
        }
        if (pos < _src.Length && _src[pos] is 'e' or 'E')
        {
            int p = pos + 1;
            if (p < _src.Length && _src[p] is '+' or '-') p++;
            if (p < _src.Length && char.IsAsciiDigit(_src[p]))
            {
                isFloat = true;
                pos = p;
                while (pos < _src.Length && char.IsAsciiDigit(_src[pos])) pos++;
            }
        }
        string text = _src[start..pos].Replace("_", "");
        if (isFloat)
            _tokens.Add(new Token(TokenKind.Float, text, start, double.Parse(text, CultureInfo.InvariantCulture)));
        else if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
            _tokens.Add(new Token(TokenKind.Integer, text, start, value));
        else
            throw Error(start, $"integer literal {text} is too large");
        return pos;
    }

    /// <summary>A quoted string with Python's escapes (<c>\n</c>, <c>\t</c>, <c>\\</c>, <c>\u20ac</c>, ...).</summary>
    private int LexString(int pos)
    {
        int start = pos;
        char quote = _src[pos++];
        var sb = new StringBuilder();
        while (true)
        {
            if (pos >= _src.Length) throw Error(start, $"string literal is never closed with {quote}");
            char c = _src[pos++];
            if (c == quote) break;
            if (c != '\\' || pos >= _src.Length)
            {
                sb.Append(c);
                continue;
            }
            char e = _src[pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'a': sb.Append('\a'); break;
                case '0': sb.Append('\0'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case '\n': break;
                case 'x': pos = AppendHex(sb, pos, 2, start); break;
                case 'u': pos = AppendHex(sb, pos, 4, start); break;
                case 'U': pos = AppendHex(sb, pos, 8, start); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        _tokens.Add(new Token(TokenKind.String, sb.ToString(), start));
        return pos;
    }

    private int AppendHex(StringBuilder sb, int pos, int digits, int start)
    {
        if (pos + digits > _src.Length
            || !int.TryParse(_src.AsSpan(pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int code)
            || !Rune.IsValid(code))
            throw Error(start, $"bad \\{(digits == 2 ? "x" : digits == 4 ? "u" : "U")} escape in string literal");
        sb.Append(new Rune(code).ToString());
        return pos + digits;
    }
}
