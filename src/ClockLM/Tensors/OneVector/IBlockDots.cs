namespace ClockLM.Tensors;

/// <summary>
/// Integer dot products between one block of quantized weights and the matching 8-bit activations. Each
/// implementation (scalar reference, portable Vector128, AVX2) returns the same exact integer; the float scaling
/// around them lives once in <see cref="RowDots"/>, so every path gives bit-identical row results.
/// Weight values are the unsigned codes stored in the block (offsets such as -8 are applied by the caller
/// through the activation block sums).
/// </summary>
internal unsafe interface IBlockDots
{
    /// <summary>Σ w[i] x[i] over 32 signed bytes (Q8_0).</summary>
    static abstract int S8(sbyte* w, sbyte* x);

    /// <summary>Σ q[i] x[i] over 32 values whose 4-bit codes are the low nibbles (values 0..15) and high nibbles (16..31) of 16 bytes.</summary>
    static abstract int U4(byte* qs, sbyte* x);

    /// <summary>As <see cref="U4"/> with bit i of <paramref name="qh"/> as the fifth bit of value i.</summary>
    static abstract int U5(byte* qs, uint qh, sbyte* x);

    /// <summary>Q4_K super-block: Σ_j sc[j] Σ_i q x over 8 sub-blocks of 32 (chunk c of 32 bytes: low nibbles are sub-block 2c, high 2c+1).</summary>
    static abstract int Q4K(byte* qs, sbyte* x, byte* sc);

    /// <summary>Q5_K super-block: as <see cref="Q4K"/> with fifth bits in qh (bit 2c for the low nibbles of chunk c, 2c+1 for the high).</summary>
    static abstract int Q5K(byte* qh, byte* qs, sbyte* x, byte* sc);

    /// <summary>Q6_K super-block: Σ_g sc[g] Σ_i q x over 16 groups of 16, q the unsigned 6-bit code (0..63).</summary>
    static abstract int Q6K(byte* ql, byte* qh, sbyte* sc, sbyte* x);

    /// <summary>Σ_j m[j] (bsums[2j] + bsums[2j+1]) over the 8 sub-blocks: the Q4_K/Q5_K mins times the activation sums.</summary>
    static abstract int MinSum(byte* m, short* bsums);
}
