using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Steering;

namespace ClockLM.Tests.Steering;

/// <summary>Making control vectors from prompt pairs (llama.cpp's cvector-generator) on stories260K.</summary>
public class ControlVectorMakerTests
{
    [Fact]
    public void MeanIsTheUnitMeanOfTheResidualDifferencesEnteringEachLayer()
    {
        using var model = Model.Load(SharedData.Stories260K);
        string[] pos = ["Lily was happy.", "Tom smiled at the sun and laughed."], neg = ["Lily was sad.", "Tom cried."];
        var vector = ControlVectorMaker.Make(model, pos, neg, new ControlVectorOptions { FirstLayer = 2, LastLayer = 3 });
        Assert.Equal([2, 3], vector.Directions.Keys);
        Assert.Equal("llama", vector.ModelHint);

        // By hand: pad each pair with the space token, capture resid_post of layer N-1 at every position, keep the
        // positions where the prompts differ, average, normalise.
        int pad = model.Tokenizer.Encode(" ", addSpecial: false)[^1];
        foreach (int layer in new[] { 2, 3 })
        {
            var sum = new double[model.Config.Dim];
            int rows = 0;
            for (int i = 0; i < pos.Length; i++)
            {
                var a = model.Tokenizer.Encode(pos[i]);
                var b = model.Tokenizer.Encode(neg[i]);
                while (a.Count < b.Count) a.Add(pad);
                while (b.Count < a.Count) b.Add(pad);
                var ca = ActivationCapture.Run(model.CreateTransformer(32), a.ToArray(), points: [ActivationPoint.ResidPre]);
                var cb = ActivationCapture.Run(model.CreateTransformer(32), b.ToArray(), points: [ActivationPoint.ResidPre]);
                for (int p = 0; p < a.Count; p++)
                {
                    var d = ca.Get(ActivationPoint.ResidPre, layer, p).Zip(cb.Get(ActivationPoint.ResidPre, layer, p), (x, y) => x - y).ToArray();
                    if (d.All(v => Math.Abs(v) <= 1e-6f)) continue;
                    rows++;
                    for (int j = 0; j < d.Length; j++) sum[j] += d[j];
                }
            }
            Assert.True(rows > 0);
            double norm = Math.Sqrt(sum.Sum(v => v * v));
            for (int j = 0; j < sum.Length; j++)
                Assert.Equal(sum[j] / norm, vector.Directions[layer][j], 5);
        }
    }

    [Fact]
    public void PcaIsTheLeadingEigenvectorTurnedTowardsTheMean()
    {
        // Rows a u ± e z, u = (0.6, 0.8, 0), z = (0, 0, 1): Σ d dᵀ = 2 Σa² u uᵀ + 2 Σe² z zᵀ exactly, so u is the leading
        // eigenvector (Σa² > Σe²); a of both signs, so the mean is small but along +u.
        var random = new Random(3);
        var rows = new List<float[]>();
        for (int i = 0; i < 100; i++)
        {
            float a = (float)(random.NextDouble() * 4 - 1.8), e = (float)(random.NextDouble() * 0.5);
            rows.Add([0.6f * a, 0.8f * a, e]);
            rows.Add([0.6f * a, 0.8f * a, -e]);
        }
        double[] mean = [0, 0, 0];
        foreach (var r in rows) for (int j = 0; j < 3; j++) mean[j] += r[j] / rows.Count;
        double[] v = ControlVectorMaker.FirstPrincipalComponent(rows, mean, 1000);
        Assert.Equal(0.6, v[0], 5);
        Assert.Equal(0.8, v[1], 5);
        Assert.Equal(0, v[2], 5);
        // The same rows with the mean pointing the other way give the other sign.
        double[] flipped = ControlVectorMaker.FirstPrincipalComponent(rows.Select(r => r.Select(x => -x).ToArray()).ToList(), mean.Select(m => -m).ToArray(), 1000);
        Assert.Equal(v.Select(x => -x), flipped);
    }

    [Fact]
    public void PcaAndMeanAgreeOnTheHappySadPairsAndDifferInDetail()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var mean = ControlVectorMaker.Make(model, HappySadSteeringTests.Happy, HappySadSteeringTests.Sad);
        var pca = ControlVectorMaker.Make(model, HappySadSteeringTests.Happy, HappySadSteeringTests.Sad, new ControlVectorOptions { Method = ControlVectorMethod.Pca });
        foreach (int layer in mean.Directions.Keys)
        {
            double cosine = mean.Directions[layer].Zip(pca.Directions[layer], (a, b) => (double)a * b).Sum();
            Assert.InRange(cosine, 0.3, 0.9999); // both unit length: same half-space, not the same vector
            Assert.Equal(1.0, Math.Sqrt(pca.Directions[layer].Sum(x => (double)x * x)), 5);
        }
    }

    [Fact]
    public void BadPairsAreRefused()
    {
        using var model = Model.Load(SharedData.Stories260K);
        Assert.Contains("in pairs", Assert.Throws<ArgumentException>(() => ControlVectorMaker.Make(model, ["a", "b"], ["c"])).Message);
        Assert.Contains("no prompt pairs", Assert.Throws<ArgumentException>(() => ControlVectorMaker.Make(model, [], [])).Message);
        Assert.Contains("no difference", Assert.Throws<ArgumentException>(() => ControlVectorMaker.Make(model, ["Tom ran."], ["Tom ran."])).Message);
        Assert.Contains("layers 0-2", Assert.Throws<ArgumentException>(() =>
            ControlVectorMaker.Make(model, ["a"], ["b"], new ControlVectorOptions { FirstLayer = 0, LastLayer = 2 })).Message);
        Assert.Contains("layers 1-5", Assert.Throws<ArgumentException>(() =>
            ControlVectorMaker.Make(model, ["a"], ["b"], new ControlVectorOptions { LastLayer = 5 })).Message);
    }
}
