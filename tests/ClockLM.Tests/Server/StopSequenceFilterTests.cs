using ClockLM.Chat;

namespace ClockLM.Tests.Server;

public sealed class StopSequenceFilterTests
{
    [Fact]
    public void HoldsBackAPossibleStartAndReleasesItWhenItIsNotOne()
    {
        var f = new StopSequenceFilter(["END"]);
        Assert.Equal("the ", f.Append("the E"));
        Assert.Equal("", f.Append("N"));
        Assert.Equal("ENd", f.Append("d"));
        Assert.False(f.Stopped);
        Assert.Equal("", f.Flush());
    }

    [Fact]
    public void StopsOnASequenceSpreadOverPiecesAndDropsItAndWhatFollows()
    {
        var f = new StopSequenceFilter(["\n\n", "END"]);
        Assert.Equal("ab", f.Append("abE"));
        Assert.Equal("", f.Append("N"));
        Assert.Equal("", f.Append("Dxyz"));
        Assert.True(f.Stopped);
        Assert.Equal("", f.Append("more"));
        Assert.Equal("", f.Flush());
    }

    [Fact]
    public void TheEarliestOfSeveralSequencesWins()
    {
        var f = new StopSequenceFilter(["cd", "b"]);
        Assert.Equal("a", f.Append("abcd"));
        Assert.True(f.Stopped);
        var g = new StopSequenceFilter(["xyz"]);
        Assert.Equal("", g.Append("xy"));
        Assert.Equal("xy", g.Flush()); // the end of generation releases what was held back
    }
}
