using ClockLM.Chat;
using ClockLM.Models;
using Microsoft.Extensions.AI;

namespace ClockLM.Tests.Server;

/// <summary>The in-process IEmbeddingGenerator: the mean of the final hidden states, scaled to unit length.</summary>
public sealed class EmbeddingGeneratorTests
{
    [Fact]
    public async Task EmbeddingsAreTheUnitMeanOfTheFinalHiddenStates()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using IEmbeddingGenerator<string, Embedding<float>> generator = new ClockLMEmbeddingGenerator(model);
        string[] texts = ["Lily and Tom went to the park.", "Once upon a time", "Lily and Tom went to the park."];
        var result = await generator.GenerateAsync(texts);

        Assert.Equal(3, result.Count);
        for (int i = 0; i < texts.Length; i++)
        {
            float[] expected = Reference(model, texts[i]);
            float[] actual = result[i].Vector.ToArray();
            Assert.Equal(model.Config.Dim, actual.Length);
            for (int d = 0; d < actual.Length; d++) Assert.Equal(expected[d], actual[d], 1e-5f);
            Assert.Equal(1.0, Math.Sqrt(actual.Sum(v => (double)v * v)), 1e-5);
        }
        Assert.Equal(result[0].Vector.ToArray(), result[2].Vector.ToArray());
        Assert.NotEqual(result[0].Vector.ToArray(), result[1].Vector.ToArray());
        long tokens = texts.Sum(t => model.Tokenizer.Encode(t, addSpecial: true).Count);
        Assert.Equal(tokens, result.Usage!.InputTokenCount);
        Assert.Equal("stories260K", result[0].ModelId);
        var metadata = generator.GetService<EmbeddingGeneratorMetadata>()!;
        Assert.Equal(model.Config.Dim, metadata.DefaultModelDimensions);
    }

    [Fact]
    public async Task BadRequestsNameTheTextOrTheOption()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var generator = new ClockLMEmbeddingGenerator(model, contextLength: 8);
        var tooLong = await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync(["ok", "one two three four five six seven eight nine ten"]));
        Assert.Contains("text 1 is", tooLong.Message);
        Assert.Contains("context holds 8", tooLong.Message);
        var width = await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync(["ok"], new EmbeddingGenerationOptions { Dimensions = 3 }));
        Assert.Contains($"Dimensions is 3; this model's embeddings have {model.Config.Dim}", width.Message);
    }

    /// <summary>Mean pooling written out plainly: run the tokens, RMS-normalize each final residual, average, normalize.</summary>
    private static float[] Reference(Model model, string text)
    {
        var ids = model.Tokenizer.Encode(text, addSpecial: true);
        var transformer = model.CreateTransformer();
        int dim = model.Config.Dim;
        var mean = new float[dim];
        for (int pos = 0; pos < ids.Count; pos++)
        {
            transformer.Forward(ids[pos], pos);
            var x = transformer.Residual;
            float ms = 0;
            for (int i = 0; i < dim; i++) ms += x[i] * x[i];
            float scale = 1 / MathF.Sqrt(ms / dim + model.Config.RmsEpsilon);
            for (int i = 0; i < dim; i++) mean[i] += x[i] * scale * model.Weights.FinalNorm[i] / ids.Count;
        }
        float length = MathF.Sqrt(mean.Sum(v => v * v));
        return mean.Select(v => v / length).ToArray();
    }
}
