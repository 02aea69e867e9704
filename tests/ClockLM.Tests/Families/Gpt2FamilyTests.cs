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
        string path = dir.File("gpt2.gguf"), vocab = SharedData.Vocab("ggml-vocab-gpt-2.gguf");
        int vocabSize;
        using (var file = GgufFile.Open(vocab))
            vocabSize = file.GetArray<string>("tokenizer.ggml.tokens").Length;
        var c = new LlamaConfig(Dim: 64, HiddenDim: 256, Layers: 3, Heads: 4, KvHeads: 4, VocabSize: vocabSize, ContextLength: 128);
        var tensors = new List<FamilyTensor> { new("token_embd.weight", vocabSize, c.Dim), new("position_embd.weight", c.ContextLength, c.Dim) };
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            tensors.AddRange([
                new(p + "attn_norm.weight", 1, c.Dim), new(p + "attn_norm.bias", 1, c.Dim),
                new(p + "attn_qkv.weight", 3 * c.Dim, c.Dim), new(p + "attn_qkv.bias", 1, 3 * c.Dim),
                new(p + "attn_output.weight", c.Dim, c.Dim), new(p + "attn_output.bias", 1, c.Dim),
                new(p + "ffn_norm.weight", 1, c.Dim), new(p + "ffn_norm.bias", 1, c.Dim),
                new(p + "ffn_up.weight", c.HiddenDim, c.Dim), new(p + "ffn_up.bias", 1, c.HiddenDim),
                new(p + "ffn_down.weight", c.Dim, c.HiddenDim), new(p + "ffn_down.bias", 1, c.Dim),
            ]);
        }
        tensors.AddRange([new("output_norm.weight", 1, c.Dim), new("output_norm.bias", 1, c.Dim), new("output.weight", vocabSize, c.Dim)]);
        FamilyModels.Write(path, "gpt2", c, tensors, w => w.Set("gpt2.attention.layer_norm_epsilon", 1e-5f), seed: 23, std: 0.1f,
            vocabularyFile: vocab);

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
