namespace ClockLM.Sampling.Grammars;

/// <summary>
/// A GBNF grammar compiled to bytes: every rule is a list of alternatives, every alternative a run of elements ending in
/// an end marker, and every element either a set of bytes (one byte of input) or a reference to a rule. Character
/// classes become the UTF-8 byte sequences of their code points (<see cref="Utf8Ranges"/>), repetitions become helper
/// rules (<c>x*</c> is <c>s ::= x s | ε</c>), groups with several alternatives become helper rules. Immutable; one
/// grammar may constrain many sequences at once, each through its own <see cref="GrammarConstraint"/>.
/// </summary>
public sealed class Grammar
{
    internal const byte EndKind = 0, BytesKind = 1, RuleKind = 2;

    // Elements, alternatives laid end to end: kind and value (byte-set index or rule index) of each.
    private readonly byte[] _kinds;
    private readonly int[] _values;
    private readonly ulong[] _byteSets;        // (sets, 4): 256 bits per set
    private readonly int[][] _alternatives;    // (rules, alternatives): start element of each alternative
    private readonly string[] _ruleNames;

    private Grammar(string source, byte[] kinds, int[] values, ulong[] byteSets, int[][] alternatives, string[] ruleNames, int root)
    {
        Source = source;
        _kinds = kinds;
        _values = values;
        _byteSets = byteSets;
        _alternatives = alternatives;
        _ruleNames = ruleNames;
        RootRule = root;
    }

    /// <summary>The GBNF text this grammar was compiled from.</summary>
    public string Source { get; }

    /// <summary>Rules in all, helper rules included.</summary>
    public int RuleCount => _alternatives.Length;

    /// <summary>Elements in all (byte sets, rule references and end markers).</summary>
    public int ElementCount => _kinds.Length;

    internal int RootRule { get; }
    internal byte KindAt(int position) => _kinds[position];
    internal int ValueAt(int position) => _values[position];
    internal int[] AlternativesOf(int rule) => _alternatives[rule];
    internal string RuleName(int rule) => _ruleNames[rule];

    /// <summary>True when byte <paramref name="b"/> is in the byte set of the element at <paramref name="position"/>.</summary>
    internal bool Matches(int position, byte b) => ((_byteSets[_values[position] * 4 + (b >> 6)] >> (b & 63)) & 1) != 0;

    /// <summary>Parses and compiles GBNF text whose start rule is <paramref name="root"/>.</summary>
    /// <exception cref="GrammarException">The text is not valid GBNF, names an undefined rule, has no start rule, or is
    /// left-recursive (line:column of the problem).</exception>
    public static Grammar Parse(string text, string root = "root")
    {
        ArgumentNullException.ThrowIfNull(text);
        var rules = GbnfParser.Parse(text);
        return new Compiler(rules).Compile(text, root);
    }

    /// <summary>Lays the parsed rules out as elements.</summary>
    private sealed class Compiler
    {
        private readonly List<GbnfRule> _rules;
        private readonly Dictionary<string, int> _ruleIndex = new();
        private readonly List<List<List<(byte Kind, int Value)>>> _ruleAlternatives = new();
        private readonly List<string> _names = new();
        private readonly List<(int Line, int Column)> _places = new();
        private readonly List<ulong> _sets = new();
        private readonly Dictionary<(ulong, ulong, ulong, ulong), int> _setIndex = new();
        private readonly Dictionary<string, int> _classRules = new();

        public Compiler(List<GbnfRule> rules) => _rules = rules;

