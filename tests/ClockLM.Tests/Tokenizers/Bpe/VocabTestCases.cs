using System.Text;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>One case of llama.cpp's tokenizer test files: an input text and the ids llama.cpp produced for it
/// (tokenized with add_special = false, parse_special = false).</summary>
public sealed record VocabTestCase(string Input, int[] Expected);

/// <summary>Reads <c>ggml-vocab-*.gguf.inp</c>/<c>.out</c>: inputs are separated by lines <c>__ggml_vocab_test__</c>
/// (a trailing separator ends the list), and the .out file has one line of space-separated ids per input.</summary>
public static class VocabTestCases
{
    private const string Separator = "\n__ggml_vocab_test__\n";

    public static List<VocabTestCase> Read(string ggufPath)
    {
        string raw = Encoding.UTF8.GetString(File.ReadAllBytes(ggufPath + ".inp"));
        var inputs = new List<string>();
        int pos = 0;
        while (pos < raw.Length)
        {
            int next = raw.IndexOf(Separator, pos, StringComparison.Ordinal);
            if (next < 0)
            {
                inputs.Add(raw[pos..]);
                break;
            }
            inputs.Add(raw[pos..next]);
            pos = next + Separator.Length;
        }

        string[] outputs = Encoding.UTF8.GetString(File.ReadAllBytes(ggufPath + ".out")).Split('\n');
        if (outputs.Length > 0 && outputs[^1].Length == 0)
            outputs = outputs[..^1];
        if (outputs.Length != inputs.Count)
            throw new InvalidDataException($"{ggufPath}: {inputs.Count} inputs but {outputs.Length} output lines");

        var cases = new List<VocabTestCase>();
        for (int i = 0; i < inputs.Count; i++)
        {
            int[] ids = outputs[i].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(int.Parse).ToArray();
            cases.Add(new VocabTestCase(inputs[i], ids));
        }
        return cases;
    }

    /// <summary>Runs every case through <paramref name="encode"/>; returns the number that match and a description of those that do not.</summary>
    public static (int Passed, int Total, string Failures) Check(string ggufPath, Func<string, List<int>> encode)
    {
        var cases = Read(ggufPath);
        var failures = new StringBuilder();
        int passed = 0;
        foreach (var c in cases)
        {
            List<int> actual = encode(c.Input);
            if (actual.SequenceEqual(c.Expected))
                passed++;
            else
                failures.AppendLine($"input {Escape(c.Input)}\n  expected {string.Join(' ', c.Expected)}\n  actual   {string.Join(' ', actual)}");
        }
        return (passed, cases.Count, failures.ToString());
    }

    public static string Escape(string s) =>
        "\"" + s.Replace("\\", "\\\\").Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r") + "\"";
}
