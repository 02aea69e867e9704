using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;

namespace ClockLM.Tokenizers.ChatTemplates;

/// <summary>A level of variables: the template's globals, a loop iteration, or a macro call.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);
    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s != null; s = s.Parent)
            if (s._vars.TryGetValue(name, out value))
                return true;
        value = null;
        return false;
    }

    public void Set(string name, object? value) => _vars[name] = value;
}

/// <summary>A macro defined with <c>{% macro %}</c>, closing over the scope it was defined in.</summary>
internal sealed class Macro(MacroNode node, Scope closure, string name) : TemplateCallable
{
    public MacroNode Node { get; } = node;
    public Scope Closure { get; } = closure;
    public override string Name => name;

    public override object? Invoke(TemplateRenderer renderer, List<object?> args, Dictionary<string, object?> kwargs, Node at) =>
        renderer.CallMacro(this, args, kwargs, at);
}

/// <summary>A loop over a <see cref="RangeValue"/> without building the list.</summary>
internal sealed class RangeList(RangeValue range) : IReadOnlyList<object?>
{
    public int Count { get; } = (int)Math.Min(range.Count, int.MaxValue);
    public object? this[int index] => range[index];
    public IEnumerator<object?> GetEnumerator()
    {
        for (int i = 0; i < Count; i++) yield return range[i];
    }
    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>
/// Walks the syntax tree and writes the prompt. Counts every loop iteration, macro call and output character
/// against <see cref="ChatTemplateOptions"/>, so a hostile template ends with a typed exception instead of
/// hanging, exhausting memory or overflowing the stack.
/// </summary>
internal sealed class TemplateRenderer
{
    private enum Flow { Normal, Break, Continue }

    private readonly SourceMap _map;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _iterations;
    private int _callDepth;

    public ChatTemplateOptions Options { get; }

    public TemplateRenderer(ChatTemplateOptions options, SourceMap map)
    {
        Options = options;
        _map = map;
    }

    public string Render(List<Node> body, Scope globals)
    {
        var output = new StringBuilder();
        ExecBody(body, globals, output);
        return output.ToString();
    }

    // ---------------- errors and limits ----------------

    public (int Line, int Column) Locate(Node at) => _map.Locate(at.Offset);

    public ChatTemplateException Fail(Node at, string reason)
    {
        var (line, col) = _map.Locate(at.Offset);
        return new ChatTemplateException(line, col, reason);
    }

    public ChatTemplateLimitException LimitHit(Node at, string limit, string reason)
    {
        var (line, col) = _map.Locate(at.Offset);
        return new ChatTemplateLimitException(line, col, limit, reason);
    }

    private ChatTemplateLimitException OutputLimit(Node at) => LimitHit(at, nameof(ChatTemplateOptions.MaxOutputChars),
        $"output or string would exceed MaxOutputChars = {Options.MaxOutputChars}");

    /// <summary>Fails when a string of <paramref name="length"/> characters would break the output limit.</summary>
    public void CheckStringLength(long length, Node at)
    {
        if (length > Options.MaxOutputChars) throw OutputLimit(at);
    }

    public void CheckListLength(long length, Node at)
    {
        if (length > Options.MaxListLength)
            throw LimitHit(at, nameof(ChatTemplateOptions.MaxListLength), $"list of {length} items exceeds MaxListLength = {Options.MaxListLength}");
    }

    private void Emit(StringBuilder output, string text, Node at)
    {
        if ((long)output.Length + text.Length > Options.MaxOutputChars) throw OutputLimit(at);
        output.Append(text);
    }

    private void CountIteration(Node at)
    {
        if (++_iterations > Options.MaxLoopIterations)
            throw LimitHit(at, nameof(ChatTemplateOptions.MaxLoopIterations),
                $"loops ran more than MaxLoopIterations = {Options.MaxLoopIterations} iterations");
        if ((_iterations & 1023) == 0) CheckTime(at);
    }

