using ClockLM.Probes;

namespace ClockLM.Tests.Probes;

/// <summary>The split, the baseline and the per-layer probes on hand-made features whose layers are known.</summary>
public class LayerProbeTests
{
    [Fact]
    public void SplitIsStratifiedDisjointAndFixedBySeed()
    {
        int[] labels = [.. Enumerable.Range(0, 100).Select(i => i < 70 ? 0 : 1)];
        var (train, test) = LayerProbe.Split(labels, 0.3, seed: 7);
        Assert.Equal(21, test.Count(i => labels[i] == 0));  // round(70 · 0.3)
        Assert.Equal(9, test.Count(i => labels[i] == 1));   // round(30 · 0.3)
        Assert.Equal(70, train.Length);
        Assert.Empty(train.Intersect(test));
        Assert.Equal(Enumerable.Range(0, 100), train.Concat(test).Order());

        var again = LayerProbe.Split(labels, 0.3, seed: 7);
        Assert.Equal(test, again.Test);
        Assert.Equal(train, again.Train);
        Assert.NotEqual(test.Order(), LayerProbe.Split(labels, 0.3, seed: 8).Test.Order());

        var e = Assert.Throws<ArgumentException>(() => LayerProbe.Split([0, 0, 0, 1], 0.3, seed: 1));
        Assert.Contains("class 1 has 1 examples", e.Message);
    }

    /// <summary>
    /// Six "layers" of 16 features for 400 examples: noise N(0, 1) everywhere, plus ±2 along a fixed direction by label
    /// from layer 2 on (Bayes accuracy Φ(2) = 0.977). Feature 3 is shifted by 1000 and feature 5 scaled by 1000 at
    /// every layer, which standardisation must undo; feature 7 is constant, which it must ignore.
    /// With 120 test examples, chance ± 2 standard errors is 0.5 ± 2·√(0.25/120) = 0.5 ± 0.091.
    /// </summary>
    [Fact]
    public void FindsTheFirstLayerWhereThePropertyIsLinearlyEncoded()
    {
        const int n = 400, width = 16, firstEncoded = 2;
        var noise = new ClockLM.Models.GaussianRandom(42);
        int[] labels = [.. Enumerable.Range(0, n).Select(i => (i * 7 + 3) % 5 < 2 ? 1 : 0)]; // 40% class 1
        float[] direction = [.. Enumerable.Range(0, width).Select(_ => noise.Next())];
        float norm = MathF.Sqrt(direction.Sum(d => d * d));
        var rows = new Dictionary<int, float[][]>();
        for (int layer = LayerProbe.EmbeddingLayer; layer <= 4; layer++)
        {
            rows[layer] = new float[n][];
            for (int i = 0; i < n; i++)
            {
                var x = new float[width];
                for (int j = 0; j < width; j++)
                    x[j] = noise.Next() + (layer >= firstEncoded ? (labels[i] == 1 ? 2 : -2) * direction[j] / norm : 0);
                x[3] += 1000;
                x[5] *= 1000;
                x[7] = 5;
                rows[layer][i] = x;
            }
        }

        var report = LayerProbe.TrainPerLayer(new ProbeFeatures(labels, rows), new ProbeOptions { Seed = 3, Epochs = 60 });

        Assert.Equal([-1, 0, 1, 2, 3, 4], report.Layers.Select(r => r.Layer));
        Assert.Equal(["embed", "0", "1", "2", "3", "4"], report.Layers.Select(r => r.Name));
        Assert.Equal(280, report.TrainCount);
        Assert.Equal(120, report.TestCount);
        Assert.Equal(72 / 120.0, report.MajorityBaseline, 12); // class 0 is 60%: 72 of the 120 held out
        Assert.Equal(2 * Math.Sqrt(0.6 * 0.4 / 120), report.TwoStandardErrors, 12);
        Assert.Equal(firstEncoded, report.FirstLayerAboveChance);
        foreach (var r in report.Layers)
        {
            if (r.Layer < firstEncoded)
                Assert.InRange(r.TestAccuracy, 0, report.MajorityBaseline + report.TwoStandardErrors);
            else
                Assert.InRange(r.TestAccuracy, 0.93, 1.0);
        }
    }

    [Fact]
    public void SameSeedGivesTheSameReport()
    {
        var noise = new ClockLM.Models.GaussianRandom(5);
        int[] labels = [.. Enumerable.Range(0, 60).Select(i => i % 2)];
        var rows = new Dictionary<int, float[][]>
        {
            [-1] = [.. labels.Select(l => new[] { noise.Next() + l, noise.Next() })],
            [0] = [.. labels.Select(l => new[] { noise.Next(), noise.Next() - l })],
        };
        var features = new ProbeFeatures(labels, rows);
        var options = new ProbeOptions { Seed = 9, Epochs = 20 };
        Assert.Equal(LayerProbe.TrainPerLayer(features, options), LayerProbe.TrainPerLayer(features, options), ReportComparer.Instance);
    }

    [Fact]
    public void BadFeaturesAndOptionsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new ProbeFeatures([0, 2], new Dictionary<int, float[][]>()));
        Assert.Throws<ArgumentException>(() => new ProbeFeatures([0, 1], new Dictionary<int, float[][]> { [0] = [[1f]] }));
        Assert.Throws<ArgumentException>(() => new ProbeFeatures([0, 1], new Dictionary<int, float[][]> { [0] = [[1f], [1f, 2f]] }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProbeOptions { TestFraction = 1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProbeOptions { Epochs = 0 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ProbeOptions { Point = ClockLM.Clock.ActivationPoint.AttentionPattern }.Validate());
    }

    private sealed class ReportComparer : IEqualityComparer<ProbeReport>
    {
        public static readonly ReportComparer Instance = new();
        public bool Equals(ProbeReport? a, ProbeReport? b) =>
            a!.Layers.SequenceEqual(b!.Layers) && a.TrainCount == b.TrainCount && a.TestCount == b.TestCount && a.MajorityBaseline == b.MajorityBaseline;
        public int GetHashCode(ProbeReport r) => r.TestCount;
    }
}
