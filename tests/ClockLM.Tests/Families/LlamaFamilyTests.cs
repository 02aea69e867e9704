using ClockLM.Gguf;
using ClockLM.Models;
using Xunit.Abstractions;

namespace ClockLM.Tests.Families;

/// <summary>Llama with Llama 3's RoPE frequency factors, and Mistral (llama's graph under another name), against llama.cpp.</summary>
[Collection("llama.cpp")]
public class LlamaFamilyTests(ITestOutputHelper output)
{
    private static readonly LlamaConfig Shape = new(Dim: 128, HiddenDim: 256, Layers: 3, Heads: 4, KvHeads: 2, VocabSize: 400, ContextLength: 128);

    /// <summary>Factors shaped like Llama 3.1's (1 for the fast-turning pairs, growing to 8 for the slower ones), but
    /// starting early enough in a 32-wide head that they change rotations within a short prompt.</summary>
    private static float Llama3Factor(int i) => i < 4 ? 1f : Math.Min(8f, 1f + 0.75f * (i - 4));

    [Fact]
    public void Llama3RopeFrequencyFactorsMatchLlamaCpp()
    {
        using var dir = new TempDir();
        string path = dir.File("llama3.gguf");
        var tensors = FamilyModels.LlamaLayout(Shape);
        tensors.Add(new("rope_freqs.weight", 1, Shape.HeadSize / 2));
        // Llama 3.1's converter stores the scaling as this tensor alone (llama.cpp knows no "llama3" scaling type).
        FamilyModels.Write(path, "llama", Shape, tensors, seed: 3, ropeFactor: Llama3Factor);

        using (var model = Model.Load(path))
            Assert.Equal(Enumerable.Range(0, Shape.HeadSize / 2).Select(Llama3Factor), model.Weights.RopeFrequencyFactors!);
        FamilyOracle.CompareWithLlamaCpp(path, output);
    }

    [Fact]
    public void RopeFrequencyFactorsChangeTheLogits()
    {
        // The factors must reach the forward pass: the same weights without them give other logits.
        using var dir = new TempDir();
        string with = dir.File("with.gguf"), without = dir.File("without.gguf");
        var tensors = FamilyModels.LlamaLayout(Shape);
        FamilyModels.Write(without, "llama", Shape, tensors, seed: 3);
        tensors.Add(new("rope_freqs.weight", 1, Shape.HeadSize / 2));
        FamilyModels.Write(with, "llama", Shape, tensors, seed: 3, ropeFactor: Llama3Factor);
        int[] prompt = Enumerable.Range(3, 20).ToArray();
        using var a = Model.Load(with);
        using var b = Model.Load(without);
        float[] la = a.CreateTransformer(64).Evaluate(prompt, 0).ToArray();
        float[] lb = b.CreateTransformer(64).Evaluate(prompt, 0).ToArray();
        double std = Math.Sqrt(lb.Average(v => v * (double)v) - Math.Pow(lb.Average(v => (double)v), 2));
        Assert.True(la.Zip(lb, (x, y) => Math.Abs(x - y)).Max() > 100 * FamilyOracle.Tolerance * std);
    }

    /// <summary>The llama.cpp in LLamaSharp 0.30 refuses a file whose architecture is "mistral" (it knows only
    /// "mistral3"; Mistral 7B converts to "llama"), so Mistral is checked against llama: the same weights under both
    /// names give identical logits in ClockLM, and the llama file is checked against llama.cpp.</summary>
    [Fact]
    public void MistralRunsAsLlama()
    {
        using var dir = new TempDir();
        string mistral = dir.File("mistral.gguf"), llama = dir.File("llama.gguf");
        var shape = Shape with { RopeBase = 1000000f };
        FamilyModels.Write(mistral, "mistral", shape, FamilyModels.LlamaLayout(shape), seed: 5);
        FamilyModels.Write(llama, "llama", shape, FamilyModels.LlamaLayout(shape), seed: 5);
        int[] prompt = Enumerable.Range(3, 20).ToArray();
        using var a = Model.Load(mistral);
        using var b = Model.Load(llama);
        Assert.Equal(b.Config, a.Config);
        Assert.Equal(1000000f, a.Config.RopeBase);
        Assert.Equal(b.CreateTransformer(64).Evaluate(prompt, 0).ToArray(), a.CreateTransformer(64).Evaluate(prompt, 0).ToArray());
        FamilyOracle.CompareWithLlamaCpp(llama, output);
    }

    [Fact]
    public void UnsupportedArchitectureIsATypedError()
    {
        using var dir = new TempDir();
        string path = dir.File("mamba.gguf");
        FamilyModels.Write(path, "mamba", Shape, FamilyModels.LlamaLayout(Shape));
        var e = Assert.Throws<GgufFormatException>(() => Model.Load(path));
        Assert.Contains("architecture 'mamba' is not supported", e.Message);
    }
}
