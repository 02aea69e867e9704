namespace ClockLM.Models;

/// <summary>
/// Context shift, as llama.cpp does it when a generation reaches the end of the context: the first
/// <c>keep</c> positions stay, the next <c>discard</c> are dropped, and the ones after move down by <c>discard</c>.
/// Values are position-free and move as stored. Keys were rotated by RoPE for their old positions, and rotations
/// compose, so rotating a moved key by -discard positions makes it the key of its new position: each is read as
/// floats, rotated with its layer's frequencies, and stored again in the cache's key type. The queries of later tokens
/// then see the moved keys at the distances they have in the shorter sequence.
/// </summary>
internal static class ContextShift
{
    public static void Apply(KvCache cache, ForwardPass pass, LlamaConfig config, int keep, int discard)
    {
        cache.Remove(keep, discard);
        int half = config.HeadSize / 2;
        Span<float> cos = stackalloc float[half], sin = stackalloc float[half];
        var key = new float[cache.KvDim];
        for (int layer = 0; layer < cache.Layers; layer++)
        {
            Ops.RopeAngles(-discard, pass.RopeFrequencies(layer), cos, sin);
            for (int pos = keep; pos < cache.Length; pos++)
            {
                cache.ReadKey(layer, pos, key);
                Ops.Rope(key, config.HeadSize, config.Rope, cos, sin);
                cache.StoreKey(layer, pos, key);
            }
        }
    }
}
