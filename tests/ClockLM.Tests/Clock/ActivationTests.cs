using ClockLM.Clock;
using ClockLM.Models;

namespace ClockLM.Tests.Clock;

/// <summary>Activation capture and patching, the logit lens and the attention view on stories260K.</summary>
public class ActivationTests
{
    private static readonly int[] Prompt = ReferenceOutputs.Stories260K[0].Ids[..5]; // BOS and "Once upon a time"

    [Fact]
    public void HookReplacingEveryActivationWithItselfLeavesLogitsBitIdentical()
    {
        using var model = Model.Load(SharedData.Stories260K);
        float[] plain = model.CreateTransformer(16).Evaluate(Prompt, 0).ToArray();
        int calls = 0;
        float[] hooked = model.CreateTransformer(16).Run(Prompt, (_, _, _, activation) =>
        {
            calls++;
            float[] copy = activation.ToArray();
            copy.CopyTo(activation);
        }).ToArray();
        Assert.Equal(Prompt.Length * 5 * ActivationPoints.All.Length, calls); // every point of every cycle, once
        Assert.Equal(plain, hooked);
    }

    [Fact]
    public void ZeroingOneLayersMlpOutputChangesTheLogitsAndOnlyFromThatLayerOn()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var plain = ActivationCapture.Run(model.CreateTransformer(16), Prompt);
        var patched = ActivationCapture.Run(model.CreateTransformer(16), Prompt, hook: (point, layer, _, activation) =>
        {
            if (point == ActivationPoint.MlpOut && layer == 2) activation.Clear();
        });
        int last = Prompt.Length - 1;
        Assert.NotEqual(plain.Logits, patched.Logits);
        Assert.True(plain.Logits.Zip(patched.Logits).Max(p => Math.Abs(p.First - p.Second)) > 1e-3f);
        // Layers before 2 are untouched; the capture copies before the hook, so layer 2's mlp_out is still the original.
        Assert.Equal(plain.Get(ActivationPoint.ResidPost, 1, last), patched.Get(ActivationPoint.ResidPost, 1, last));
        Assert.Equal(plain.Get("blocks.2.hook_mlp_out", last), patched.Get("blocks.2.hook_mlp_out", last));
        // Layer 2's output is then its resid_mid unchanged.
        Assert.Equal(patched.Get(ActivationPoint.ResidMid, 2, last), patched.Get(ActivationPoint.ResidPost, 2, last));
    }

    [Fact]
    public void CapturedPointsAreConsistentWithTheResidualStream()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var t = model.CreateTransformer(16);
        var capture = ActivationCapture.Run(t, Prompt);
        for (int pos = 0; pos < Prompt.Length; pos++)
            for (int layer = 0; layer < 5; layer++)
            {
                float[] pre = capture.Get(ActivationPoint.ResidPre, layer, pos);
                float[] mid = capture.Get(ActivationPoint.ResidMid, layer, pos);
                float[] post = capture.Get(ActivationPoint.ResidPost, layer, pos);
                Assert.Equal(pre.Zip(capture.Get(ActivationPoint.AttnOut, layer, pos), (a, b) => a + b), mid);
                Assert.Equal(mid.Zip(capture.Get(ActivationPoint.MlpOut, layer, pos), (a, b) => a + b), post);
                if (layer < 4) Assert.Equal(post, capture.Get(ActivationPoint.ResidPre, layer + 1, pos));
                float[] pattern = capture.Get(ActivationPoint.AttentionPattern, layer, pos);
                Assert.Equal(8 * (pos + 1), pattern.Length);
                foreach (var head in HeadAttention.FromPattern(layer, pos, pattern, 8))
                    Assert.Equal(1.0, head.Weights.Sum(), 4);
            }
        Assert.Equal(capture.Get(ActivationPoint.ResidPost, 4, Prompt.Length - 1), t.Residual.ToArray());
        Assert.Throws<KeyNotFoundException>(() => capture.Get(ActivationPoint.ResidPre, 0, Prompt.Length));
    }

    [Fact]
    public void LogitLensAtTheLastCycleIsTheModelsOutputDistribution()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var t = model.CreateTransformer(16, cache: KvCacheOptions.F32); // as run.c, whose greedy token is checked
        var capture = ActivationCapture.Run(t, Prompt, points: [ActivationPoint.ResidPost]);
        float[] expected = (float[])capture.Logits.Clone();
        Transformer.Softmax(expected);
        var lens = new LogitLens(t);
        Assert.Equal(expected, lens.Probabilities(capture.Get(ActivationPoint.ResidPost, 4, Prompt.Length - 1)).ToArray());
        // Its top token is the greedy continuation of "Once upon a time": ',' (id 265 in the reference).
        Assert.Equal(ReferenceOutputs.Stories260K[0].Ids[5], lens.Top(capture.Get(ActivationPoint.ResidPost, 4, Prompt.Length - 1), 1)[0].Token);
        // Earlier cycles say something else with a different distribution.
        Assert.NotEqual(expected, lens.Probabilities(capture.Get(ActivationPoint.ResidPost, 0, Prompt.Length - 1)).ToArray());
    }

    [Fact]
    public void TopKIsTheSortedLargestProbabilities()
    {
        var random = new Random(5);
        float[] p = Enumerable.Range(0, 300).Select(_ => (float)random.NextDouble()).ToArray();
        var top = LogitLens.TopK(p, 7);
        var expected = p.Select((v, i) => (v, i)).OrderByDescending(x => x.v).ThenBy(x => x.i).Take(7).Select(x => new TokenProbability(x.i, x.v));
        Assert.Equal(expected, top);
    }

    [Fact]
    public void AttentionEntropyAndStrongestPosition()
    {
        var uniform = new HeadAttention(0, 0, 3, [0.25f, 0.25f, 0.25f, 0.25f]);
        Assert.Equal(Math.Log(4), uniform.Entropy, 6);
        var peaked = new HeadAttention(0, 1, 2, [0f, 1f, 0f]);
        Assert.Equal(0, peaked.Entropy, 9);
        Assert.Equal((1, 1f), peaked.Strongest);
        Assert.Throws<ArgumentException>(() => HeadAttention.FromPattern(0, 2, new float[5], 2));
    }

    [Fact]
    public void ActivationPointNamesRoundTrip()
    {
        foreach (var point in ActivationPoints.All)
            Assert.Equal((point, 3), ActivationPoints.Parse(ActivationPoints.Name(point, 3)));
        Assert.Equal("blocks.0.hook_resid_pre", ActivationPoints.Name(ActivationPoint.ResidPre, 0));
        Assert.Equal("blocks.4.attn.hook_pattern", ActivationPoints.Name(ActivationPoint.AttentionPattern, 4));
        Assert.Equal("blocks.2.attn.hook_z", ActivationPoints.Name(ActivationPoint.AttnZ, 2));
        Assert.Equal("blocks.1.mlp.hook_post", ActivationPoints.Name(ActivationPoint.MlpPost, 1));
        Assert.Equal(11, ActivationPoints.All.Distinct().Count());
        var e = Assert.Throws<FormatException>(() => ActivationPoints.Parse("blocks.1.hook_nothing"));
        Assert.Contains("blocks.1.hook_nothing", e.Message);
    }
}
