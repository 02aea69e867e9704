namespace ClockLM.Sampling.Grammars;

/// <summary>A GBNF grammar that cannot be used: the message gives line:column and what was expected.</summary>
public sealed class GrammarException : ArgumentException
{
    /// <summary>A problem at a place in the grammar text.</summary>
    public GrammarException(int line, int column, string problem)
        : base($"grammar {line}:{column}: {problem}")
    {
        Line = line;
        Column = column;
        Problem = problem;
    }

    /// <summary>1-based line of the problem.</summary>
    public int Line { get; }

    /// <summary>1-based column (in UTF-16 units) of the problem.</summary>
    public int Column { get; }

    /// <summary>The problem without its place.</summary>
    public string Problem { get; }

    /// <inheritdoc/>
    public override string Message => $"grammar {Line}:{Column}: {Problem}";
}