    private void CheckTime(Node at)
    {
        if (_clock.Elapsed > Options.Timeout)
            throw LimitHit(at, nameof(ChatTemplateOptions.Timeout), $"rendering took longer than Timeout = {Options.Timeout.TotalSeconds} s");
    }

    private void CheckStack(Node at)
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw LimitHit(at, nameof(ChatTemplateOptions.MaxNestingDepth), "template recursion is too deep for the stack");
    }

    /// <summary>Python's str(value), bounded by the output limit.</summary>
    public string Str(object? value, Node at)
    {
        try
        {
            string s = PyValue.Str(value, Options.MaxOutputChars);
            CheckStringLength(s.Length, at);
            return s;
        }
        catch (StringLimitException)
        {
            throw OutputLimit(at);
        }
    }

    // ---------------- statements ----------------

    private Flow ExecBody(List<Node> body, Scope scope, StringBuilder output)
    {
        foreach (var node in body)
        {
            var flow = Exec(node, scope, output);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow Exec(Node node, Scope scope, StringBuilder output)
    {
        CheckStack(node);
        switch (node)
        {
            case TextNode t:
                Emit(output, t.Text, t);
                return Flow.Normal;
            case OutputNode o:
                Emit(output, Str(Eval(o.Value, scope), o), o);
                return Flow.Normal;
            case IfNode i:
                foreach (var (test, body) in i.Branches)
                    if (PyValue.IsTrue(Eval(test, scope)))
                        return ExecBody(body, scope, output);
                return i.Else != null ? ExecBody(i.Else, scope, output) : Flow.Normal;
            case ForNode f:
                ExecFor(f, scope, output);
                return Flow.Normal;
            case SetNode s:
                ExecSet(s, scope);
                return Flow.Normal;
            case SetAttrNode sa:
                if (Eval(sa.Target, scope) is not Namespace ns)
                    throw Fail(sa, $"can only assign attributes of a namespace() object, not of '{((NameExpr)sa.Target).Name}'");
                ns.Attributes[sa.Attribute] = Eval(sa.Value, scope);
                return Flow.Normal;
            case MacroNode m:
                scope.Set(m.Name, new Macro(m, scope, m.Name));
                return Flow.Normal;
            case CallBlockNode c:
                ExecCallBlock(c, scope, output);
                return Flow.Normal;
            case FilterBlockNode fb:
            {
                var captured = new StringBuilder();
                ExecBody(fb.Body, scope, captured);
                object? value = captured.ToString();
                foreach (var filter in fb.Filters)
                    value = TemplateBuiltins.ApplyFilter(this, filter, value, EvalArgs(filter.Args, scope), EvalKwargs(filter.Kwargs, scope));
                Emit(output, Str(value, fb), fb);
                return Flow.Normal;
            }
            case BlockNode b:
                return ExecBody(b.Body, scope, output);
            case BreakNode:
                return Flow.Break;
            case ContinueNode:
                return Flow.Continue;
            default:
                throw Fail(node, $"cannot execute {node.GetType().Name}");
        }
    }

    private void ExecSet(SetNode s, Scope scope)
    {
        object? value;
        if (s.Body != null)
        {
            var captured = new StringBuilder();
            ExecBody(s.Body, scope, captured);
            value = captured.ToString();
        }
        else
            value = Eval(s.Value!, scope);
        Assign(s, s.Targets, value, scope);
    }

    private void Assign(Node at, List<string> targets, object? value, Scope scope)
    {
        if (targets.Count == 1)
        {
            scope.Set(targets[0], value);
            return;
        }
        var items = Iterate(value, at);
        if (items.Count != targets.Count)
            throw Fail(at, $"cannot unpack {items.Count} values into {targets.Count} names ({string.Join(", ", targets)})");
        for (int i = 0; i < targets.Count; i++) scope.Set(targets[i], items[i]);
    }

    private void ExecFor(ForNode f, Scope scope, StringBuilder output)
    {
        if (f.Recursive) throw Fail(f, "recursive for loops are not supported");
        var iterable = Eval(f.Iterable, scope);
        // A loop may walk a huge range lazily; the iteration limit stops it.
        var source = iterable is RangeValue range ? new RangeList(range) : Iterate(iterable, f.Iterable);
        IReadOnlyList<object?> items = source;
        if (f.Filter != null)
        {
            var kept = new List<object?>();
            foreach (var item in source)
            {
                CountIteration(f);
                var filterScope = new Scope(scope);
                Assign(f, f.Targets, item, filterScope);
                if (PyValue.IsTrue(Eval(f.Filter, filterScope))) kept.Add(item);
            }
            items = kept;
        }
        scope.TryGet("loop", out object? outer);
        var loop = new LoopContext(items, outer as LoopContext) { Node = f, Scope = scope };
        for (int i = 0; i < items.Count; i++)
        {
            CountIteration(f);
            loop.Index0 = i;
            var iteration = new Scope(scope);
            iteration.Set("loop", loop);
            Assign(f, f.Targets, items[i], iteration);
            if (ExecBody(f.Body, iteration, output) == Flow.Break) break;
        }
        if (items.Count == 0 && f.Else != null)
            ExecBody(f.Else, scope, output);
    }

    private void ExecCallBlock(CallBlockNode c, Scope scope, StringBuilder output)
    {
        var call = (CallExpr)c.Call;
        var callee = Eval(call.Callee, scope);
        if (callee is not TemplateCallable function) throw Fail(c, $"'call' needs a macro, got {PyValue.TypeName(callee)}");
        var callerNode = new MacroNode(c.Offset, "caller", c.CallerParams, c.Body);
        var kwargs = EvalKwargs(call.Kwargs, scope);
        kwargs["caller"] = new Macro(callerNode, scope, "caller");
        Emit(output, Str(function.Invoke(this, EvalArgs(call.Args, scope), kwargs, c), c), c);
    }

    public object? CallMacro(Macro macro, List<object?> args, Dictionary<string, object?> kwargs, Node at)
    {
        if (++_callDepth > Options.MaxCallDepth)
            throw LimitHit(at, nameof(ChatTemplateOptions.MaxCallDepth), $"macro '{macro.Name}' called deeper than MaxCallDepth = {Options.MaxCallDepth}");
        CheckTime(at);
        try
        {
            var scope = new Scope(macro.Closure);
            var ps = macro.Node.Params;
            for (int i = 0; i < ps.Count; i++)
            {
                if (i < args.Count) scope.Set(ps[i].Name, args[i]);
                else if (kwargs.Remove(ps[i].Name, out object? kw)) scope.Set(ps[i].Name, kw);
                else if (ps[i].Default != null) scope.Set(ps[i].Name, Eval(ps[i].Default!, scope));
                else scope.Set(ps[i].Name, new Undefined($"macro '{macro.Name}' was called without '{ps[i].Name}'"));
            }
            scope.Set("varargs", args.Count > ps.Count ? new TupleValue(args.GetRange(ps.Count, args.Count - ps.Count)) : new TupleValue());
            if (kwargs.Remove("caller", out object? caller)) scope.Set("caller", caller);
            var rest = new OrderedDictionary<string, object?>();
            foreach (var (k, v) in kwargs) rest[k] = v;
            scope.Set("kwargs", rest);
            var output = new StringBuilder();
            ExecBody(macro.Node.Body, scope, output);
            return output.ToString();
        }
        finally
        {
            _callDepth--;
        }
    }

    /// <summary>The items a for loop or a filter walks: a list's items, a dict's keys, a string's characters,
    /// a range's numbers (a range longer than MaxListLength is refused).</summary>
    public IReadOnlyList<object?> Iterate(object? value, Node at) => value switch
    {
        List<object?> list => list,
        OrderedDictionary<string, object?> dict => dict.Keys.Cast<object?>().ToList(),
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        RangeValue r => CheckedRange(r, at),
        Undefined => [],
        Namespace ns => ns.Attributes.Keys.Cast<object?>().ToList(),
        _ => throw Fail(at, $"'{PyValue.TypeName(value)}' object is not iterable"),
    };

    private RangeList CheckedRange(RangeValue r, Node at)
    {
        CheckListLength(r.Count, at);
        return new RangeList(r);
    }

    /// <summary>Like <see cref="Iterate"/> but always a fresh list.</summary>
    public List<object?> ToList(object? value, Node at) => [.. Iterate(value, at)];

    // ---------------- expressions ----------------

    public List<object?> EvalArgs(List<Expr> args, Scope scope) => args.Select(a => Eval(a, scope)).ToList();

    public Dictionary<string, object?> EvalKwargs(List<(string Name, Expr Value)> kwargs, Scope scope)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in kwargs) result[name] = Eval(value, scope);
        return result;
    }

