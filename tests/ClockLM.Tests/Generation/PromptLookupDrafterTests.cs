using ClockLM.Generation;

namespace ClockLM.Tests.Generation;

public sealed class PromptLookupDrafterTests
{
    private static int[] Draft(int ngram, int[] tokens, int max)
    {
        var draft = new int[max];
        int n = new PromptLookupDrafter(ngram).Draft(tokens, draft);
        return draft[..n];
    }

    [Fact]
    public void TheLongestMatchingNgramWinsOverALaterShorterOne()
    {
        // "1 2 3" occurred at 0 (followed by 4 5); "3" alone occurred later at 6 (followed by 9).
        int[] tokens = [1, 2, 3, 4, 5, 6, 3, 9, 7, 1, 2, 3];
        Assert.Equal([4, 5, 6], Draft(3, tokens, 3));
        Assert.Equal([9, 7, 1], Draft(1, tokens, 3)); // with 1-grams only, the latest "3"
    }

    [Fact]
    public void TheLatestOccurrenceOfAnNgramIsContinued()
    {
        int[] tokens = [5, 6, 1, 5, 6, 2, 8, 5, 6];
        Assert.Equal([2, 8], Draft(2, tokens, 2));
    }

    [Fact]
    public void ARecentMatchRepeatsWithItsPeriod()
    {
        // Period 3: 7 8 9 7 8 9 7 8 → 9 7 8 9 7 ...
        int[] tokens = [1, 7, 8, 9, 7, 8, 9, 7, 8];
        Assert.Equal([9, 7, 8, 9, 7, 8, 9], Draft(2, tokens, 7));
        Assert.Equal([4, 4, 4, 4], Draft(3, [2, 4, 4, 4], 4));
    }

    [Fact]
    public void NoMatchDraftsNothing()
    {
        Assert.Empty(Draft(3, [1, 2, 3, 4, 5], 4));
        Assert.Empty(Draft(3, [7], 4));
        Assert.Empty(Draft(2, [], 4));
    }
}
