using System.Text;

namespace ClockLM.Tests.Tokenizers;

/// <summary>
/// llama.cpp's tokenizer test cases beside each <c>ggml-vocab-*.gguf</c>: the <c>.inp</c> file holds the inputs
/// separated by "\n__ggml_vocab_test__\n", the <c>.out</c> file one line of ids per input. llama.cpp's
/// test-tokenizer-0 produced them with add_special = false and parse_special = false.
/// </summary>
public static class VocabTestFile
{
    public sealed record Case(string Input, int[] Ids);

    public static List<Case> Read(string ggufPath)
    {
        // Read as bytes and decode strictly: the inputs are UTF-8 and must reach the tokenizer unchanged.
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        string raw = strict.GetString(File.ReadAllBytes(ggufPath + ".inp"));
        string[] outLines = File.ReadAllText(ggufPath + ".out").Split('\n');

        const string separator = "\n__ggml_vocab_test__\n";
        var inputs = new List<string>();
        for (int pos = 0; pos < raw.Length;)
        {
            int next = raw.IndexOf(separator, pos, StringComparison.Ordinal);
            if (next < 0)
            {
                inputs.Add(raw[pos..]);
                break;
            }
            inputs.Add(raw[pos..next]);
            pos = next + separator.Length;
        }

        // .out ends with a newline, so the split leaves one empty string after the last line.
        if (outLines.Length != inputs.Count + 1 || outLines[^1].Length != 0)
            throw new InvalidDataException($"{ggufPath}: {inputs.Count} inputs but {outLines.Length - 1} output lines");
        return inputs.Select((input, i) => new Case(input,
            outLines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray())).ToList();
    }
}
