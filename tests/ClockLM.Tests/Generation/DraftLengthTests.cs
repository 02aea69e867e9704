using ClockLM.Generation;

namespace ClockLM.Tests.Generation;

public sealed class DraftLengthTests
{
    [Fact]
    public void StartsAtMaxFallsToAcceptedPlusOneAndDoublesBack()
    {
        var length = new DraftLength();
        Assert.Equal(16, length.Next(0, 16));
        length.Record(16, 2);       // rejected at the third draft
        Assert.Equal(3, length.Next(0, 16));
        length.Record(3, 0);        // the first draft rejected
        Assert.Equal(1, length.Next(0, 16));
        length.Record(1, 1);        // all accepted: doubles
        Assert.Equal(2, length.Next(0, 16));
        length.Record(2, 2);
        length.Record(4, 4);
        length.Record(8, 8);
        Assert.Equal(16, length.Next(0, 16)); // capped at draft-max
        Assert.Equal(5, length.Next(0, 5));
        length.Record(0, 0);        // no drafts: nothing learned
        Assert.Equal(16, length.Next(0, 16));
    }

    [Fact]
    public void NeverFallsBelowDraftMin()
    {
        // A length below draft-min would never run a pass, so never learn from one: it stays at draft-min.
        var length = new DraftLength();
        length.Record(8, 0);
        Assert.Equal(1, length.Next(0, 8));
        Assert.Equal(4, length.Next(4, 8));
        Assert.Equal(3, length.Next(5, 3)); // draft-min above draft-max: draft-max
    }
}
