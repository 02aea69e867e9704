using ClockLM.Generation;
using ClockLM.Models;

namespace ClockLM.Server;

/// <summary>
/// Text embeddings (<see cref="MeanPooling"/>) for the server: runs on its own processor, one text at a time.
/// </summary>
internal sealed class Embedder(Model model, int contextLength)
{
    private readonly Transformer _transformer = model.CreateTransformer(contextLength);
    private readonly Lock _lock = new();

    public int ContextLength => _transformer.ContextLength;

    public float[] Embed(int[] ids)
    {
        lock (_lock) return MeanPooling.Embed(model, _transformer, ids);
    }
}
