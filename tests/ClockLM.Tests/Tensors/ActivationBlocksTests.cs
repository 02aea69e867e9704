using System.Runtime.Intrinsics.X86;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

public unsafe class ActivationBlocksTests
{
    /// <summary>The kernels' scalar f16 widening against the runtime's <see cref="Half"/> conversion for all 65536 halves
    /// (zeros, subnormals, normals, infinities; NaNs stay NaN).</summary>
    [Fact]
    public void HalfToSingle_EqualsHalfConversionForEveryHalf()
    {
        for (int h = 0; h < 65536; h++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)h), actual = HalfWidening.ToSingle((ushort)h);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"half {h:x4}: expected NaN, got {actual}");
            else Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual),
                $"half {h:x4}: expected {expected:R}, got {actual:R}");
        }
    }

    /// <summary>
    /// The quantizer's own f16 rounding against the runtime's <see cref="Half"/> conversion: every sign and exponent
    /// with mantissas at the rounding edges (ties, one below, one above), the overflow and subnormal boundaries,
    /// infinities and NaN, and four million random bit patterns.
    /// </summary>
    [Fact]
    public void RoundToHalf_EqualsHalfConversion()
    {
        static void Check(uint bits)
        {
            float x = BitConverter.UInt32BitsToSingle(bits);
            float expected = (float)(Half)x, actual = ActivationBlocks.RoundToHalf(x);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"{bits:x8}: expected NaN, got {actual}");
            else Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual),
                $"{bits:x8} ({x:R}): expected {expected:R}, got {actual:R}");
        }
        uint[] mantissas = [0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x5000, 0x7fe000, 0x7fefff, 0x7ff000, 0x7ff001, 0x7fffff];
        for (uint sign = 0; sign < 2; sign++)
            for (uint exponent = 0; exponent < 256; exponent++)
                foreach (uint m in mantissas)
                    Check(sign << 31 | exponent << 23 | m);
        foreach (float x in new[] { 65504f, 65519.996f, 65520f, 65535f, 1f / 16384, 1f / 16777216, 0.5f / 16777216, 1.5f / 16777216 })
        {
            Check(BitConverter.SingleToUInt32Bits(x));
            Check(BitConverter.SingleToUInt32Bits(-x));
        }
        var rng = new Random(11);
        for (int i = 0; i < 4_000_000; i++) Check((uint)rng.NextInt64(0, 1L << 32));
    }

    /// <summary>
    /// The AVX2 quantizer against the scalar one on blocks built to hit the rounding edges: a block whose scale is
    /// exactly 1 (amax 127) with halves ±0.5, ±2.5, ±126.5, ±1.5 (which must round to even, as llama.cpp's x86 quantizer does), an all-zero block, a block
    /// of negative values only, and Gaussian blocks with an outlier.
    /// </summary>
    [FactNeeds(Cpu.Avx2)]
    public void Quantize32Avx2_EqualsScalarOnRoundingEdges()
    {
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

    /// <summary>
    /// The AVX2 Q8_K quantizer against the scalar one (ggml's quantize_row_q8_K_ref), value for value, block scale and
    /// group sums, on blocks built for its edges: the largest magnitude negative and repeated with both signs (the first
    /// occurrence sets the sign of the scale), values landing on exact halves after scaling (round half to even), an
    /// all-zero block, a block with one NaN next to ordinary values, a block whose extreme is its very last value, and Gaussian blocks.
    /// </summary>
    [FactNeeds(Cpu.Avx2)]
    public void Quantize256Avx2_EqualsScalarOnEdges()
    {
        var x = new float[256 * 8];
        TestVectors.Gaussian(x.Length, seed: 11).CopyTo(x, 0);
        // Block 0: extreme -127 at index 5 and +127 at index 3 (the first one, +127, decides), values on halves.
        x[3] = 127f; x[5] = -127f;
        float[] halves = [0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 126.5f, -126.5f, 0.49999997f];
        halves.CopyTo(x, 10);
        // Block 1: the extreme negative, first at index 200.
        x[256 + 200] = -9f; x[256 + 201] = 9f;
        // Block 2: all zero.
        Array.Clear(x, 512, 256);
        // Block 3: a NaN, which the scalar loop never takes as the extreme.
        x[768 + 17] = float.NaN;
        // Block 4: the extreme is the last value.
        x[1024 + 255] = -50f;
        // Block 5: negative values only, small.
        for (int i = 0; i < 256; i++) x[1280 + i] = -1e-3f * (i % 37 + 1);

        var scalar = new ActivationBlocks();
        scalar.Quantize256(x);
        var vector = new ActivationBlocks();
        vector.Quantize256(x, avx2: true);

        for (int i = 0; i < x.Length; i++)
            Assert.True(scalar.Qs[i] == vector.Qs[i], $"value {i} ({x[i]}): avx2 {vector.Qs[i]} vs scalar {scalar.Qs[i]}");
        for (int b = 0; b < x.Length / 256; b++) Assert.Equal(BitConverter.SingleToInt32Bits(scalar.D[b]), BitConverter.SingleToInt32Bits(vector.D[b]));
        for (int g = 0; g < x.Length / 16; g++) Assert.Equal(scalar.BSums[g], vector.BSums[g]);
        // Against the definition: block 0's scale is 127 / -127, so q = round(-x) with halves to even; the group sums add the codes.
        Assert.Equal(-1f, scalar.D[0]);
        sbyte[] expected = [0, 0, -2, 2, -2, 2, -126, 126, 0];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], scalar.Qs[10 + i]);
        Assert.Equal(9f / 127f, scalar.D[1], 6);
        Assert.Equal(0f, scalar.D[2]);
        int sum = 0;
        for (int i = 0; i < 16; i++) sum += scalar.Qs[16 + i];
        Assert.Equal(sum, scalar.BSums[1]);
    }
}