        public Grammar Compile(string text, string root)
        {
            foreach (var rule in _rules) NewRule(rule.Name, rule.Line, rule.Column);
            if (!_ruleIndex.TryGetValue(root, out int rootIndex))
                throw new GrammarException(1, 1, _rules.Count == 0 ? $"the grammar is empty; expected a '{root} ::= ...' rule"
                    : $"the grammar has no '{root}' rule to start from");
            for (int r = 0; r < _rules.Count; r++)
                foreach (var sequence in _rules[r].Alternatives)
                    _ruleAlternatives[r].Add(CompileSequence(sequence));
            CheckLeftRecursion();

            var kinds = new List<byte>();
            var values = new List<int>();
            var starts = new int[_ruleAlternatives.Count][];
            for (int r = 0; r < _ruleAlternatives.Count; r++)
            {
                starts[r] = new int[_ruleAlternatives[r].Count];
                for (int a = 0; a < _ruleAlternatives[r].Count; a++)
                {
                    starts[r][a] = kinds.Count;
                    foreach (var (kind, value) in _ruleAlternatives[r][a]) { kinds.Add(kind); values.Add(value); }
                    kinds.Add(EndKind);
                    values.Add(0);
                }
            }
            return new Grammar(text, kinds.ToArray(), values.ToArray(), _sets.ToArray(), starts, _names.ToArray(), rootIndex);
        }

        private int NewRule(string name, int line, int column)
        {
            int index = _ruleAlternatives.Count;
            _ruleAlternatives.Add([]);
            _names.Add(name);
            _places.Add((line, column));
            _ruleIndex.TryAdd(name, index);
            return index;
        }

        private int HelperRule(string kind, GbnfItem at) => NewRule($"{kind}@{at.Line}:{at.Column}#{_names.Count}", at.Line, at.Column);

        private List<(byte, int)> CompileSequence(List<GbnfItem> items)
        {
            var output = new List<(byte, int)>();
            foreach (var item in items) CompileItem(item, output);
            return output;
        }

        private void CompileItem(GbnfItem item, List<(byte Kind, int Value)> output)
        {
            switch (item)
            {
                case GbnfLiteral literal:
                    Span<byte> utf8 = stackalloc byte[4];
                    foreach (int cp in literal.CodePoints)
                    {
                        if (cp is >= 0xD800 and <= 0xDFFF)
                            throw new GrammarException(literal.Line, literal.Column, $"the literal holds the surrogate U+{cp:X4}, which UTF-8 cannot spell");
                        int n = new System.Text.Rune(cp).EncodeToUtf8(utf8);
                        for (int i = 0; i < n; i++) output.Add((BytesKind, ByteSet(utf8[i], utf8[i])));
                    }
                    break;
                case GbnfClass cls:
                    CompileClass(cls, output);
                    break;
                case GbnfReference reference:
                    if (!_ruleIndex.TryGetValue(reference.Name, out int target) || target >= _rules.Count)
                        throw new GrammarException(reference.Line, reference.Column, $"rule '{reference.Name}' is not defined");
                    output.Add((RuleKind, target));
                    break;
                case GbnfGroup group when group.Alternatives.Count == 1:
                    foreach (var inner in group.Alternatives[0]) CompileItem(inner, output);
                    break;
                case GbnfGroup group:
                {
                    int rule = HelperRule("group", group);
                    foreach (var sequence in group.Alternatives) _ruleAlternatives[rule].Add(CompileSequence(sequence));
                    output.Add((RuleKind, rule));
                    break;
                }
                case GbnfRepeat repeat:
                    CompileRepeat(repeat, output);
                    break;
            }
        }

        /// <summary>x{m,n}: m copies of x, then n-m nested optional copies (or a loop when n is unbounded).</summary>
        private void CompileRepeat(GbnfRepeat repeat, List<(byte Kind, int Value)> output)
        {
            var unit = new List<(byte Kind, int Value)>();
            CompileItem(repeat.Item, unit);
            for (int i = 0; i < repeat.Min; i++) output.AddRange(unit);
            if (repeat.Max is null)
            {
                // s ::= x s | ε : the reference to s ends its alternative, so matching does not grow the stack.
                int loop = HelperRule("repeat", repeat);
                _ruleAlternatives[loop].Add([.. unit, (RuleKind, loop)]);
                _ruleAlternatives[loop].Add([]);
                output.Add((RuleKind, loop));
                return;
            }
            int optional = -1;
            for (int i = repeat.Min; i < repeat.Max; i++)
            {
                // o_k ::= x o_(k-1) | ε
                int rule = HelperRule("optional", repeat);
                _ruleAlternatives[rule].Add(optional < 0 ? [.. unit] : [.. unit, (RuleKind, optional)]);
                _ruleAlternatives[rule].Add([]);
                optional = rule;
            }
            if (optional >= 0) output.Add((RuleKind, optional));
        }

