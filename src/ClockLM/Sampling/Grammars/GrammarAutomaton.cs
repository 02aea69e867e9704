using System.Runtime.InteropServices;

namespace ClockLM.Sampling.Grammars;

/// <summary>
/// The states of a <see cref="Grammar"/> matched byte by byte, built as they are reached (a lazily built DFA).
/// <para>
/// A parse position is a stack: its top is a byte-set element still to match, below it the places to return to when
/// the rules above end. Stacks are interned as linked frames <c>(element, parent frame)</c>, so equal stacks are the
/// same number and share their tails. A state is the set of stacks the input so far leaves alive (several when the
/// grammar is ambiguous so far); states are interned too, and each remembers where every byte takes it. Matching a
/// byte that was seen before from that state is one array read. A reference that ends its alternative pushes no
/// return frame (the call is a tail call), so repetitions (<c>s ::= x s | ε</c>) do not grow the stack.
/// </para>
/// Not thread-safe: one automaton serves one sequence at a time.
/// </summary>
internal sealed class GrammarAutomaton
{
    /// <summary>No stack survives: the input is not a prefix of the grammar's language.</summary>
    public const int Dead = -1;
    private const int Unknown = -2;
    private const int Bottom = -1;      // parent of a bottom frame
    private const int AcceptFrame = 0;  // the empty stack: the root rule has ended

    private readonly Grammar _grammar;

    // Frames: (element position, parent frame).
    private int[] _framePosition = new int[256], _frameParent = new int[256];
    private int _frames;
    private readonly Dictionary<long, int> _frameIds = new();

    // States: their stacks (sorted frame ids) and where each byte goes (allocated when first stepped from).
    private int[][] _stacks = new int[64][];
    private int[]?[] _next = new int[64][];
    private bool[] _accepts = new bool[64];
    private int _states;
    private readonly Dictionary<int[], int> _stateIds = new(StackSetComparer.Instance);

    // Scratch for one step.
    private readonly List<int> _reached = new();
    private readonly HashSet<long> _expanded = new();

    public GrammarAutomaton(Grammar grammar)
    {
        _grammar = grammar;
        InternFrame(-1, Bottom); // frame 0: the accept frame
        foreach (int start in _grammar.AlternativesOf(_grammar.RootRule)) Expand(start, Bottom);
        Start = _reached.Count == 0 ? Dead : Intern();
    }

    /// <summary>The state before any input.</summary>
    public int Start { get; }

    /// <summary>States interned so far.</summary>
    public int StateCount => _states;

    /// <summary>Frames interned so far.</summary>
    public int FrameCount => _frames;

    /// <summary>True when the input that led to <paramref name="state"/> is a whole sentence of the grammar.</summary>
    public bool Accepts(int state) => _accepts[state];

    /// <summary>True when nothing can follow (only the end of the text).</summary>
    public bool IsFinal(int state) => _stacks[state] is [AcceptFrame];

    /// <summary>The state after byte <paramref name="b"/>, or <see cref="Dead"/>.</summary>
    public int Step(int state, byte b)
    {
        var row = _next[state];
        if (row is not null)
        {
            int known = row[b];
            if (known != Unknown) return known;
        }
        return StepSlow(state, b);
    }

