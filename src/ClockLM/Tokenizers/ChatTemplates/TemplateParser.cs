namespace ClockLM.Tokenizers.ChatTemplates;

/// <summary>
/// Recursive-descent parser from tokens to <see cref="Node"/>s, with Jinja's operator precedence
/// (lowest first): <c>x if c else y</c>, <c>or</c>, <c>and</c>, <c>not</c>, comparisons and <c>in</c>,
/// <c>+ -</c>, <c>~</c>, <c>* / // %</c>, <c>**</c>, unary <c>- +</c>, then filters, tests and postfix
/// (<c>.attr</c>, <c>[i]</c>, <c>[a:b:c]</c>, calls). Nesting is bounded so hostile input cannot overflow the stack.
/// </summary>
internal sealed class TemplateParser
{
    private readonly List<Token> _tokens;
    private readonly SourceMap _map;
    private readonly int _maxDepth;
    private int _pos;
    private int _depth;
    private int _loopDepth;

    private TemplateParser(List<Token> tokens, SourceMap map, int maxDepth)
    {
        _tokens = tokens;
        _map = map;
        _maxDepth = maxDepth;
    }

    public static List<Node> Parse(List<Token> tokens, SourceMap map, int maxDepth)
    {
        var parser = new TemplateParser(tokens, map, maxDepth);
        var body = parser.ParseBody([], -1, out _);
        return body;
    }

    private Token Peek => _tokens[_pos];
    private Token PeekAt(int ahead) => _tokens[Math.Min(_pos + ahead, _tokens.Count - 1)];
    private Token Next() => _tokens[_pos++];

    private ChatTemplateSyntaxException Error(int offset, string reason)
    {
        var (line, col) = _map.Locate(offset);
        return new ChatTemplateSyntaxException(line, col, reason);
    }

