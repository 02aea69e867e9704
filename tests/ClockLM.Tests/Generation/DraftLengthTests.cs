using ClockLM.Generation;

namespace ClockLM.Tests.Generation;

public sealed class DraftLengthTests
{
    [Fact]
    public void StartsAtMaxFallsToAcceptedPlusOneAndDoublesBack()
    {
        var length = new DraftLength();
        Assert.Equal(16, length.Next(16));
        length.Record(16, 2);       // rejected at the third draft
        Assert.Equal(3, length.Next(16));
        length.Record(3, 0);        // the first draft rejected
        Assert.Equal(1, length.Next(16));
        length.Record(1, 1);        // all accepted: doubles
        Assert.Equal(2, length.Next(16));
        length.Record(2, 2);
        length.Record(4, 4);
        length.Record(8, 8);
        Assert.Equal(16, length.Next(16)); // capped at draft-max
        Assert.Equal(5, length.Next(5));
        length.Record(0, 0);        // no drafts: nothing learned
        Assert.Equal(16, length.Next(16));
    }
}
