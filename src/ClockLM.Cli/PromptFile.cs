using System.Globalization;
using System.Text;

namespace ClockLM.Cli;

/// <summary>A file of prompts, one per line, as llama.cpp's tools read them: empty lines are skipped, and escapes in a
/// line stand for the characters a line cannot hold.</summary>
internal static class PromptFile
{
    /// <summary>The file's non-empty lines, read as they are needed, escapes (\n, \t, \r, \\, \", \', \xNN) turned
    /// into characters.</summary>
    public static IEnumerable<string> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such prompt file", path);
        return File.ReadLines(path).Where(line => line.Length > 0).Select(Unescape);
    }

    private static string Unescape(string line)
    {
        var text = new StringBuilder(line.Length);
        for (int i = 0; i < line.Length; i++)
        {
            if (line[i] != '\\' || i + 1 == line.Length) { text.Append(line[i]); continue; }
            char next = line[++i];
            switch (next)
            {
                case 'n': text.Append('\n'); break;
                case 't': text.Append('\t'); break;
                case 'r': text.Append('\r'); break;
                case '\\' or '"' or '\'': text.Append(next); break;
                case 'x' when i + 2 < line.Length && byte.TryParse(line.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b):
                    text.Append((char)b);
                    i += 2;
                    break;
                default: text.Append('\\').Append(next); break;
            }
        }
        return text.ToString();
    }
}
