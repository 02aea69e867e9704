using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Tests.Clock;

/// <summary>The per-head hook points (attn.hook_q/k/v/z) and the feed-forward network's hidden activation
/// (mlp.hook_post) on stories260K (8 query heads over 4 key/value heads): what each holds, and patching them.</summary>
public class HeadHookTests
{
    private static readonly int[] Prompt = ReferenceOutputs.Stories260K[0].Ids[..6];
    private static readonly ActivationPoint[] FinePoints =
        [ActivationPoint.AttnQ, ActivationPoint.AttnK, ActivationPoint.AttnV, ActivationPoint.AttnZ, ActivationPoint.MlpPost];

    [Fact]
    public void EveryFinePointHasItsWidthAndASelfReplacingHookLeavesLogitsBitIdentical()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        float[] plain = model.CreateTransformer(16).Evaluate(Prompt, 0).ToArray();
        foreach (var point in FinePoints)
        {
            int calls = 0;
            float[] hooked = model.CreateTransformer(16).Run(Prompt, (p, _, _, activation) =>
            {
                if (p != point) return;
                calls++;
                Assert.Equal(ActivationPoints.Width(point, c), activation.Length);
                activation.ToArray().CopyTo(activation);
            }).ToArray();
            Assert.Equal(Prompt.Length * c.Layers, calls);
            Assert.Equal(plain, hooked);
        }
        Assert.Equal((c.Heads * c.HeadSize, c.KvHeads * c.HeadSize, c.HiddenDim),
            (ActivationPoints.Width(ActivationPoint.AttnQ, c), ActivationPoints.Width(ActivationPoint.AttnV, c), ActivationPoints.Width(ActivationPoint.MlpPost, c)));
        Assert.True(c.KvHeads < c.Heads, "stories260K groups its query heads, so the kv points are narrower than the query ones");
    }

    [Fact]
    public void HookZIsTheValuesMixedByThePatternAndProjectsToAttnOut()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        var capture = ActivationCapture.Run(model.CreateTransformer(16, cache: KvCacheOptions.F32), Prompt); // values stored exactly as hook_v
        int group = c.Heads / c.KvHeads, hs = c.HeadSize;
        for (int layer = 0; layer < c.Layers; layer++)
            for (int pos = 0; pos < Prompt.Length; pos++)
            {
                float[] z = capture.Get(ActivationPoint.AttnZ, layer, pos), pattern = capture.Get(ActivationPoint.AttentionPattern, layer, pos);
                for (int h = 0; h < c.Heads; h++)
                    for (int d = 0; d < hs; d++)
                    {
                        // z_h = sum_t pattern_h[t] * v_t[h / group], the values as stored (the hook_v of each earlier position).
                        double expected = 0;
                        for (int t = 0; t <= pos; t++)
                            expected += pattern[h * (pos + 1) + t] * capture.Get(ActivationPoint.AttnV, layer, t)[h / group * hs + d];
                        Assert.True(Math.Abs(expected - z[h * hs + d]) < 1e-5, $"L{layer} @{pos} head {h}[{d}]: {z[h * hs + d]}, expected {expected}");
                    }
                // attn_out = Wo z (stories260K has no output bias or post-norm).
                float[] projected = new float[c.Dim];
                MatVec.Multiply(model.Weights.Layers[layer].Wo, z, projected);
                AssertClose(capture.Get(ActivationPoint.AttnOut, layer, pos), projected);
            }
        // At position 0 a head sees one value, so its z is that value exactly.
        float[] z0 = capture.Get(ActivationPoint.AttnZ, 1, 0), v0 = capture.Get(ActivationPoint.AttnV, 1, 0);
        for (int h = 0; h < c.Heads; h++)
            Assert.Equal(v0.AsSpan(h / group * hs, hs).ToArray(), z0.AsSpan(h * hs, hs).ToArray());
    }

    [Fact]
    public void MlpPostProjectsToMlpOut()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var capture = ActivationCapture.Run(model.CreateTransformer(16), Prompt, points: [ActivationPoint.MlpPost, ActivationPoint.MlpOut]);
        for (int layer = 0; layer < model.Config.Layers; layer++)
        {
            float[] projected = new float[model.Config.Dim];
            MatVec.Multiply(model.Weights.Layers[layer].W2, capture.Get(ActivationPoint.MlpPost, layer, 3), projected);
            AssertClose(capture.Get(ActivationPoint.MlpOut, layer, 3), projected);
        }
    }

    [Theory]
    [InlineData(ActivationPoint.AttnQ, 8)]
    [InlineData(ActivationPoint.AttnK, 4)]
    public void ZeroingAHeadsQueriesOrKeysMakesItAttendUniformly(ActivationPoint point, int headsAtPoint)
    {
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        Assert.Equal(headsAtPoint, ActivationPoints.Width(point, c) / c.HeadSize);
        const int layer = 2, head = 1; // with keys, kv head 1 serves query heads 2 and 3
        float[] plain = model.CreateTransformer(16).Evaluate(Prompt, 0).ToArray();
        var patched = ActivationCapture.Run(model.CreateTransformer(16), Prompt, hook: (p, l, _, activation) =>
        {
            if (p == point && l == layer) activation.Slice(head * c.HeadSize, c.HeadSize).Clear();
        });
        Assert.NotEqual(plain, patched.Logits);
        int[] affected = point == ActivationPoint.AttnQ ? [head] : [head * 2, head * 2 + 1];
        for (int pos = 1; pos < Prompt.Length; pos++)
        {
            float[] pattern = patched.Get(ActivationPoint.AttentionPattern, layer, pos);
            for (int h = 0; h < c.Heads; h++)
            {
                var weights = pattern.AsSpan(h * (pos + 1), pos + 1).ToArray();
                bool uniform = weights.All(w => Math.Abs(w - 1f / (pos + 1)) < 1e-6f);
                Assert.Equal(affected.Contains(h), uniform);
            }
        }
    }

    [Fact]
    public void ZeroingOneHeadOfZOrOneValueHeadOrOneNeuronChangesTheLogitsFromThatLayerOn()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        var plain = ActivationCapture.Run(model.CreateTransformer(16), Prompt);
        foreach (var (point, from, length) in new[] { (ActivationPoint.AttnZ, 3 * c.HeadSize, c.HeadSize), (ActivationPoint.AttnV, 0, c.HeadSize), (ActivationPoint.MlpPost, 17, 1) })
        {
            var patched = ActivationCapture.Run(model.CreateTransformer(16), Prompt, hook: (p, l, _, activation) =>
            {
                if (p == point && l == 2) activation.Slice(from, length).Clear();
            });
            Assert.True(plain.Logits.Zip(patched.Logits).Max(x => Math.Abs(x.First - x.Second)) > 1e-4f, $"{point}: the logits did not move");
            int last = Prompt.Length - 1;
            Assert.Equal(plain.Get(ActivationPoint.ResidPost, 1, last), patched.Get(ActivationPoint.ResidPost, 1, last));
            Assert.NotEqual(plain.Get(ActivationPoint.ResidPost, 2, last), patched.Get(ActivationPoint.ResidPost, 2, last));
            // The capture copies before the hook: the point itself still reads as it was.
            Assert.Equal(plain.Get(point, 2, last), patched.Get(point, 2, last));
        }
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        float scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * scale + 1e-6f, $"[{i}]: {expected[i]} vs {actual[i]}");
    }
}
