namespace ClockLM.Tests;

/// <summary>The llama2.c run.c greedy references in shared/models/stories260K.</summary>
public static class ReferenceOutputs
{
    /// <summary>A greedy reference: the prompt, the -n steps it was run for, and all ids (BOS, prompt, generated).</summary>
    public sealed record Greedy(string Prompt, int Steps, int[] Ids, string Text);

    public static IReadOnlyList<Greedy> Stories260K { get; } = Load();

    private static List<Greedy> Load()
    {
        string dir = Path.GetDirectoryName(SharedData.Stories260K)!;
        var idLines = File.ReadAllLines(Path.Combine(dir, "reference-greedy-ids.txt"));
        var textBlocks = File.ReadAllText(Path.Combine(dir, "reference-greedy.txt"))
            .Split("# command: ", StringSplitOptions.RemoveEmptyEntries);
        var result = new List<Greedy>();
        for (int i = 0; i < idLines.Length; i++)
        {
            // "# Once upon a time, -n 256 (257 ids):" followed by the id line
            var header = idLines[i];
            if (!header.StartsWith("# ") || !header.Contains(", -n ")) continue;
            string prompt = header[2..header.IndexOf(", -n ", StringComparison.Ordinal)];
            int steps = int.Parse(header.Split(", -n ")[1].Split(' ')[0]);
            int[] ids = idLines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            var block = textBlocks.Single(b => b.Contains($"-i \"{prompt}\""));
            // The block is "<command line> ... Output below is the exact stdout.\n<stdout>"
            const string marker = "Output below is the exact stdout.\n";
            string text = block[(block.IndexOf(marker, StringComparison.Ordinal) + marker.Length)..];
            result.Add(new Greedy(prompt, steps, ids, text));
        }
        if (result.Count != 2) throw new InvalidOperationException($"expected 2 references, found {result.Count}");
        return result;
    }
}
