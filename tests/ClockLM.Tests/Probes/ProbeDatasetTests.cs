using ClockLM.Probes;

namespace ClockLM.Tests.Probes;

/// <summary>The labelled-sentence reader: good files, and errors that name file:line and what was expected.</summary>
public class ProbeDatasetTests
{
    private static ProbeDataset Parse(string text) => ProbeDataset.Parse(new StringReader(text), "labels.tsv");

    private static ProbeDataException Fails(string text) => Assert.Throws<ProbeDataException>(() => Parse(text));

    [Fact]
    public void NumericLabelsCommentsAndBlankLinesAreRead()
    {
        var d = Parse("# a comment\n\n1\tTom ran.\n0\tLily sat down.\r\n   # indented comment\n1\t  He saw a dog.  \n");
        Assert.Equal(["0", "1"], d.ClassNames);
        Assert.Equal([1, 0, 1], d.Labels);
        Assert.Equal(["Tom ran.", "Lily sat down.", "He saw a dog."], d.Examples.Select(e => e.Sentence));
        Assert.Equal([3, 4, 6], d.Examples.Select(e => e.Line));
        Assert.Equal(1, d.Count(0));
        Assert.Equal(2, d.Count(1));
    }

    [Fact]
    public void ClassNamesAreNumberedInOrderOfFirstAppearance()
    {
        var d = Parse("boy\tTom ran.\ngirl\tLily sat.\nboy\tBen ate.\n");
        Assert.Equal(["boy", "girl"], d.ClassNames);
        Assert.Equal([0, 1, 0], d.Labels);
    }

    [Fact]
    public void SentencesMayContainTabsAfterTheFirst()
    {
        var d = Parse("a\tone\ttwo\nb\tthree\n");
        Assert.Equal("one\ttwo", d.Examples[0].Sentence);
    }

    [Theory]
    [InlineData("0\tTom ran.\nTom sat down.\n", "labels.tsv:2:", "no tab")]
    [InlineData("0\tTom ran.\n\t Lily sat.\n", "labels.tsv:2:", "label before the tab is empty")]
    [InlineData("0\tTom ran.\n1\t   \n", "labels.tsv:2:", "sentence after label '1' is empty")]
    [InlineData("# c\ngirl\tLily.\nboy\tTom.\ncat\tA cat.\n", "labels.tsv:4:", "third class 'cat'")]
    [InlineData("0\tTom ran.\n1\tLily sat.\n2\tA cat.\n", "labels.tsv:3:", "'2' is not 0 or 1")]
    [InlineData("girl\tLily.\n1\tTom.\n", "labels.tsv:1:", "'girl' is not 0 or 1")]
    [InlineData("big cat\tLily.\n", "labels.tsv:1:", "contains a space")]
    public void MalformedLinesNameFileLineAndWhatWasExpected(string text, string where, string what)
    {
        var e = Fails(text);
        Assert.StartsWith(where, e.Message);
        Assert.Contains(what, e.Message);
        Assert.Equal(int.Parse(where.Split(':')[1]), e.Line);
    }

    [Theory]
    [InlineData("# only comments\n\n", "no labelled sentences")]
    [InlineData("girl\tLily.\ngirl\tSue.\n", "every sentence has the label 'girl'")]
    [InlineData("0\tLily.\n0\tSue.\n", "no sentence has the label '1'")]
    public void AFileWithoutTwoClassesIsRejected(string text, string what)
    {
        var e = Fails(text);
        Assert.StartsWith("labels.tsv: ", e.Message);
        Assert.Contains(what, e.Message);
        Assert.Equal(0, e.Line);
    }

    [Fact]
    public void LoadReadsAFileAndNamesItsPathInErrors()
    {
        using var dir = new TempDir();
        string good = dir.File("good.tsv"), bad = dir.File("bad.tsv");
        File.WriteAllText(good, "girl\tLily sat.\nboy\tTom ran.\n");
        File.WriteAllText(bad, "girl\tLily sat.\nboy Tom ran.\n");
        var d = ProbeDataset.Load(good);
        Assert.Equal(good, d.Path);
        Assert.Equal(2, d.Examples.Count);
        var e = Assert.Throws<ProbeDataException>(() => ProbeDataset.Load(bad));
        Assert.StartsWith($"{bad}:2: expected 'label<TAB>sentence'", e.Message);
        Assert.Throws<FileNotFoundException>(() => ProbeDataset.Load(dir.File("missing.tsv")));
    }

    [Fact]
    public void TheShippedGirlBoyFileIsBalancedAndEverySentenceEndsWithAFullStop()
    {
        var d = ProbeDataset.Load(GirlBoyFile);
        Assert.Equal(["girl", "boy"], d.ClassNames);
        Assert.InRange(d.Examples.Count, 150, 250);
        Assert.Equal(d.Count(0), d.Count(1));
        Assert.All(d.Examples, e => Assert.EndsWith(".", e.Sentence));
        Assert.Equal(d.Examples.Count, d.Examples.Select(e => e.Sentence).Distinct().Count());
    }

    public static string GirlBoyFile => Path.Combine(SharedData.RepoRoot, "data", "probes", "stories260K-girl-boy.tsv");
}
