namespace ClockLM.Probes;

/// <summary>A labelled-sentence file that cannot be read as a probe dataset; the message names the file, the line and what was expected.</summary>
public sealed class ProbeDataException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/> at <paramref name="line"/> (0 when the problem is the whole file).</summary>
    public ProbeDataException(string path, int line, string problem)
        : base(line > 0 ? $"{path}:{line}: {problem}" : $"{path}: {problem}")
    {
        Path = path;
        Line = line;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The 1-based line, or 0 when the problem concerns the whole file.</summary>
    public int Line { get; }
}
