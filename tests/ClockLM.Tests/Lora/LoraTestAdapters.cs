using ClockLM.Models;

namespace ClockLM.Tests.Lora;

/// <summary>Random LoRA adapters of a model's shapes, written by ClockLM's own writer.</summary>
public static class LoraTestAdapters
{
    /// <summary>An adapter with a pair N(0, std²) for every product of every layer (and the output head when the model
    /// has its own, and the token embedding when asked), rank <paramref name="rank"/>.</summary>
    public static LoraAdapter Random(Model model, int rank, float alpha, ulong seed, float std = 0.05f, bool output = true,
        IReadOnlyList<LoraTarget>? targets = null, bool embedding = false)
    {
        var c = model.Config;
        var rng = new GaussianRandom(seed);
        var pairs = new Dictionary<string, LoraPair>();
        LoraPair Pair(int rows, int cols) => new(
            Enumerable.Range(0, rank * cols).Select(_ => std * rng.Next()).ToArray(),
            Enumerable.Range(0, rows * rank).Select(_ => std * rng.Next()).ToArray(), rank, cols, rows);
        for (int l = 0; l < c.Layers; l++)
            foreach (var target in targets ?? Enum.GetValues<LoraTarget>())
            {
                var w = LoraAdapters.Matrix(model.Weights.Layers[l], target);
                if (w.Rows > 0) pairs[LoraAdapters.TensorName(l, target)] = Pair(w.Rows, w.Cols);
            }
        if (output && !model.Weights.TiedOutput) pairs["output.weight"] = Pair(model.Weights.Output.Rows, model.Weights.Output.Cols);
        if (embedding) pairs[LoraAdapter.EmbeddingTensor] = Pair(c.Dim, c.VocabSize); // one-hot (vocab) to a row (dim)
        return new LoraAdapter(model.Architecture, alpha, pairs);
    }
}
