using System.Text.Json.Nodes;
using ClockLM.Features;
using ClockLM.Nn;

namespace ClockLM.Tests.Features;

/// <summary>Sparse autoencoders: encoding and decoding against values computed by hand, and SAELens's file format.</summary>
public class SparseAutoencoderTests
{
    // d_in 2, d_sae 3. W_enc (2, 3), b_enc (3), W_dec (3, 2): features 0 and 1 decode to the axes, feature 2 to (1, 1).
    private static readonly float[] WEnc = [1, -1, 0.5f, 2, 0, -1], BEnc = [0, 0.5f, -0.25f], WDec = [1, 0, 0, 1, 1, 1], BDec = [0.1f, -0.1f];

    private static SparseAutoencoder Small(SaeActivation activation, int k = 0) =>
        new("blocks.1.hook_resid_post", 2, 3, WEnc, BEnc, WDec, BDec, activation, threshold: [0.5f, 0, 1], k: k);

    [Theory]
    // x = (2, -1): x - b_dec = (1.9, -0.9); h = (1.9 - 1.8, -1.9 + 0.5, 0.95 + 0.9 - 0.25) = (0.1, -1.4, 1.6).
    [InlineData(SaeActivation.Relu, 0, new[] { 2f, -1f }, new[] { 0.1f, 0f, 1.6f }, new[] { 1.8f, 1.5f })]    // relu(h); x̂ = 0.1 (1, 0) + 1.6 (1, 1) + b_dec
    [InlineData(SaeActivation.JumpRelu, 0, new[] { 2f, -1f }, new[] { 0f, 0f, 1.6f }, new[] { 1.7f, 1.5f })] // thresholds (0.5, 0, 1): h0 = 0.1 is below its 0.5
    [InlineData(SaeActivation.TopK, 1, new[] { 2f, -1f }, new[] { 0f, 0f, 1.6f }, new[] { 1.7f, 1.5f })]    // the one largest, h2
    // x = (1, 2): x - b_dec = (0.9, 2.1); h = (5.1, -0.4, -1.9). Top-2 keeps h0 and h1, then relu zeroes h1.
    [InlineData(SaeActivation.TopK, 2, new[] { 1f, 2f }, new[] { 5.1f, 0f, 0f }, new[] { 5.2f, -0.1f })]
    public void EncodeAndDecodeMatchTheHandComputedValues(SaeActivation activation, int k, float[] x, float[] features, float[] reconstruction)
    {
        var sae = Small(activation, k);
        var f = new float[3];
        sae.Encode(x, f);
        for (int i = 0; i < 3; i++) Assert.Equal(features[i], f[i], 5);
        var y = new float[2];
        sae.Decode(f, y);
        for (int j = 0; j < 2; j++) Assert.Equal(reconstruction[j], y[j], 5);
        sae.Reconstruct(x, y);
        for (int j = 0; j < 2; j++) Assert.Equal(reconstruction[j], y[j], 5);
        // The reconstruction error |x - x̂|², e.g. ReLU: (2 - 1.8)² + (-1 - 1.5)² = 6.29.
        double error = x.Zip(reconstruction, (a, b) => (double)(a - b) * (a - b)).Sum();
        Assert.Equal(error, x.Zip(y, (a, b) => (double)(a - b) * (a - b)).Sum(), 4);
        if (activation == SaeActivation.Relu) Assert.Equal(6.29, error, 4);
        Assert.Equal(f.Select((v, i) => (v, i)).Where(p => p.v > 0).OrderByDescending(p => p.v).Select(p => new FeatureActivation(p.i, p.v)), sae.TopFeatures(x, 3));
    }

    [Theory]
    [InlineData(SaeNormalization.ConstantNormRescale)]
    [InlineData(SaeNormalization.LayerNorm)]
    public void NormalisedInputsAreScaledBackAfterDecoding(SaeNormalization normalization)
    {
        // An identity SAE (W_enc = W_dec = I, no biases, ReLU) reconstructs positive normalised inputs exactly, so the
        // reconstruction is x itself once the normalisation is undone.
        float[] identity = [1, 0, 0, 0, 1, 0, 0, 0, 1];
        var sae = new SparseAutoencoder("blocks.0.hook_resid_post", 3, 3, identity, new float[3], identity, new float[3], normalization: normalization);
        float[] x = normalization == SaeNormalization.ConstantNormRescale ? [3, 4, 12] : [1, 2, 9];
        var f = new float[3];
        sae.Encode(x, f);
        if (normalization == SaeNormalization.ConstantNormRescale)
            for (int j = 0; j < 3; j++) Assert.Equal(x[j] * MathF.Sqrt(3) / 13, f[j], 5); // |x| = 13, scaled to √3
        var y = new float[3];
        sae.Reconstruct(x, y);
        if (normalization == SaeNormalization.ConstantNormRescale)
            for (int j = 0; j < 3; j++) Assert.Equal(x[j], y[j], 4);
        else // layer norm: x - mean = (-3, -2, 5) has a negative part that ReLU drops; the positive one comes back exactly
            Assert.Equal(9f, y[2], 4);
    }