    public object? Eval(Expr expr, Scope scope)
    {
        CheckStack(expr);
        try
        {
            return EvalCore(expr, scope);
        }
        catch (StringLimitException)
        {
            throw OutputLimit(expr);
        }
        catch (CompareLimitException)
        {
            throw LimitHit(expr, nameof(PyValue.MaxCompareSteps),
                $"comparison visits more than {PyValue.MaxCompareSteps} elements or nests deeper than 64 levels");
        }
        catch (NotJsonException e)
        {
            throw Fail(expr, e.Message);
        }
        catch (OverflowException)
        {
            throw Fail(expr, "integer overflow");
        }
    }

    private object? EvalCore(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case LiteralExpr l:
                return l.Value;
            case NameExpr n:
                if (scope.TryGet(n.Name, out object? value)) return value;
                return TemplateBuiltins.Globals.TryGetValue(n.Name, out var global) ? global : new Undefined($"'{n.Name}' is undefined");
            case ListExpr list:
                var items = list.Items.Select(i => Eval(i, scope));
                return list.IsTuple ? new TupleValue(items) : items.ToList();
            case DictExpr d:
            {
                var dict = new OrderedDictionary<string, object?>();
                foreach (var (k, v) in d.Items) dict[Str(Eval(k, scope), k)] = Eval(v, scope);
                return dict;
            }
            case AttrExpr a:
                return GetAttr(Eval(a.Target, scope), a.Name, a);
            case ItemExpr i:
                return GetItem(Eval(i.Target, scope), Eval(i.Index, scope), i);
            case SliceExpr s:
                return Slice(Eval(s.Target, scope), s.Start == null ? null : Eval(s.Start, scope),
                    s.Stop == null ? null : Eval(s.Stop, scope), s.Step == null ? null : Eval(s.Step, scope), s);
            case CallExpr c:
            {
                var callee = Eval(c.Callee, scope);
                if (callee is TemplateCallable f) return f.Invoke(this, EvalArgs(c.Args, scope), EvalKwargs(c.Kwargs, scope), c);
                if (callee is Undefined u) throw Fail(c, $"cannot call an undefined value ({u.Hint})");
                throw Fail(c, $"'{PyValue.TypeName(callee)}' object is not callable");
            }
            case FilterExpr f:
                return TemplateBuiltins.ApplyFilter(this, f, Eval(f.Target!, scope), EvalArgs(f.Args, scope), EvalKwargs(f.Kwargs, scope));
            case TestExpr t:
            {
                bool result = TemplateBuiltins.ApplyTest(this, t, t.Name, Eval(t.Target, scope), EvalArgs(t.Args, scope));
                return t.Negated ? !result : result;
            }
            case UnaryExpr u:
            {
                var operand = Eval(u.Operand, scope);
                if (u.Op == "not") return !PyValue.IsTrue(operand);
                return operand switch
                {
                    long l => (object)(u.Op == "-" ? checked(-l) : l),
                    double d => u.Op == "-" ? -d : d,
                    bool b => u.Op == "-" ? -(b ? 1L : 0L) : (b ? 1L : 0L),
                    _ => throw Fail(u, $"bad operand type for unary {u.Op}: '{PyValue.TypeName(operand)}'"),
                };
            }
            case BinaryExpr b:
                if (b.Op == "and")
                {
                    var left = Eval(b.Left, scope);
                    return PyValue.IsTrue(left) ? Eval(b.Right, scope) : left;
                }
                if (b.Op == "or")
                {
                    var left = Eval(b.Left, scope);
                    return PyValue.IsTrue(left) ? left : Eval(b.Right, scope);
                }
                return Binary(b, Eval(b.Left, scope), Eval(b.Right, scope));
            case CompareExpr c:
            {
                var left = Eval(c.First, scope);
                foreach (var (op, operandExpr) in c.Rest)
                {
                    var right = Eval(operandExpr, scope);
                    if (!Compare(c, op, left, right)) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr c:
                if (PyValue.IsTrue(Eval(c.Test, scope))) return Eval(c.Then, scope);
                return c.Else != null ? Eval(c.Else, scope) : new Undefined("the condition was false and there is no else");
            default:
                throw Fail(expr, $"cannot evaluate {expr.GetType().Name}");
        }
    }

    private static readonly HashSet<string> DictMethods = ["items", "keys", "values", "get"];

    public object? GetAttr(object? target, string name, Node at)
    {
        switch (target)
        {
            case Undefined u:
                throw Fail(at, $"cannot read attribute '{name}' of an undefined value ({u.Hint})");
            case OrderedDictionary<string, object?> dict:
                if (DictMethods.Contains(name)) return new BoundMethod(dict, name);
                return dict.TryGetValue(name, out var value) ? value : new Undefined($"dict has no attribute '{name}'");
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var attr) ? attr : new Undefined($"namespace has no attribute '{name}'");
            case LoopContext loop:
                return loop.Get(name);
            case string or List<object?>:
                return TemplateBuiltins.IsMethod(target, name) ? new BoundMethod(target, name)
                    : new Undefined($"'{PyValue.TypeName(target)}' object has no attribute '{name}'");
            default:
                return new Undefined($"'{PyValue.TypeName(target)}' object has no attribute '{name}'");
        }
    }

