using ClockLM.Sampling.Grammars;

namespace ClockLM.Cli;

/// <summary>`--grammar FILE.gbnf` and `--json-schema FILE.json|INLINE`: the grammar a command's output must follow.</summary>
internal static class OutputGrammar
{
    /// <summary>The compiled grammar, or null when neither option is given; errors name the file and the place.</summary>
    public static Grammar? Read(string? grammarPath, string? jsonSchema)
    {
        if (grammarPath is not null && jsonSchema is not null)
            throw new UsageException("--grammar and --json-schema both constrain the output; give only one");
        if (grammarPath is not null)
        {
            string text = File.ReadAllText(grammarPath);
            try
            {
                return Grammar.Parse(text);
            }
            catch (GrammarException e)
            {
                throw new UsageException($"{grammarPath}:{e.Line}:{e.Column}: {e.Problem}");
            }
        }
        if (jsonSchema is null) return null;
        bool inline = jsonSchema.TrimStart().StartsWith('{') || jsonSchema.Trim() is "true";
        string schema = inline ? jsonSchema : File.ReadAllText(jsonSchema);
        string where = inline ? "--json-schema" : jsonSchema;
        try
        {
            return Grammar.Parse(JsonSchemaGrammar.ToGbnf(schema));
        }
        catch (JsonSchemaException e)
        {
            throw new UsageException($"{where}: {e.Message}");
        }
    }
}
