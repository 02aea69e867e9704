using System.Text.RegularExpressions;
using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Probes;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Probes;

/// <summary>Probes on stories260K with the shipped girl/boy sentences, through the library and the `clocklm probe` command.</summary>
public class StoriesProbeTests
{
    [Fact]
    public void CapturedFeaturesAreTheLastTokensAndMeanActivationsOfAFreshRun()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var all = ProbeDataset.Load(ProbeDatasetTests.GirlBoyFile);
        var first = ProbeDataset.Parse(new StringReader(string.Join("\n",
            all.Examples.Take(6).Select(e => $"{all.ClassNames[e.Label]}\t{e.Sentence}"))), "first six");
        var last = ProbeFeatures.Capture(model, first, new ProbeOptions { Layers = [1, 3] });
        var mean = ProbeFeatures.Capture(model, first, new ProbeOptions { Layers = [2], Point = ActivationPoint.MlpOut, Position = ProbePosition.Mean });
        Assert.Equal([-1, 1, 3], last.LayerIndices);
        Assert.Equal(first.Labels, last.Labels);

        // Each sentence ran after others on the same processor; a fresh processor must see the same activations.
        for (int i = 0; i < 6; i++)
        {
            int[] tokens = [.. model.Tokenizer.Encode(first.Examples[i].Sentence)];
            Assert.Equal(model.Tokenizer.BosId, tokens[0]);
            var capture = ActivationCapture.Run(model.CreateTransformer(64), tokens);
            int end = tokens.Length - 1;
            Assert.Equal(capture.Get(ActivationPoint.ResidPre, 0, end), last.Rows[-1][i]);
            Assert.Equal(capture.Get(ActivationPoint.ResidPost, 1, end), last.Rows[1][i]);
            Assert.Equal(capture.Get(ActivationPoint.ResidPost, 3, end), last.Rows[3][i]);
            for (int j = 0; j < model.Config.Dim; j++)
            {
                double expected = Enumerable.Range(0, tokens.Length).Average(p => (double)capture.Get(ActivationPoint.MlpOut, 2, p)[j]);
                Assert.Equal(expected, mean.Rows[2][i][j], 4);
            }
        }
    }

    [Fact]
    public void GirlAndBoyTwinsHaveTheSameTokenCountSoLengthCannotTellThemApart()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var dataset = ProbeDataset.Load(ProbeDatasetTests.GirlBoyFile);
        var lengths = dataset.Examples.ToLookup(e => e.Label, e => model.Tokenizer.Encode(e.Sentence).Count);
        Assert.Equal(lengths[0].Order(), lengths[1].Order());
        // Every sentence ends with the same token, so the last token's embedding is the same for both classes.
        Assert.Single(dataset.Examples.Select(e => model.Tokenizer.Encode(e.Sentence)[^1]).Distinct());
    }

    /// <summary>
    /// 200 sentences, 60 held out (30 per class): chance ± 2 standard errors is 0.5 ± 2·√(0.25/60) = 0.5 ± 0.129.
    /// With seed 1 the last layer measured 0.900 (0.900 to 0.950 over seeds 1 to 6), so "some layer above 0.629"
    /// has a wide margin. The embedding of the last token is the same full stop in every sentence, so its probe
    /// can do no better than the majority class: exactly 0.5.
    /// </summary>
    [Fact]
    public void SomeLayerOfStories260KKnowsWhetherTheSentenceIsAboutAGirlOrABoy()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var dataset = ProbeDataset.Load(ProbeDatasetTests.GirlBoyFile);
        var report = LayerProbe.TrainPerLayer(model, dataset, new ProbeOptions { Seed = 1 });

        Assert.Equal([-1, 0, 1, 2, 3, 4], report.Layers.Select(r => r.Layer));
        Assert.Equal(140, report.TrainCount);
        Assert.Equal(60, report.TestCount);
        Assert.Equal(0.5, report.MajorityBaseline);
        double chancePlusTwoSe = 0.5 + 2 * Math.Sqrt(0.25 / 60);
        Assert.Equal(chancePlusTwoSe, report.MajorityBaseline + report.TwoStandardErrors, 12);

        Assert.Equal(0.5, report.Layers[0].TestAccuracy);
        var best = report.Layers.MaxBy(r => r.TestAccuracy)!;
        Assert.True(best.TestAccuracy > chancePlusTwoSe, $"best layer {best.Name} reached {best.TestAccuracy:F3}, not above {chancePlusTwoSe:F3}");
        Assert.True(report.FirstLayerAboveChance >= 0);
        // The property builds up over the cycles: the last cycle's stream beats the first's.
        Assert.True(report.Layers[^1].TestAccuracy > report.Layers[1].TestAccuracy);
    }

    [Fact]
    public void ProbeCommandPrintsOneRowPerLayerMatchingTheLibrary()
    {
        var run = ClockLMProcess.Run("probe", "--model", SharedData.Stories260K, "--data", ProbeDatasetTests.GirlBoyFile,
            "--seed", "2", "--epochs", "40", "--threads", "1");
        Assert.True(run.ExitCode == 0, run.StdErr);
        var rows = Regex.Matches(run.StdOut, @"^(embed|\d+)\s+([01]\.\d{3})\s+([01]\.\d{3})\s*$", RegexOptions.Multiline);
        Assert.Equal(["embed", "0", "1", "2", "3", "4"], rows.Select(m => m.Groups[1].Value));
        Assert.Contains("girl = 0: 100, boy = 1: 100", run.StdOut);
        Assert.Contains("split 140 train / 60 test, seed 2", run.StdOut);
        Assert.Contains("majority class: 0.500", run.StdOut);

        using var model = Model.Load(SharedData.Stories260K);
        var report = LayerProbe.TrainPerLayer(model, ProbeDataset.Load(ProbeDatasetTests.GirlBoyFile), new ProbeOptions { Seed = 2, Epochs = 40 });
        Assert.Equal(report.Layers.Select(r => r.TestAccuracy.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)),
            rows.Select(m => m.Groups[3].Value));
    }

    [Fact]
    public void ProbeCommandProbesChosenLayersAndReportsBadInput()
    {
        var chosen = ClockLMProcess.Run("probe", "-m", SharedData.Stories260K, "--data", ProbeDatasetTests.GirlBoyFile,
            "--layers", "0,3", "--epochs", "10", "--point", "resid_mid", "--position", "mean");
        Assert.True(chosen.ExitCode == 0, chosen.StdErr);
        Assert.Equal(["embed", "0", "3"],
            Regex.Matches(chosen.StdOut, @"^(embed|\d+)\s+[01]\.\d{3}\s+[01]\.\d{3}\s*$", RegexOptions.Multiline).Select(m => m.Groups[1].Value));
        Assert.Contains("resid_mid at the mean over positions", chosen.StdOut);

        using var dir = new TempDir();
        string bad = dir.File("bad.tsv");
        File.WriteAllText(bad, "girl\tLily sat.\nboy\tTom ran.\nboy: Ben ate.\n");
        var badFile = ClockLMProcess.Run("probe", "-m", SharedData.Stories260K, "--data", bad);
        Assert.Equal(1, badFile.ExitCode);
        Assert.Contains($"error: {bad}:3: expected 'label<TAB>sentence'", badFile.StdErr);

        var badLayer = ClockLMProcess.Run("probe", "-m", SharedData.Stories260K, "--data", ProbeDatasetTests.GirlBoyFile, "--layers", "1,9");
        Assert.Equal(1, badLayer.ExitCode);
        Assert.Contains("--layers names layer 9, but stories260K.bin has layers 0 to 4", badLayer.StdErr);

        var badPoint = ClockLMProcess.Run("probe", "-m", SharedData.Stories260K, "--data", ProbeDatasetTests.GirlBoyFile, "--point", "attn");
        Assert.Equal(1, badPoint.ExitCode);
        Assert.Contains("--point is 'attn', expected one of resid_pre", badPoint.StdErr);
    }
}