    public object? GetItem(object? target, object? key, Node at)
    {
        switch (target)
        {
            case Undefined u:
                throw Fail(at, $"cannot index an undefined value ({u.Hint})");
            case OrderedDictionary<string, object?> dict:
            {
                string k = key as string ?? PyValue.Str(key, Options.MaxOutputChars);
                if (dict.TryGetValue(k, out var value)) return value;
                return key is string s && DictMethods.Contains(s) ? new BoundMethod(dict, s) : new Undefined($"dict has no key {PyValue.Repr(key, 200)}");
            }
            case List<object?> list when key is long or bool:
            {
                long i = PyValue.ToLong(key);
                if (i < 0) i += list.Count;
                return i >= 0 && i < list.Count ? list[(int)i] : new Undefined($"list index {PyValue.ToLong(key)} out of range");
            }
            case string str when key is long or bool:
            {
                long i = PyValue.ToLong(key);
                if (i < 0) i += str.Length;
                return i >= 0 && i < str.Length ? str[(int)i].ToString() : new Undefined($"string index {PyValue.ToLong(key)} out of range");
            }
            case RangeValue r when key is long or bool:
            {
                long i = PyValue.ToLong(key);
                if (i < 0) i += r.Count;
                return i >= 0 && i < r.Count ? r[i] : new Undefined($"range index {PyValue.ToLong(key)} out of range");
            }
            case Namespace or LoopContext when key is string name:
                return GetAttr(target, name, at);
            case string or List<object?> when key is string name:
                return GetAttr(target, name, at);
            default:
                return new Undefined($"'{PyValue.TypeName(target)}' object has no item {PyValue.Repr(key, 200)}");
        }
    }

