namespace ClockLM.Sampling.Grammars;

/// <summary>A JSON schema ClockLM cannot turn into a grammar: names the keyword and where it is in the schema.</summary>
public sealed class JsonSchemaException : ArgumentException
{
    /// <summary>A problem with <paramref name="keyword"/> at <paramref name="path"/> (a JSON pointer, <c>#</c> for the root).</summary>
    public JsonSchemaException(string path, string keyword, string problem)
        : base($"JSON schema {path}: {problem}")
    {
        Path = path;
        Keyword = keyword;
        Problem = problem;
    }

    /// <summary>Where in the schema, as a JSON pointer (<c>#/properties/name</c>).</summary>
    public string Path { get; }

    /// <summary>The keyword at fault, e.g. <c>uniqueItems</c>.</summary>
    public string Keyword { get; }

    /// <summary>The problem without its place.</summary>
    public string Problem { get; }

    /// <inheritdoc/>
    public override string Message => $"JSON schema {Path}: {Problem}";
}
