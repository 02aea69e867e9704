namespace ClockLM.Tensors;

/// <summary>Vectors [start, end) of X quantized to 8-bit blocks of 32 or 256 values.</summary>
internal unsafe struct QuantizeJob : IRowRangeJob
{
    public float* X;
    public int Cols, BlockSize;
    public bool Avx2;
    public ActivationBlocks[] Activations;

    public readonly void Execute(int start, int end)
    {
        for (int t = start; t < end; t++)
        {
            var xt = new ReadOnlySpan<float>(X + (long)t * Cols, Cols);
            if (BlockSize == 32) Activations[t].Quantize32(xt, Avx2);
            else Activations[t].Quantize256(xt, Avx2);
        }
    }
}