    private object? Slice(object? target, object? start, object? stop, object? step, Node at)
    {
        long? Bound(object? v, string what) => v switch
        {
            null => null,
            long or bool => PyValue.ToLong(v),
            _ => throw Fail(at, $"slice {what} must be an integer or none, not '{PyValue.TypeName(v)}'"),
        };
        long stepValue = Bound(step, "step") ?? 1;
        if (stepValue == 0) throw Fail(at, "slice step cannot be zero");
        IReadOnlyList<object?> items;
        bool isString = false;
        switch (target)
        {
            case string s: items = s.Select(c => (object?)c).ToList(); isString = true; break;
            case List<object?> l: items = l; break;
            case RangeValue r: CheckListLength(r.Count, at); items = new RangeList(r); break;
            case Undefined u: throw Fail(at, $"cannot slice an undefined value ({u.Hint})");
            default: throw Fail(at, $"'{PyValue.TypeName(target)}' object cannot be sliced");
        }
        long n = items.Count;
        long Clamp(long? v, long defaultValue, long low, long high)
        {
            if (v == null) return defaultValue;
            long x = v.Value < 0 ? v.Value + n : v.Value;
            return Math.Clamp(x, low, high);
        }
        var picked = new List<object?>();
        if (stepValue > 0)
        {
            long a = Clamp(Bound(start, "start"), 0, 0, n), b = Clamp(Bound(stop, "stop"), n, 0, n);
            for (long i = a; i < b; i += stepValue) picked.Add(items[(int)i]);
        }
        else
        {
            long a = Clamp(Bound(start, "start"), n - 1, -1, n - 1), b = Clamp(Bound(stop, "stop"), -1, -1, n - 1);
            for (long i = a; i > b; i += stepValue) picked.Add(items[(int)i]);
        }
        if (isString) return string.Concat(picked.Select(c => (char)c!));
        return picked;
    }

