using ClockLM.Models;

namespace ClockLM.Server;

/// <summary>
/// Text embeddings from a causal model: each token's final hidden state (the residual stream after the last cycle, through
/// the final RMSNorm, i.e. what the output head reads) is averaged over the tokens, and the mean is scaled to unit length.
/// Runs on its own processor, one text at a time.
/// </summary>
internal sealed class Embedder(Model model, int contextLength)
{
    private readonly Transformer _transformer = model.CreateTransformer(contextLength);
    private readonly Lock _lock = new();

    public int ContextLength => _transformer.ContextLength;

    public float[] Embed(int[] ids)
    {
        int dim = model.Config.Dim;
        var sum = new double[dim];
        var normed = new float[dim];
        lock (_lock)
        {
            for (int pos = 0; pos < ids.Length; pos++)
            {
                _transformer.Forward(ids[pos], pos);
                Transformer.RmsNorm(normed, _transformer.Residual, model.Weights.FinalNorm, model.Config.RmsEpsilon);
                for (int i = 0; i < dim; i++) sum[i] += normed[i];
            }
        }
        double length = Math.Sqrt(sum.Sum(v => v * v));
        var embedding = new float[dim];
        for (int i = 0; i < dim; i++) embedding[i] = length == 0 ? 0 : (float)(sum[i] / length);
        return embedding;
    }
}