    private static string Describe(Token t) => t.Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.Text => "text",
        TokenKind.VarBegin => "'{{'",
        TokenKind.VarEnd => "'}}'",
        TokenKind.BlockBegin => "'{%'",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.String => "a string",
        TokenKind.Integer or TokenKind.Float => $"number {t.Value}",
        TokenKind.Name => $"'{t.Value}'",
        _ => $"'{t.Value}'",
    };

    private void Expect(TokenKind kind, string what)
    {
        if (Peek.Kind != kind) throw Error(Peek.Offset, $"expected {what}, found {Describe(Peek)}");
        _pos++;
    }

    private void ExpectOp(string op)
    {
        if (!Peek.IsOp(op)) throw Error(Peek.Offset, $"expected '{op}', found {Describe(Peek)}");
        _pos++;
    }

    private string ExpectName(string what)
    {
        if (Peek.Kind != TokenKind.Name) throw Error(Peek.Offset, $"expected {what}, found {Describe(Peek)}");
        return Next().Value;
    }

    private void Enter(int offset)
    {
        if (++_depth > _maxDepth)
        {
            var (line, col) = _map.Locate(offset);
            throw new ChatTemplateLimitException(line, col, nameof(ChatTemplateOptions.MaxNestingDepth),
                $"template nests deeper than MaxNestingDepth = {_maxDepth}");
        }
    }

    private void Exit() => _depth--;

    // ---------------- statements ----------------

    /// <summary>Parses nodes until a block tag named in <paramref name="endTags"/>; consumes '{%' and that name.</summary>
    private List<Node> ParseBody(string[] endTags, int openerOffset, out string endTag)
    {
        var body = new List<Node>();
        while (true)
        {
            var t = Peek;
            switch (t.Kind)
            {
                case TokenKind.Text:
                    body.Add(new TextNode(t.Offset, Next().Value));
                    break;
                case TokenKind.VarBegin:
                    Next();
                    var value = ParseExpression();
                    Expect(TokenKind.VarEnd, "'}}'");
                    body.Add(new OutputNode(t.Offset, value));
                    break;
                case TokenKind.BlockBegin:
                    var name = PeekAt(1);
                    if (name.Kind == TokenKind.Name && Array.IndexOf(endTags, name.Value) >= 0)
                    {
                        _pos += 2;
                        endTag = name.Value;
                        return body;
                    }
                    Next();
                    body.Add(ParseStatement(t.Offset));
                    break;
                case TokenKind.Eof:
                    if (endTags.Length > 0)
                    {
                        var (line, col) = _map.Locate(openerOffset);
                        throw Error(t.Offset, $"expected '{{% {string.Join("' or '{% ", endTags)} %}}' to close the block opened at {line}:{col}, found end of template");
                    }
                    endTag = "";
                    return body;
                default:
                    throw Error(t.Offset, $"unexpected {Describe(t)}");
            }
        }
    }

    private Node ParseStatement(int offset)
    {
        var nameToken = Peek;
        if (nameToken.Kind != TokenKind.Name)
            throw Error(nameToken.Offset, $"expected a statement name after '{{%', found {Describe(nameToken)}");
        Enter(offset);
        Next();
        Node node = nameToken.Value switch
        {
            "if" => ParseIf(offset),
            "for" => ParseFor(offset),
            "set" => ParseSet(offset),
            "macro" => ParseMacro(offset),
            "call" => ParseCallBlock(offset),
            "filter" => ParseFilterBlock(offset),
            "break" or "continue" => ParseLoopControl(offset, nameToken),
            "generation" => ParseGeneration(offset),
            _ => throw Error(nameToken.Offset,
                $"unknown tag '{nameToken.Value}'; expected if, for, set, macro, call, filter, break, continue, generation or raw"),
        };
        Exit();
        return node;
    }

    private IfNode ParseIf(int offset)
    {
        var branches = new List<(Expr, List<Node>)>();
        List<Node>? elseBody = null;
        var test = ParseExpression();
        while (true)
        {
            Expect(TokenKind.BlockEnd, "'%}' after the if condition");
            var body = ParseBody(["elif", "else", "endif"], offset, out string end);
            branches.Add((test, body));
            if (end == "elif")
            {
                test = ParseExpression();
                continue;
            }
            if (end == "else")
            {
                Expect(TokenKind.BlockEnd, "'%}' after else");
                elseBody = ParseBody(["endif"], offset, out _);
            }
            Expect(TokenKind.BlockEnd, "'%}' after endif");
            return new IfNode(offset, branches, elseBody);
        }
    }

    private List<string> ParseTargetNames()
    {
        var names = new List<string>();
        bool paren = Peek.IsOp("(");
        if (paren) Next();
        names.Add(ExpectName("a loop variable name"));
        while (Peek.IsOp(","))
        {
            Next();
            if (Peek.Kind != TokenKind.Name) break;
            names.Add(Next().Value);
        }
        if (paren) ExpectOp(")");
        return names;
    }

    private ForNode ParseFor(int offset)
    {
        var targets = ParseTargetNames();
        if (!Peek.IsName("in")) throw Error(Peek.Offset, $"expected 'in' in for loop, found {Describe(Peek)}");
        Next();
        var iterable = ParseExpression(withCondition: false);
        Expr? filter = null;
        bool recursive = false;
        if (Peek.IsName("if"))
        {
            Next();
            filter = ParseExpression();
        }
        if (Peek.IsName("recursive"))
        {
            Next();
            recursive = true;
        }
        Expect(TokenKind.BlockEnd, "'%}' after the for header");
        _loopDepth++;
        var body = ParseBody(["else", "endfor"], offset, out string end);
        _loopDepth--;
        List<Node>? elseBody = null;
        if (end == "else")
        {
            Expect(TokenKind.BlockEnd, "'%}' after else");
            elseBody = ParseBody(["endfor"], offset, out _);
        }
        Expect(TokenKind.BlockEnd, "'%}' after endfor");
        return new ForNode(offset, targets, iterable, filter, body, elseBody, recursive);
    }

    private Node ParseSet(int offset)
    {
        int targetOffset = Peek.Offset;
        string first = ExpectName("a variable name after set");
        if (Peek.IsOp("."))
        {
            Next();
            string attr = ExpectName("an attribute name");
            ExpectOp("=");
            var value = ParseTupleOrExpression();
            Expect(TokenKind.BlockEnd, "'%}' after set");
            return new SetAttrNode(offset, new NameExpr(targetOffset, first), attr, value);
        }
        var targets = new List<string> { first };
        while (Peek.IsOp(","))
        {
            Next();
            targets.Add(ExpectName("a variable name"));
        }
        if (Peek.IsOp("="))
        {
            Next();
            var value = ParseTupleOrExpression();
            Expect(TokenKind.BlockEnd, "'%}' after set");
            return new SetNode(offset, targets, value, null);
        }
        if (targets.Count != 1) throw Error(Peek.Offset, $"expected '=' in set, found {Describe(Peek)}");
        Expect(TokenKind.BlockEnd, "'=' or '%}' after the set target");
        var body = ParseBody(["endset"], offset, out _);
        Expect(TokenKind.BlockEnd, "'%}' after endset");
        return new SetNode(offset, targets, null, body);
    }

    private List<MacroParam> ParseParams()
    {
        var list = new List<MacroParam>();
        ExpectOp("(");
        while (!Peek.IsOp(")"))
        {
            string name = ExpectName("a parameter name");
            Expr? def = null;
            if (Peek.IsOp("="))
            {
                Next();
                def = ParseExpression();
            }
            list.Add(new MacroParam(name, def));
            if (!Peek.IsOp(",")) break;
            Next();
        }
        ExpectOp(")");
        return list;
    }

    private MacroNode ParseMacro(int offset)
    {
        string name = ExpectName("a macro name");
        var parameters = ParseParams();
        Expect(TokenKind.BlockEnd, "'%}' after the macro signature");
        int savedLoops = _loopDepth;
        _loopDepth = 0;
        var body = ParseBody(["endmacro"], offset, out _);
        _loopDepth = savedLoops;
        if (Peek.Kind == TokenKind.Name) Next();
        Expect(TokenKind.BlockEnd, "'%}' after endmacro");
        return new MacroNode(offset, name, parameters, body);
    }

    private CallBlockNode ParseCallBlock(int offset)
    {
        var callerParams = Peek.IsOp("(") ? ParseParams() : [];
        var call = ParseExpression();
        if (call is not CallExpr) throw Error(call.Offset, "expected a macro call after 'call'");
        Expect(TokenKind.BlockEnd, "'%}' after the call");
        int savedLoops = _loopDepth;
        _loopDepth = 0;
        var body = ParseBody(["endcall"], offset, out _);
        _loopDepth = savedLoops;
        Expect(TokenKind.BlockEnd, "'%}' after endcall");
        return new CallBlockNode(offset, call, callerParams, body);
    }

    private FilterBlockNode ParseFilterBlock(int offset)
    {
        var filters = new List<FilterExpr> { ParseFilterCall(null) };
        while (Peek.IsOp("|"))
        {
            Next();
            filters.Add(ParseFilterCall(null));
        }
        Expect(TokenKind.BlockEnd, "'%}' after the filter");
        var body = ParseBody(["endfilter"], offset, out _);
        Expect(TokenKind.BlockEnd, "'%}' after endfilter");
        return new FilterBlockNode(offset, filters, body);
    }

    private Node ParseLoopControl(int offset, Token name)
    {
        if (_loopDepth == 0) throw Error(name.Offset, $"'{name.Value}' outside of a for loop");
        Expect(TokenKind.BlockEnd, $"'%}}' after {name.Value}");
        return name.Value == "break" ? new BreakNode(offset) : new ContinueNode(offset);
    }

    private BlockNode ParseGeneration(int offset)
    {
        Expect(TokenKind.BlockEnd, "'%}' after generation");
        var body = ParseBody(["endgeneration"], offset, out _);
        Expect(TokenKind.BlockEnd, "'%}' after endgeneration");
        return new BlockNode(offset, body);
    }

    // ---------------- expressions ----------------

    private Expr ParseTupleOrExpression()
    {
        var first = ParseExpression();
        if (!Peek.IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (Peek.IsOp(","))
        {
            Next();
            if (Peek.Kind is TokenKind.BlockEnd or TokenKind.VarEnd) break;
            items.Add(ParseExpression());
        }
        return new ListExpr(first.Offset, items, IsTuple: true);
    }

    private Expr ParseExpression(bool withCondition = true)
    {
        Enter(Peek.Offset);
        var e = withCondition ? ParseCondition() : ParseOr();
        Exit();
        return e;
    }

    private Expr ParseCondition()
    {
        var expr = ParseOr();
        while (Peek.IsName("if"))
        {
            int offset = Next().Offset;
            var test = ParseOr();
            Expr? otherwise = null;
            if (Peek.IsName("else"))
            {
                Next();
                otherwise = ParseExpression();
            }
            expr = new CondExpr(offset, test, expr, otherwise);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Peek.IsName("or"))
        {
            int offset = Next().Offset;
            left = new BinaryExpr(offset, "or", left, ParseAnd());
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Peek.IsName("and"))
        {
            int offset = Next().Offset;
            left = new BinaryExpr(offset, "and", left, ParseNot());
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (Peek.IsName("not"))
        {
            int offset = Next().Offset;
            Enter(offset);
            var operand = ParseNot();
            Exit();
            return new UnaryExpr(offset, "not", operand);
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            var t = Peek;
            if (t.Kind == TokenKind.Operator && t.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                Next();
                rest.Add((t.Value, ParseMath1()));
            }
            else if (t.IsName("in"))
            {
                Next();
                rest.Add(("in", ParseMath1()));
            }
            else if (t.IsName("not") && PeekAt(1).IsName("in"))
            {
                _pos += 2;
                rest.Add(("not in", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first.Offset, first, rest);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Peek.IsOp("+") || Peek.IsOp("-"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, op.Value, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Peek.IsOp("~"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, "~", left, ParseMath2());
        }
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Peek.Kind == TokenKind.Operator && Peek.Value is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, op.Value, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (Peek.IsOp("**"))
        {
            var op = Next();
            left = new BinaryExpr(op.Offset, "**", left, ParseUnary(withFilter: true));
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Expr node;
        if (Peek.IsOp("-") || Peek.IsOp("+"))
        {
            var op = Next();
            Enter(op.Offset);
            node = new UnaryExpr(op.Offset, op.Value, ParseUnary(withFilter: false));
            Exit();
        }
        else
            node = ParsePostfix(ParsePrimary());
        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new LiteralExpr(t.Offset, true),
                    "false" or "False" => new LiteralExpr(t.Offset, false),
                    "none" or "None" => new LiteralExpr(t.Offset, null),
                    _ => new NameExpr(t.Offset, t.Value),
                };
            case TokenKind.String:
                string s = t.Value;
                while (Peek.Kind == TokenKind.String) s += Next().Value;
                return new LiteralExpr(t.Offset, s);
            case TokenKind.Integer:
            case TokenKind.Float:
                return new LiteralExpr(t.Offset, t.Number);
            case TokenKind.Operator when t.Value == "(":
            {
                if (Peek.IsOp(")"))
                {
                    Next();
                    return new ListExpr(t.Offset, [], IsTuple: true);
                }
                var e = ParseExpression();
                if (Peek.IsOp(","))
                {
                    var items = new List<Expr> { e };
                    while (Peek.IsOp(","))
                    {
                        Next();
                        if (Peek.IsOp(")")) break;
                        items.Add(ParseExpression());
                    }
                    e = new ListExpr(t.Offset, items, IsTuple: true);
                }
                ExpectOp(")");
                return e;
            }
            case TokenKind.Operator when t.Value == "[":
            {
                var items = new List<Expr>();
                while (!Peek.IsOp("]"))
                {
                    items.Add(ParseExpression());
                    if (!Peek.IsOp(",")) break;
                    Next();
                }
                ExpectOp("]");
                return new ListExpr(t.Offset, items);
            }
            case TokenKind.Operator when t.Value == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!Peek.IsOp("}"))
                {
                    var key = ParseExpression();
                    ExpectOp(":");
                    items.Add((key, ParseExpression()));
                    if (!Peek.IsOp(",")) break;
                    Next();
                }
                ExpectOp("}");
                return new DictExpr(t.Offset, items);
            }
            default:
                throw Error(t.Offset, $"expected an expression, found {Describe(t)}");
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var t = Peek;
            if (t.IsOp("."))
            {
                Next();
                var attr = Next();
                if (attr.Kind == TokenKind.Name) node = new AttrExpr(t.Offset, node, attr.Value);
                else if (attr.Kind == TokenKind.Integer) node = new ItemExpr(t.Offset, node, new LiteralExpr(attr.Offset, attr.Number));
                else throw Error(attr.Offset, $"expected an attribute name after '.', found {Describe(attr)}");
            }
            else if (t.IsOp("["))
                node = ParseSubscript(node);
            else if (t.IsOp("("))
                node = ParseCall(node);
            else
                return node;
        }
    }

    private Expr ParseSubscript(Expr target)
    {
        int offset = Next().Offset;
        Expr? start = null, stop = null, step = null;
        if (!Peek.IsOp(":"))
        {
            start = ParseExpression();
            if (Peek.IsOp("]"))
            {
                Next();
                return new ItemExpr(offset, target, start);
            }
        }
        ExpectOp(":");
        if (!Peek.IsOp("]") && !Peek.IsOp(":")) stop = ParseExpression();
        if (Peek.IsOp(":"))
        {
            Next();
            if (!Peek.IsOp("]")) step = ParseExpression();
        }
        ExpectOp("]");
        return new SliceExpr(offset, target, start, stop, step);
    }

    private (List<Expr>, List<(string, Expr)>) ParseArgs()
    {
        ExpectOp("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!Peek.IsOp(")"))
        {
            if (Peek.Kind == TokenKind.Name && PeekAt(1).IsOp("="))
            {
                string name = Next().Value;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error(Peek.Offset, "positional argument after a keyword argument");
                args.Add(ParseExpression());
            }
            if (!Peek.IsOp(",")) break;
            Next();
        }
        ExpectOp(")");
        return (args, kwargs);
    }

    private CallExpr ParseCall(Expr callee)
    {
        var (args, kwargs) = ParseArgs();
        return new CallExpr(callee.Offset, callee, args, kwargs);
    }

    private FilterExpr ParseFilterCall(Expr? target)
    {
        int offset = Peek.Offset;
        string name = ExpectName("a filter name");
        if (!TemplateBuiltins.FilterNames.Contains(name))
            throw Error(offset, $"unknown filter '{name}'");
        if (Peek.IsOp("("))
        {
            var (args, kwargs) = ParseArgs();
            return new FilterExpr(offset, target, name, args, kwargs);
        }
        return new FilterExpr(offset, target, name, [], []);
    }

    private static readonly HashSet<string> NotTestArgument = ["else", "or", "and", "if", "in", "is", "not"];

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            var t = Peek;
            if (t.IsOp("|"))
            {
                Next();
                node = ParseFilterCall(node);
            }
            else if (t.IsName("is"))
            {
                Next();
                bool negated = false;
                if (Peek.IsName("not"))
                {
                    Next();
                    negated = true;
                }
                int offset = Peek.Offset;
                string name = ExpectName("a test name after 'is'");
                if (!TemplateBuiltins.TestNames.Contains(name))
                    throw Error(offset, $"unknown test '{name}'");
                var args = new List<Expr>();
                if (Peek.IsOp("("))
                {
                    var (a, kw) = ParseArgs();
                    args = a;
                    if (kw.Count > 0) throw Error(offset, "tests take no keyword arguments");
                }
                else if ((Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                          || (Peek.Kind == TokenKind.Name && !NotTestArgument.Contains(Peek.Value))
                          || Peek.IsOp("[") || Peek.IsOp("{")))
                    args.Add(ParsePostfix(ParsePrimary()));
                node = new TestExpr(offset, node, name, args, negated);
            }
            else if (t.IsOp("("))
                node = ParseCall(node);
            else
                return node;
        }
    }
}