    private bool Compare(Node at, string op, object? left, object? right)
    {
        switch (op)
        {
            case "==": return PyValue.Equals(left, right);
            case "!=": return !PyValue.Equals(left, right);
            case "in": return Contains(right, left, at);
            case "not in": return !Contains(right, left, at);
        }
        int? c = PyValue.Compare(left, right);
        if (c == null)
            throw Fail(at, $"'{op}' not supported between '{PyValue.TypeName(left)}' and '{PyValue.TypeName(right)}'");
        return op switch
        {
            "<" => c < 0,
            ">" => c > 0,
            "<=" => c <= 0,
            _ => c >= 0,
        };
    }

    public bool Contains(object? container, object? item, Node at)
    {
        switch (container)
        {
            case string s:
                if (item is not string sub) throw Fail(at, $"'in <string>' requires a string on the left, not '{PyValue.TypeName(item)}'");
                return s.Contains(sub, StringComparison.Ordinal);
            case List<object?> list:
                return list.Any(x => PyValue.Equals(x, item));
            case OrderedDictionary<string, object?> dict:
                return item is string key && dict.ContainsKey(key);
            case RangeValue r:
                if (item is not (long or bool)) return false;
                long v = PyValue.ToLong(item);
                if (r.Step > 0 ? v < r.Start || v >= r.Stop : v > r.Start || v <= r.Stop) return false;
                return (v - r.Start) % r.Step == 0;
            case Undefined:
                return false;
            default:
                throw Fail(at, $"argument of type '{PyValue.TypeName(container)}' is not a container");
        }
    }