        private void CompileClass(GbnfClass cls, List<(byte Kind, int Value)> output)
        {
            var ranges = Utf8Ranges.Normalize(cls.Ranges, cls.Negated);
            if (ranges.Count == 0) throw new GrammarException(cls.Line, cls.Column, "the character class matches no character");
            string key = string.Join(",", ranges.Select(r => $"{r.Low:X}-{r.High:X}"));
            if (_classRules.TryGetValue(key, out int known))
            {
                output.Add((RuleKind, known));
                return;
            }
            var sequences = new List<(byte Low, byte High)[]>();
            foreach (var (low, high) in ranges) Utf8Ranges.Sequences(low, high, sequences);
            var single = sequences.Where(s => s.Length == 1).ToList();
            var multi = sequences.Where(s => s.Length > 1).ToList();
            int singleSet = single.Count == 0 ? -1 : ByteSet(single.Select(s => s[0]));
            if (multi.Count == 0)
            {
                output.Add((BytesKind, singleSet));
                return;
            }
            // A helper rule: one alternative for the one-byte characters, one per multi-byte run.
            int rule = HelperRule("class", cls);
            if (singleSet >= 0) _ruleAlternatives[rule].Add([(BytesKind, singleSet)]);
            foreach (var sequence in multi)
                _ruleAlternatives[rule].Add(sequence.Select(r => (BytesKind, ByteSet(r.Low, r.High))).ToList());
            _classRules[key] = rule;
            output.Add((RuleKind, rule));
        }

        private int ByteSet(byte low, byte high) => ByteSet([(low, high)]);

        private int ByteSet(IEnumerable<(byte Low, byte High)> ranges)
        {
            Span<ulong> bits = stackalloc ulong[4];
            foreach (var (low, high) in ranges)
                for (int b = low; b <= high; b++) bits[b >> 6] |= 1UL << (b & 63);
            var key = (bits[0], bits[1], bits[2], bits[3]);
            if (_setIndex.TryGetValue(key, out int index)) return index;
            index = _sets.Count / 4;
            _sets.AddRange([bits[0], bits[1], bits[2], bits[3]]);
            _setIndex[key] = index;
            return index;
        }

        /// <summary>A rule that can reach itself before matching any byte would expand forever: refuse it, naming it.</summary>
        private void CheckLeftRecursion()
        {
            int n = _ruleAlternatives.Count;
            var nullable = new bool[n];
            for (bool changed = true; changed;)
            {
                changed = false;
                for (int r = 0; r < n; r++)
                    if (!nullable[r] && _ruleAlternatives[r].Any(alt => alt.All(e => e.Kind == RuleKind && nullable[e.Value])))
                        nullable[r] = changed = true;
            }
            // Edges r -> s when s can be the first thing r matches.
            var first = new List<int>[n];
            for (int r = 0; r < n; r++)
            {
                first[r] = [];
                foreach (var alt in _ruleAlternatives[r])
                    foreach (var (kind, value) in alt)
                    {
                        if (kind != RuleKind) break;
                        first[r].Add(value);
                        if (!nullable[value]) break;
                    }
            }
            var color = new byte[n]; // 0 new, 1 on the path, 2 done
            var path = new List<int>();
            for (int r = 0; r < n; r++) Visit(r);

            void Visit(int r)
            {
                if (color[r] == 2) return;
                if (color[r] == 1)
                {
                    int from = path.IndexOf(r);
                    string cycle = string.Join(" -> ", path.Skip(from).Append(r).Select(Describe));
                    var (line, column) = _places[r];
                    throw new GrammarException(line, column, $"left recursion: {cycle} can expand forever without matching a character; rewrite it with repetition");
                }
                color[r] = 1;
                path.Add(r);
                foreach (int s in first[r]) Visit(s);
                path.RemoveAt(path.Count - 1);
                color[r] = 2;
            }
        }

        private string Describe(int rule)
        {
            string name = _names[rule];
            int at = name.IndexOf('@');
            return at < 0 ? $"'{name}'" : $"the {name[..at]} at {name[(at + 1)..name.IndexOf('#')]}";
        }
    }
}
