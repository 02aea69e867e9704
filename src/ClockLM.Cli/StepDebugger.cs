using ClockLM.Clock;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm trace --step`: a debugger over the clock. Commands (one per line on the input):
/// <c>s</c> one stage, <c>c</c> one cycle, <c>t</c> one token, <c>r</c> run to a breakpoint,
/// <c>b layer N</c> / <c>b pos N</c> / <c>b text STR</c> set a breakpoint, <c>d</c> delete breakpoints,
/// <c>p</c> print the state again, <c>q</c> quit. Every stop prints the residual norm, the logit lens and the
/// strongest attention of any head.
/// </summary>
internal sealed class StepDebugger
{
    private readonly Model _model;
    private readonly Transformer _t;
    private readonly int[] _promptIds;
    private readonly int _maxNew;
    private readonly int _lensTop;
    private readonly TextReader _input;
    private readonly TextWriter _output;
    private readonly LogitLens _lens;
    private readonly List<int> _ids = new();
    private readonly float[][] _patterns;          // the current token's attention pattern per layer (null until computed)
    private readonly List<(string Kind, int Number, string Text)> _breakpoints = new();
    private int _generated;
    private bool _finished;
    private string _event = "";                    // what the last tick did, for breakpoints and messages
    private int _generatedThisTick = -1;           // the token the last tick generated, or -1

    public StepDebugger(Model model, Transformer transformer, int[] promptIds, int maxNew, int lensTop, TextReader input, TextWriter output)
    {
        (_model, _t, _promptIds, _maxNew, _lensTop, _input, _output) = (model, transformer, promptIds, maxNew, lensTop, input, output);
        _lens = new LogitLens(transformer);
        _patterns = new float[transformer.Config.Layers][];
        transformer.Hook = (point, layer, _, activation) =>
        {
            if (point == ActivationPoint.AttentionPattern) _patterns[layer] = activation.ToArray();
        };
    }

    public int Run()
    {
        _output.WriteLine($"step debugger: {_promptIds.Length} prompt tokens, up to {_maxNew} generated; {_t.Config.Layers} cycles of 5 stages per token. 'help' lists commands.");
        Begin(_promptIds[0], 0);
        PrintState();
        while (true)
        {
            _output.Write("(clock) ");
            _output.Flush();
            string? line = _input.ReadLine();
            if (line is null) return 0;
            string[] words = line.Trim().Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0) continue;
            switch (words[0])
            {
                case "s" or "stage": Advance(() => true); break;
                case "c" or "cycle": Advance(() => _t.NextStage == Stage.Fetch || _event.Contains("begin")); break;
                case "t" or "token": Advance(() => _event.Contains("begin")); break;
                case "r" or "run": Advance(HitBreakpoint); break;
                case "b" or "break": AddBreakpoint(words); break;
                case "d" or "delete": _breakpoints.Clear(); _output.WriteLine("breakpoints deleted"); break;
                case "p" or "print": PrintState(); break;
                case "q" or "quit": return 0;
                case "h" or "help": Help(); break;
                default: _output.WriteLine($"unknown command '{words[0]}'; 'help' lists commands"); break;
            }
        }
    }

    private void Help() => _output.WriteLine("""
        s | stage           run one stage
        c | cycle           run to the end of the current cycle
        t | token           run to the start of the next token
        r | run             run until a breakpoint (or the end)
        b layer N           stop before cycle N of any token
        b pos N             stop when the token at position N begins
        b text STR          stop when a generated token's text contains STR
        d | delete          delete all breakpoints
        p | print           residual norm, logit lens, strongest attention
        q | quit
        """);

    private void AddBreakpoint(string[] words)
    {
        if (words.Length < 3 || words[1] is not ("layer" or "pos" or "text"))
        {
            _output.WriteLine("usage: b layer N | b pos N | b text STR");
            return;
        }
        if (words[1] == "text")
        {
            _breakpoints.Add(("text", 0, words[2]));
            _output.WriteLine($"breakpoint: generated token containing '{words[2]}'");
            return;
        }
        int limit = words[1] == "layer" ? _t.Config.Layers : _t.ContextLength;
        if (!int.TryParse(words[2], out int number) || number < 0 || number >= limit)
        {
            _output.WriteLine($"{words[1]} must be a number from 0 to {limit - 1}, not '{words[2]}'");
            return;
        }
        _breakpoints.Add((words[1], number, ""));
        _output.WriteLine($"breakpoint: {words[1]} {number}");
    }

    private bool HitBreakpoint()
    {
        foreach (var (kind, number, text) in _breakpoints)
        {
            if (kind == "layer" && _t.TokenInFlight && _t.Layer == number && _t.NextStage == Stage.Fetch) return true;
            if (kind == "pos" && _event.Contains("begin") && _t.Position == number) return true;
            if (kind == "text" && _generatedThisTick >= 0 &&
                TraceCommand.TokenText(_model.Tokenizer, _generatedThisTick).Contains(text, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    /// <summary>Ticks the clock until <paramref name="stop"/> holds after a tick or the run ends, then prints the state.</summary>
    private void Advance(Func<bool> stop)
    {
        if (_finished)
        {
            _output.WriteLine("the run has ended; 'q' quits");
            return;
        }
        do Tick(); while (!_finished && !stop());
        if (_event.Length > 0) _output.WriteLine(_event);
        if (!_finished) PrintState();
    }

    /// <summary>One tick: the next stage, or, when every cycle ran, the commit, the choice of the next token and its fetch.</summary>
    private void Tick()
    {
        _generatedThisTick = -1;
        if (_t.Layer < _t.Config.Layers)
        {
            _event = $"ran L{_t.Layer} {_t.NextStage.Name()}";
            _t.Step();
            return;
        }
        var logits = _t.Commit();
        int pos = _t.Position;
        string note = "";
        int next;
        if (pos + 1 < _promptIds.Length) next = _promptIds[pos + 1];
        else
        {
            next = ArgMax(logits);
            if (_generated >= _maxNew || _model.Tokenizer.IsEndOfGeneration(next) || pos + 1 >= _t.ContextLength)
            {
                _finished = true;
                _event = $"commit at pos {pos}: the run has ended ({(_generated >= _maxNew ? "-n tokens generated" : "end of generation or context full")})";
                return;
            }
            _generated++;
            note = "generated ";
        }
        _event = $"commit at pos {pos}: {note}{TraceCommand.Quote(TraceCommand.TokenText(_model.Tokenizer, next), 24)}";
        _generatedThisTick = note.Length > 0 ? next : -1;
        Begin(next, pos + 1);
    }

    private void Begin(int token, int pos)
    {
        Array.Clear(_patterns);
        _ids.Add(token);
        _t.BeginToken(token, pos);
        _event = (_event.Length > 0 ? _event + "\n" : "") + $"begin pos {pos}: {TraceCommand.Quote(TraceCommand.TokenText(_model.Tokenizer, token), 24)}";
    }

    private void PrintState()
    {
        var c = _t.Config;
        string where = _t.Layer < c.Layers ? $"L{_t.Layer} before {_t.NextStage.Name()}" : "all cycles ran, before commit";
        ReadOnlySpan<float> x = _t.Residual;
        double norm = Math.Sqrt(x.ToArray().Sum(v => (double)v * v));
        _output.WriteLine($"pos {_t.Position} token {TraceCommand.Quote(TraceCommand.TokenText(_model.Tokenizer, _ids[^1]), 24)}, {where}; residual norm {norm:F4}");
        var top = _lens.Top(x, _lensTop);
        _output.WriteLine("  lens: " + string.Join("  ", top.Select(p => $"{TraceCommand.Quote(TraceCommand.TokenText(_model.Tokenizer, p.Token))} {p.Probability:F3}")));
        HeadAttention? best = null;
        for (int layer = 0; layer < c.Layers; layer++)
        {
            if (_patterns[layer] is not { } pattern) continue;
            foreach (var head in HeadAttention.FromPattern(layer, _t.Position, pattern, c.Heads))
                if (best is null || head.Strongest.Weight > best.Strongest.Weight) best = head;
        }
        if (best is null) _output.WriteLine("  attention: no cycle of this token has run attention yet");
        else
        {
            var (p, w) = best.Strongest;
            _output.WriteLine($"  attention: strongest L{best.Layer} H{best.Head} -> pos {p} {TraceCommand.Quote(TraceCommand.TokenText(_model.Tokenizer, _ids[p]))} " +
                $"weight {w:F3}, entropy {best.Entropy:F3} nats");
        }
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
