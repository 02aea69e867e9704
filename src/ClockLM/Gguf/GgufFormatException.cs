namespace ClockLM.Gguf;

/// <summary>A model file that is not a valid GGUF (or llama2.c) file, or holds something ClockLM cannot run.
/// The message names the file and what is wrong with it.</summary>
public sealed class GgufFormatException : Exception
{
    /// <summary>Creates the error for <paramref name="path"/>.</summary>
    public GgufFormatException(string path, string problem)
        : base($"{path}: {problem}")
    {
        FilePath = path;
        Problem = problem;
    }

    /// <summary>The file the error is about.</summary>
    public string FilePath { get; }

    /// <summary>What is wrong, without the file name.</summary>
    public string Problem { get; }
}