    /// <summary>The state after <paramref name="bytes"/>, or <see cref="Dead"/>.</summary>
    public int Step(int state, ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            state = Step(state, b);
            if (state < 0) return Dead;
        }
        return state;
    }

    private int StepSlow(int state, byte b)
    {
        var row = _next[state];
        if (row is null)
        {
            row = _next[state] = new int[256];
            row.AsSpan().Fill(Unknown);
        }
        _reached.Clear();
        _expanded.Clear();
        foreach (int frame in _stacks[state])
        {
            if (frame == AcceptFrame) continue;
            int position = _framePosition[frame];
            if (_grammar.Matches(position, b)) Expand(position + 1, _frameParent[frame]);
        }
        int next = _reached.Count == 0 ? Dead : Intern();
        row[b] = next;
        return next;
    }

    /// <summary>
    /// The id here of the state <paramref name="state"/> of another automaton of the same grammar: its stacks are
    /// re-interned from the element positions they hold, so matching goes on exactly where it was. A sequence whose
    /// shared tables have grown too large moves to fresh ones this way.
    /// </summary>
    public int Adopt(GrammarAutomaton source, int state)
    {
        if (source._grammar != _grammar) throw new ArgumentException("the automata follow different grammars", nameof(source));
        _reached.Clear();
        foreach (int top in source._stacks[state])
        {
            if (top == AcceptFrame) { _reached.Add(AcceptFrame); continue; }
            var positions = new List<int>();
            for (int f = top; f != Bottom; f = source._frameParent[f]) positions.Add(source._framePosition[f]);
            int frame = Bottom;
            for (int i = positions.Count - 1; i >= 0; i--) frame = InternFrame(positions[i], frame);
            _reached.Add(frame);
        }
        return Intern();
    }

    /// <summary>Adds to <c>_reached</c> every stack that matching from element <paramref name="position"/> (with
    /// <paramref name="parent"/> below it) can have on top: byte-set elements, or the accept frame.</summary>
    private void Expand(int position, int parent)
    {
        if (!_expanded.Add(((long)position << 32) | (uint)parent)) return;
        switch (_grammar.KindAt(position))
        {
            case Grammar.EndKind:
                if (parent == Bottom) _reached.Add(AcceptFrame);
                else Expand(_framePosition[parent], _frameParent[parent]);
                break;
            case Grammar.RuleKind:
                int returnTo = _grammar.KindAt(position + 1) == Grammar.EndKind ? parent : InternFrame(position + 1, parent);
                foreach (int start in _grammar.AlternativesOf(_grammar.ValueAt(position))) Expand(start, returnTo);
                break;
            default:
                _reached.Add(InternFrame(position, parent));
                break;
        }
    }

    private int InternFrame(int position, int parent)
    {
        long key = ((long)position << 32) | (uint)parent;
        if (_frameIds.TryGetValue(key, out int id)) return id;
        id = _frames++;
        if (id == _framePosition.Length)
        {
            Array.Resize(ref _framePosition, id * 2);
            Array.Resize(ref _frameParent, id * 2);
        }
        _framePosition[id] = position;
        _frameParent[id] = parent;
        _frameIds[key] = id;
        return id;
    }

    /// <summary>The state whose stacks are <c>_reached</c> (sorted, without repeats).</summary>
    private int Intern()
    {
        var span = CollectionsMarshal.AsSpan(_reached);
        span.Sort();
        int n = 0;
        for (int i = 0; i < span.Length; i++)
            if (i == 0 || span[i] != span[n - 1]) span[n++] = span[i];
        var stacks = span[..n].ToArray();
        if (_stateIds.TryGetValue(stacks, out int id)) return id;
        id = _states++;
        if (id == _stacks.Length)
        {
            Array.Resize(ref _stacks, id * 2);
            Array.Resize(ref _next, id * 2);
            Array.Resize(ref _accepts, id * 2);
        }
        _stacks[id] = stacks;
        _next[id] = null;
        _accepts[id] = stacks[0] == AcceptFrame;
        _stateIds[stacks] = id;
        return id;
    }

    private sealed class StackSetComparer : IEqualityComparer<int[]>
    {
        public static readonly StackSetComparer Instance = new();
        public bool Equals(int[]? a, int[]? b) => a.AsSpan().SequenceEqual(b);
        public int GetHashCode(int[] stacks)
        {
            var hash = new HashCode();
            hash.AddBytes(MemoryMarshal.AsBytes(stacks.AsSpan()));
            return hash.ToHashCode();
        }
    }
}
