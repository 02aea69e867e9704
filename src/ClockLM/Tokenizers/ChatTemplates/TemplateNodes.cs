namespace ClockLM.Tokenizers.ChatTemplates;

// The syntax tree of a template. Every node keeps the source offset it came from, so that errors at render
// time can name line:column.

internal abstract record Node(int Offset);

// ---- statements ----
internal sealed record TextNode(int Offset, string Text) : Node(Offset);
internal sealed record OutputNode(int Offset, Expr Value) : Node(Offset);
internal sealed record IfNode(int Offset, List<(Expr Test, List<Node> Body)> Branches, List<Node>? Else) : Node(Offset);
internal sealed record ForNode(int Offset, List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else, bool Recursive) : Node(Offset);
internal sealed record SetNode(int Offset, List<string> Targets, Expr? Value, List<Node>? Body) : Node(Offset);
internal sealed record SetAttrNode(int Offset, Expr Target, string Attribute, Expr Value) : Node(Offset);
internal sealed record MacroNode(int Offset, string Name, List<MacroParam> Params, List<Node> Body) : Node(Offset);
internal sealed record CallBlockNode(int Offset, Expr Call, List<MacroParam> CallerParams, List<Node> Body) : Node(Offset);
internal sealed record FilterBlockNode(int Offset, List<FilterExpr> Filters, List<Node> Body) : Node(Offset);
internal sealed record BreakNode(int Offset) : Node(Offset);
internal sealed record ContinueNode(int Offset) : Node(Offset);
internal sealed record BlockNode(int Offset, List<Node> Body) : Node(Offset);

internal sealed record MacroParam(string Name, Expr? Default);

// ---- expressions ----
internal abstract record Expr(int Offset) : Node(Offset);
internal sealed record LiteralExpr(int Offset, object? Value) : Expr(Offset);
internal sealed record NameExpr(int Offset, string Name) : Expr(Offset);
internal sealed record ListExpr(int Offset, List<Expr> Items, bool IsTuple = false) : Expr(Offset);
internal sealed record DictExpr(int Offset, List<(Expr Key, Expr Value)> Items) : Expr(Offset);
internal sealed record AttrExpr(int Offset, Expr Target, string Name) : Expr(Offset);
internal sealed record ItemExpr(int Offset, Expr Target, Expr Index) : Expr(Offset);
internal sealed record SliceExpr(int Offset, Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr(Offset);
internal sealed record CallExpr(int Offset, Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Offset);
internal sealed record FilterExpr(int Offset, Expr? Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Offset);
internal sealed record TestExpr(int Offset, Expr Target, string Name, List<Expr> Args, bool Negated) : Expr(Offset);
internal sealed record UnaryExpr(int Offset, string Op, Expr Operand) : Expr(Offset);
internal sealed record BinaryExpr(int Offset, string Op, Expr Left, Expr Right) : Expr(Offset);
internal sealed record CompareExpr(int Offset, Expr First, List<(string Op, Expr Operand)> Rest) : Expr(Offset);
internal sealed record CondExpr(int Offset, Expr Test, Expr Then, Expr? Else) : Expr(Offset);
