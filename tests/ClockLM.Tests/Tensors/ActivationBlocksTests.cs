using System.Runtime.Intrinsics.X86;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

public unsafe class ActivationBlocksTests
{
    /// <summary>
    /// The AVX2 quantizer against the scalar one on blocks built to hit the rounding edges: a block whose scale is
    /// exactly 1 (amax 127) with halves ±0.5, ±2.5, ±126.5, ±1.5 (which must round to even, as llama.cpp's x86 quantizer does), an all-zero block, a block
    /// of negative values only, and Gaussian blocks with an outlier.
    /// </summary>
    [Fact]
    public void Quantize32Avx2_EqualsScalarOnRoundingEdges()
    {
        if (!Avx2.IsSupported) return; // the scalar quantizer is the only one on this machine
        var x = new float[32 * 6];
        float[] halves = [127f, 0.5f, -0.5f, 2.5f, -2.5f, 126.5f, -126.5f, 1.5f, -1.5f, 0.49999997f, -0.49999997f, 3.4999998f];
        halves.CopyTo(x, 0);
        for (int i = 0; i < 32; i++) x[64 + i] = -0.01f * (i + 1);
        var gauss = TestVectors.Gaussian(96, seed: 5);
        gauss[7] = 40f;
        gauss.CopyTo(x, 96);

        var scalar = new ActivationBlocks();
        scalar.Quantize32(x);
        var vector = new ActivationBlocks();
        vector.Quantize32(x, avx2: true);

        for (int i = 0; i < x.Length; i++)
            Assert.True(scalar.Qs[i] == vector.Qs[i], $"value {i} ({x[i]}): avx2 {vector.Qs[i]} vs scalar {scalar.Qs[i]}");
        for (int b = 0; b < x.Length / 32; b++)
        {
            Assert.Equal(scalar.D[b], vector.D[b]);
            Assert.Equal(scalar.Sum[b], vector.Sum[b]);
            Assert.Equal(scalar.S[b], vector.S[b]);
        }
        // The edges themselves, against the definition round(x * 127 / amax) with amax = 127: halves go to even.
        sbyte[] expected = [127, 0, 0, 2, -2, 126, -126, 2, -2, 0, 0, 3];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], scalar.Qs[i]);
    }
}
