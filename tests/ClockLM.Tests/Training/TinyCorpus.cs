namespace ClockLM.Tests.Training;

/// <summary>A small text for training tests: sentences built from a few patterns, so a tiny model can learn it fast.</summary>
public static class TinyCorpus
{
    public static string Text()
    {
        string[] who = ["the king", "the shepherd", "his servant", "the people", "the prophet"];
        string[] did = ["went up to", "came down from", "looked upon", "spake unto", "dwelt in"];
        string[] what = ["the city", "the mountain", "the house of the lord", "the river", "the land of egypt"];
        var lines = new List<string>();
        for (int i = 0; i < 60; i++)
            lines.Add($"and {who[i % 5]} {did[i * 3 % 5]} {what[i * 7 % 5]}, and it was good.");
        return string.Join("\n", lines) + "\n";
    }
}
