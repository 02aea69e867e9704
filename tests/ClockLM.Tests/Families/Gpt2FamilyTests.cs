using ClockLM.Gguf;
using ClockLM.Models;
using Xunit.Abstractions;

namespace ClockLM.Tests.Families;

/// <summary>GPT-2 against llama.cpp: learned position embeddings, LayerNorm with bias, fused QKV with bias, output
/// projection bias and a GELU feed-forward network with biases; no RoPE.</summary>
[Collection("llama.cpp")]
public class Gpt2FamilyTests(ITestOutputHelper output)
{
    [Fact]
    public void Gpt2MatchesLlamaCpp()
    {
        using var dir = new TempDir();
        string path = dir.File("gpt2.gguf");
        var c = FamilyModels.WriteGpt2(path, layers: 3, contextLength: 128);

        using (var model = Model.Load(path))
        {
            var config = model.Config;
            Assert.Equal((Normalization.LayerNorm, FeedForward.Gelu, RopeStyle.None), (config.Normalization, config.FeedForward, config.Rope));
            Assert.NotNull(model.Weights.PositionEmbedding);
            Assert.NotNull(model.Weights.Layers[0].BiasV);
            Assert.NotNull(model.Weights.FinalNormBias);
        }
        // llama.cpp's GELU goes through an F16 table, as for Gemma (see GemmaFamilyTests). Measured: 1.8e-3 of std after
        // the prompt, up to 2.2e-3 over the greedy steps; 2.1e-6 after the prompt when ClockLM rounds its GELU to F16 too.
        FamilyOracle.CompareWithLlamaCpp(path, output, tolerance: 5e-3);
    }
}
