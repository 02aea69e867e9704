namespace ClockLM.Formats;

/// <summary>A model or tokenizer file in a non-GGUF format (llama2.c) that is invalid; the message names the file and the problem.</summary>
public sealed class ModelFormatException(string path, string problem) : Exception($"{path}: {problem}")
{
    /// <summary>The file the error is about.</summary>
    public string FilePath { get; } = path;
}