    [Theory]
    [InlineData(SaeActivation.Relu)]
    [InlineData(SaeActivation.JumpRelu)]
    [InlineData(SaeActivation.TopK)]
    public void SaveWritesSaeLensFilesThatLoadBack(SaeActivation activation)
    {
        using var dir = new TempDir();
        var sae = Small(activation, activation == SaeActivation.TopK ? 2 : 0);
        sae.Save(dir.Path, new Dictionary<string, string> { ["dataset_path"] = "stories.txt" });
        var cfg = JsonNode.Parse(File.ReadAllText(dir.File("cfg.json")))!;
        Assert.Equal(activation switch { SaeActivation.JumpRelu => "jumprelu", SaeActivation.TopK => "topk", _ => "standard" }, (string)cfg["architecture"]!);
        Assert.Equal((2, 3), ((int)cfg["d_in"]!, (int)cfg["d_sae"]!));
        Assert.Equal("blocks.1.hook_resid_post", (string)cfg["metadata"]!["hook_name"]!);
        Assert.Equal("blocks.1.hook_resid_post", (string)cfg["hook_name"]!);
        Assert.Equal(1, (int)cfg["hook_layer"]!);
        if (activation == SaeActivation.TopK) Assert.Equal(2, (int)cfg["k"]!);
        var tensors = SafetensorsWeights.Tensors(dir.File("sae_weights.safetensors"));
        Assert.Equal(activation == SaeActivation.JumpRelu ? ["W_dec", "W_enc", "b_dec", "b_enc", "threshold"] : ["W_dec", "W_enc", "b_dec", "b_enc"], tensors.Keys.Order());
        Assert.Equal([2, 3], tensors["W_enc"].Shape);
        Assert.Equal([3, 2], tensors["W_dec"].Shape);
        Assert.All(tensors.Values, t => Assert.Equal("F32", t.DType));

        foreach (string path in new[] { dir.Path, dir.File("cfg.json"), dir.File("sae_weights.safetensors") })
        {
            var back = SparseAutoencoder.Load(path);
            Assert.Equal((activation, sae.K, "blocks.1.hook_resid_post"), (back.Activation, back.K, back.HookName));
            Assert.Equal(WEnc, back.EncoderWeights);
            Assert.Equal(WDec, back.DecoderWeights);
            Assert.Equal(BDec, back.DecoderBias);
        }
    }

    [Fact]
    public void ReadsConfigsOfEarlierSaeLensVersions()
    {
        using var dir = new TempDir();
        Small(SaeActivation.Relu).Save(dir.Path);
        // A pre-6.0 cfg.json: the hook point at the top (as hook_point), top-k as activation_fn_str with its k in kwargs.
        File.WriteAllText(dir.File("cfg.json"), """
            {"architecture": "standard", "d_in": 2, "d_sae": 3, "hook_point": "blocks.1.hook_mlp_out", "hook_point_layer": 1,
             "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 1}, "apply_b_dec_to_input": false, "dtype": "float32",
             "normalize_activations": false, "model_name": "stories260K"}
            """);
        var sae = SparseAutoencoder.Load(dir.Path);
        Assert.Equal((SaeActivation.TopK, 1, "blocks.1.hook_mlp_out", false, "stories260K"), (sae.Activation, sae.K, sae.HookName, sae.ApplyDecoderBiasToInput, sae.ModelName));
    }

    [Theory]
    [InlineData("""{"architecture": "gated", "d_in": 2, "d_sae": 3, "hook_name": "blocks.1.hook_resid_post"}""", "architecture is 'gated'")]
    [InlineData("""{"d_in": 2, "d_sae": 3}""", "no hook_name")]
    [InlineData("""{"d_in": 0, "d_sae": 3, "hook_name": "x"}""", "d_in is 0; expected a positive integer")]
    [InlineData("""{"d_in": 2, "d_sae": 3, "hook_name": "x", "normalize_activations": "expected_average_only_in"}""", "normalize_activations is 'expected_average_only_in'")]
    [InlineData("""{"d_in": 2, "d_sae": 3, "metadata": {"hook_name": "blocks.0.attn.hook_z", "hook_head_index": 4}}""", "hook_head_index is set")]
    [InlineData("""{"architecture": "jumprelu", "d_in": 2, "d_sae": 3, "hook_name": "x"}""", "needs a 'threshold' tensor")]
    [InlineData("""{"architecture": "topk", "d_in": 2, "d_sae": 3, "hook_name": "x"}""", "a top-k SAE needs k")]
    [InlineData("""{"d_in": 2, "d_sae": 4, "hook_name": "x"}""", "tensor 'W_enc' has shape [2, 3], expected [2, 4]")]
    [InlineData("""[1, 2]""", "not a JSON object")]
    public void BadFilesAreRefusedNamingTheFieldAndValue(string cfg, string message)
    {
        using var dir = new TempDir();
        Small(SaeActivation.Relu).Save(dir.Path);
        File.WriteAllText(dir.File("cfg.json"), cfg);
        var e = Assert.ThrowsAny<Exception>(() => SparseAutoencoder.Load(dir.Path));
        Assert.True(e is InvalidDataException, e.ToString());
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void WeightsOtherThanF32AreRefused()
    {
        using var dir = new TempDir();
        Small(SaeActivation.Relu).Save(dir.Path);
        SafetensorsWeights.Write(dir.File("sae_weights.safetensors"), [("W_enc", new Tensor<double>([2, 3], new double[6]))]);
        var e = Assert.Throws<InvalidDataException>(() => SparseAutoencoder.Load(dir.Path));
        Assert.Contains("tensor 'W_enc' is F64; ClockLM reads F32 SAE weights", e.Message);
    }
}
