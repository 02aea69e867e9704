namespace ClockLM.Probes;

/// <summary>One labelled sentence: its class (0 or 1), its text and the line it came from.</summary>
public sealed record ProbeExample(int Label, string Sentence, int Line);

/// <summary>
/// Sentences labelled with one of exactly two classes, the input of a probe. The file format is one
/// <c>label&lt;TAB&gt;sentence</c> per line; blank lines and lines starting with <c>#</c> are skipped.
/// Labels are either <c>0</c> and <c>1</c>, or two names (e.g. <c>girl</c> and <c>boy</c>) numbered 0 and 1 in the
/// order they first appear.
/// </summary>
public sealed class ProbeDataset
{
    private ProbeDataset(string path, IReadOnlyList<string> classNames, IReadOnlyList<ProbeExample> examples)
    {
        Path = path;
        ClassNames = classNames;
        Examples = examples;
    }

    /// <summary>The file the examples came from (or the name given to <see cref="Parse"/>).</summary>
    public string Path { get; }

    /// <summary>The two class names: index 0 is label 0. <c>["0", "1"]</c> for numeric labels.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The examples in file order.</summary>
    public IReadOnlyList<ProbeExample> Examples { get; }

    /// <summary>The label of each example, in file order.</summary>
    public int[] Labels => [.. Examples.Select(e => e.Label)];

    /// <summary>How many examples carry <paramref name="label"/>.</summary>
    public int Count(int label) => Examples.Count(e => e.Label == label);

    /// <summary>Reads a labelled-sentence file.</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="ProbeDataException">A line is malformed or the file does not hold exactly two classes.</exception>
    public static ProbeDataset Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such labelled-sentence file", path);
        using var reader = new StreamReader(path);
        return Parse(reader, path);
    }

    /// <summary>Reads labelled sentences from <paramref name="reader"/>; <paramref name="name"/> names the source in errors.</summary>
    /// <exception cref="ProbeDataException">A line is malformed or the text does not hold exactly two classes.</exception>
    public static ProbeDataset Parse(TextReader reader, string name)
    {
        var examples = new List<(string Label, string Sentence, int Line)>();
        int lineNumber = 0;
        for (string? line = reader.ReadLine(); line != null; line = reader.ReadLine())
        {
            lineNumber++;
            string trimmed = line.Trim();
            if (trimmed.Length == 0 || trimmed.StartsWith('#')) continue;
            int tab = line.IndexOf('\t');
            if (tab < 0)
                throw new ProbeDataException(name, lineNumber, $"expected 'label<TAB>sentence', found no tab in \"{Shorten(trimmed)}\"");
            string label = line[..tab].Trim(), sentence = line[(tab + 1)..].Trim();
            if (label.Length == 0)
                throw new ProbeDataException(name, lineNumber, "the label before the tab is empty; expected 0/1 or a class name");
            if (label.Contains(' '))
                throw new ProbeDataException(name, lineNumber, $"the label \"{Shorten(label)}\" contains a space; expected 0/1 or a one-word class name");
            if (sentence.Length == 0)
                throw new ProbeDataException(name, lineNumber, $"the sentence after label '{label}' is empty");
            examples.Add((label, sentence, lineNumber));
        }
        if (examples.Count == 0) throw new ProbeDataException(name, 0, "no labelled sentences; expected lines of 'label<TAB>sentence'");

        bool numeric = examples.Any(e => e.Label is "0" or "1");
        List<string> classes;
        if (numeric)
        {
            // Once a line uses 0/1, every line must.
            var other = examples.FirstOrDefault(e => e.Label is not ("0" or "1"));
            if (other.Sentence != null)
                throw new ProbeDataException(name, other.Line, $"the label '{Shorten(other.Label)}' is not 0 or 1 (line {examples.First(e => e.Label is "0" or "1").Line} uses numeric labels)");
            classes = ["0", "1"];
        }
        else
        {
            classes = [];
            foreach (var e in examples)
            {
                if (classes.Contains(e.Label)) continue;
                if (classes.Count == 2)
                    throw new ProbeDataException(name, e.Line, $"a third class '{Shorten(e.Label)}'; a probe needs exactly two classes (this file has '{classes[0]}' and '{classes[1]}')");
                classes.Add(e.Label);
            }
        }
        var result = examples.Select(e => new ProbeExample(classes.IndexOf(e.Label), e.Sentence, e.Line)).ToList();
        for (int label = 0; label < 2; label++)
            if (!result.Any(e => e.Label == label))
                throw new ProbeDataException(name, 0, classes.Count < 2
                    ? $"every sentence has the label '{classes[0]}'; a probe needs sentences of exactly two classes"
                    : $"no sentence has the label '{classes[label]}'; a probe needs sentences of both classes");
        return new ProbeDataset(name, classes, result);
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..37] + "...";
}