    private object? Binary(BinaryExpr b, object? left, object? right)
    {
        if (b.Op == "~")
        {
            string l = Str(left, b), r = Str(right, b);
            CheckStringLength((long)l.Length + r.Length, b);
            return l + r;
        }
        if (left is Undefined ul) throw Fail(b, $"'{b.Op}' with an undefined value ({ul.Hint})");
        if (right is Undefined ur) throw Fail(b, $"'{b.Op}' with an undefined value ({ur.Hint})");
        switch (b.Op)
        {
            case "+":
                if (left is string ls && right is string rs)
                {
                    CheckStringLength((long)ls.Length + rs.Length, b);
                    return ls + rs;
                }
                if (left is List<object?> ll && right is List<object?> rl)
                {
                    CheckListLength((long)ll.Count + rl.Count, b);
                    return ll.Concat(rl).ToList();
                }
                break;
            case "*":
                if (left is string s1 && right is long or bool) return Repeat(s1, PyValue.ToLong(right), b);
                if (right is string s2 && left is long or bool) return Repeat(s2, PyValue.ToLong(left), b);
                if (left is List<object?> l1 && right is long or bool) return RepeatList(l1, PyValue.ToLong(right), b);
                if (right is List<object?> l2 && left is long or bool) return RepeatList(l2, PyValue.ToLong(left), b);
                break;
        }
        if (!PyValue.IsNumber(left) || !PyValue.IsNumber(right))
            throw Fail(b, $"unsupported operand types for {b.Op}: '{PyValue.TypeName(left)}' and '{PyValue.TypeName(right)}'");
        bool floats = left is double || right is double;
        switch (b.Op)
        {
            case "+": return floats ? PyValue.ToDouble(left) + PyValue.ToDouble(right) : (object)checked(PyValue.ToLong(left) + PyValue.ToLong(right));
            case "-": return floats ? PyValue.ToDouble(left) - PyValue.ToDouble(right) : (object)checked(PyValue.ToLong(left) - PyValue.ToLong(right));
            case "*": return floats ? PyValue.ToDouble(left) * PyValue.ToDouble(right) : (object)checked(PyValue.ToLong(left) * PyValue.ToLong(right));
            case "/":
                if (PyValue.ToDouble(right) == 0) throw Fail(b, "division by zero");
                return PyValue.ToDouble(left) / PyValue.ToDouble(right);
            case "//":
                if (PyValue.ToDouble(right) == 0) throw Fail(b, "integer division or modulo by zero");
                if (floats) return Math.Floor(PyValue.ToDouble(left) / PyValue.ToDouble(right));
                {
                    long x = PyValue.ToLong(left), y = PyValue.ToLong(right);
                    long q = x / y;
                    if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
                    return q;
                }
            case "%":
                if (PyValue.ToDouble(right) == 0) throw Fail(b, "integer division or modulo by zero");
                if (floats)
                {
                    double x = PyValue.ToDouble(left), y = PyValue.ToDouble(right);
                    double m = x % y;
                    return m != 0 && (m < 0) != (y < 0) ? m + y : m;
                }
                {
                    long x = PyValue.ToLong(left), y = PyValue.ToLong(right);
                    long m = x % y;
                    return m != 0 && (m < 0) != (y < 0) ? m + y : m;
                }
            case "**":
                if (!floats && PyValue.ToLong(right) >= 0)
                {
                    // Square-and-multiply: O(log e) steps; overflow is an error, as Python ints are unbounded.
                    long baseValue = PyValue.ToLong(left), result = 1;
                    for (long e = PyValue.ToLong(right); e > 0; e >>= 1)
                    {
                        if ((e & 1) != 0) result = checked(result * baseValue);
                        if (e > 1) baseValue = checked(baseValue * baseValue);
                    }
                    return result;
                }
                return Math.Pow(PyValue.ToDouble(left), PyValue.ToDouble(right));
        }
        throw Fail(b, $"unknown operator {b.Op}");
    }

    private string Repeat(string s, long n, Node at)
    {
        if (n <= 0 || s.Length == 0) return "";
        CheckStringLength(s.Length * Math.Min(n, int.MaxValue), at);
        return new StringBuilder(s.Length * (int)n).Insert(0, s, (int)n).ToString();
    }

    private List<object?> RepeatList(List<object?> list, long n, Node at)
    {
        if (n <= 0 || list.Count == 0) return [];
        CheckListLength(list.Count * Math.Min(n, int.MaxValue), at);
        var result = new List<object?>(list.Count * (int)n);
        for (long i = 0; i < n; i++) result.AddRange(list);
        return result;
    }
}
