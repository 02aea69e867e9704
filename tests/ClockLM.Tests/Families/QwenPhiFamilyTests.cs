using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tokenizers;
using Xunit.Abstractions;

namespace ClockLM.Tests.Families;

/// <summary>Qwen 2, Qwen 3 and Phi-3 against llama.cpp on random-weight models in their own GGUF layouts.</summary>
[Collection("llama.cpp")]
public class QwenPhiFamilyTests(ITestOutputHelper output)
{
    private static readonly LlamaConfig Shape = new(Dim: 128, HiddenDim: 256, Layers: 3, Heads: 4, KvHeads: 2, VocabSize: 400, ContextLength: 128, RmsEpsilon: 1e-6f, RopeBase: 1000000f);

    [Fact]
    public void Qwen2WithBiasesAndHalvesRopeMatchesLlamaCpp()
    {
        using var dir = new TempDir();
        string path = dir.File("qwen2.gguf");
        var tensors = FamilyModels.LlamaLayout(Shape);
        for (int l = 0; l < Shape.Layers; l++)
        {
            tensors.Add(new($"blk.{l}.attn_q.bias", 1, Shape.QDim));
            tensors.Add(new($"blk.{l}.attn_k.bias", 1, Shape.KvDim));
            tensors.Add(new($"blk.{l}.attn_v.bias", 1, Shape.KvDim));
        }
        FamilyModels.Write(path, "qwen2", Shape, tensors, seed: 7);
        using (var model = Model.Load(path))
        {
            Assert.Equal(RopeStyle.Halves, model.Config.Rope);
            Assert.NotNull(model.Weights.Layers[2].BiasV);
            Assert.False(model.Weights.TiedOutput);
        }
        FamilyOracle.CompareWithLlamaCpp(path, output);
    }

    [Fact]
    public void Qwen3WithHeadNormsAndWiderHeadsMatchesLlamaCpp()
    {
        using var dir = new TempDir();
        string path = dir.File("qwen3.gguf");
        var shape = Shape with { HeadDim = 48 }; // 4 heads of 48: q_dim 192 over a 128-wide residual stream
        var tensors = FamilyModels.LlamaLayout(shape);
        tensors.RemoveAll(t => t.Name == "output.weight"); // tied to the embedding, as in the small Qwen 3 models
        for (int l = 0; l < shape.Layers; l++)
        {
            tensors.Add(new($"blk.{l}.attn_q_norm.weight", 1, shape.HeadSize));
            tensors.Add(new($"blk.{l}.attn_k_norm.weight", 1, shape.HeadSize));
        }
        FamilyModels.Write(path, "qwen3", shape, tensors, w =>
        {
            w.Set("qwen3.attention.key_length", 48u);
            w.Set("qwen3.attention.value_length", 48u);
        }, seed: 9);
        using (var model = Model.Load(path))
        {
            Assert.Equal(48, model.Config.HeadSize);
            Assert.Equal(192, model.Config.QDim);
            Assert.True(model.Weights.TiedOutput);
        }
        FamilyOracle.CompareWithLlamaCpp(path, output);
    }

    [Fact]
    public void Phi3WithFusedMatricesMatchesLlamaCpp()
    {
        using var dir = new TempDir();
        string path = dir.File("phi3.gguf");
        // llama.cpp looks up Phi-3's own special tokens when it loads a phi3 file, so this one carries Phi-3's vocabulary.
        SentencePieceTokenizer vocabulary;
        using (var vocabFile = GgufFile.Open(SharedData.Vocab("ggml-vocab-phi-3.gguf")))
            vocabulary = SentencePieceTokenizer.FromGguf(vocabFile);
        var shape = Shape with { KvHeads = 4, RmsEpsilon = 1e-5f, RopeBase = 10000f, VocabSize = vocabulary.VocabSize };
        FamilyModels.Write(path, "phi3", shape, FamilyModels.LlamaLayout(shape, fusedQkv: true, fusedGateUp: true), seed: 13,
            vocabulary: vocabulary);
        using (var model = Model.Load(path))
        {
            Assert.Equal(RopeStyle.Halves, model.Config.Rope);
            var layer = model.Weights.Layers[1];
            Assert.Equal((shape.QDim, shape.KvDim, shape.KvDim), (layer.Wq.Rows, layer.Wk.Rows, layer.Wv.Rows));
            Assert.Equal((shape.HiddenDim, shape.HiddenDim), (layer.W1.Rows, layer.W3.Rows));
        }
        FamilyOracle.CompareWithLlamaCpp(path, output);
    }

    [Fact]
    public void Phi3LongContextRopeFactorsAreATypedError()
    {
        using var dir = new TempDir();
        string path = dir.File("phi3-128k.gguf");
        var shape = Shape with { KvHeads = 4 };
        var tensors = FamilyModels.LlamaLayout(shape, fusedQkv: true, fusedGateUp: true);
        tensors.Add(new("rope_factors_long.weight", 1, shape.HeadSize / 2));
        FamilyModels.Write(path, "phi3", shape, tensors);
        var e = Assert.Throws<GgufFormatException>(() => Model.Load(path));
        Assert.Contains("rope_factors_long.weight", e.Message);
    }
}
