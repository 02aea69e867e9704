using System.Buffers.Binary;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

public class QuantizeTests
{
    public static TheoryData<GgmlType> BlockTypes => new()
    {
        GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1,
        GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
    };

    private static float[][] Inputs() =>
    [
        TestVectors.Gaussian(4096, seed: 1),
        TestVectors.Gaussian(2048, seed: 2, scale: 0.02f),
        TestVectors.Gaussian(1024, seed: 3, scale: 300f),
        TestVectors.Awkward(2048, seed: 4),
    ];

    [Theory, MemberData(nameof(BlockTypes))]
    public void Row_ProducesGgmlReferenceBytes(GgmlType type)
    {
        foreach (var x in Inputs())
        {
            var expected = GgmlNative.QuantizeRow(type, x);
            var actual = new byte[expected.Length];
            Quantize.Row(type, x, actual);
            int diff = FirstDifference(expected, actual);
            Assert.True(diff < 0, $"{type}: byte {diff} (block {diff / Math.Max(1, GgmlTypeInfo.BlockBytes(type))}) is {(diff < 0 ? 0 : actual[diff])}, ggml wrote {(diff < 0 ? 0 : expected[diff])}");
        }
    }

    [Theory, MemberData(nameof(BlockTypes))]
    public void Row_DequantizesLikeGgml(GgmlType type)
    {
        var x = TestVectors.Awkward(4096, seed: 5);
        var q = GgmlNative.QuantizeRow(type, x);
        var expected = GgmlNative.DequantizeRow(type, q, x.Length);
        var actual = new float[x.Length];
        Dequantize.Row(type, q, actual);
        for (int i = 0; i < x.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{type} value {i}: {actual[i]} vs ggml {expected[i]}");
    }

    [Fact]
    public void HalfAndBFloat16_RoundLikeGgml()
    {
        var values = new List<float>(TestVectors.Gaussian(2000, seed: 6, scale: 10f))
        {
            0f, -0f, 1f, 65504f, 65520f, 1e6f, -1e-8f, 6e-8f, 3e-8f, float.Epsilon, float.PositiveInfinity,
            float.NegativeInfinity, float.NaN, BitConverter.Int32BitsToSingle(0x3F808000), // exactly halfway for bf16
            BitConverter.Int32BitsToSingle(0x3F818000), BitConverter.Int32BitsToSingle(0x3F801000), // halfway for f16
            BitConverter.Int32BitsToSingle(0x00012345), // subnormal float
        };
        foreach (float v in values)
        {
            Assert.Equal(GgmlNative.Fp32ToFp16(v), Quantize.HalfBits(v));
            Assert.Equal(GgmlNative.Fp32ToBf16(v), Quantize.BFloat16Bits(v));
        }
    }

    [Fact]
    public void BFloat16_RoundsHalfwayToEven()
    {
        // 0x3F80_8000 lies exactly between bf16 0x3F80 and 0x3F81: ties go to the even 0x3F80; 0x3F81_8000 goes up to 0x3F82.
        Assert.Equal(0x3F80, Quantize.BFloat16Bits(BitConverter.Int32BitsToSingle(0x3F808000)));
        Assert.Equal(0x3F82, Quantize.BFloat16Bits(BitConverter.Int32BitsToSingle(0x3F818000)));
        Assert.Equal(0x3F81, Quantize.BFloat16Bits(BitConverter.Int32BitsToSingle(0x3F808001)));
        Assert.Equal(0x7FC0, Quantize.BFloat16Bits(BitConverter.Int32BitsToSingle(0x7F800001)) & 0x7FC0);
    }

    /// <summary>
    /// Worst-case error of one value in the 32-value formats, from the format: the rounding error (half a step, or a
    /// full step for the one-sided clamp of the symmetric 4/5-bit formats, whose largest value maps to -8 or -16 so the
    /// other sign reaches only 7 or 15 steps), plus the error of storing d and m as f16: relative 2^-11, or for
    /// scales below the f16 normal range absolute 2^-25 (half the smallest subnormal), times the largest |q|.
    /// </summary>
    private static float BlockBound(GgmlType type, ReadOnlySpan<float> x)
    {
        float amax = 0, min = float.MaxValue, max = float.MinValue;
        foreach (float v in x) { amax = Math.Max(amax, Math.Abs(v)); min = Math.Min(min, v); max = Math.Max(max, v); }
        const float f16 = 1f / 2048;
        float sub = MathF.Pow(2, -25);
        float slack = 1e-6f * amax;
        return type switch
        {
            GgmlType.Q8_0 => amax / 127 * 0.5f + 127 * ((amax / 127) * f16 + sub) + slack,
            GgmlType.Q4_0 => amax / 8 + 8 * (amax / 8 * f16 + sub) + slack,
            GgmlType.Q5_0 => amax / 16 + 16 * (amax / 16 * f16 + sub) + slack,
            GgmlType.Q4_1 => (max - min) / 15 * 0.5f + 15 * ((max - min) / 15 * f16 + sub) + Math.Abs(min) * f16 + sub + slack,
            GgmlType.Q5_1 => (max - min) / 31 * 0.5f + 31 * ((max - min) / 31 * f16 + sub) + Math.Abs(min) * f16 + sub + slack,
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
    }

    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q5_1)]
    public void RoundTrip_ErrorWithinFormatBound(GgmlType type)
    {
        foreach (var x in Inputs())
        {
            var back = RoundTrip(type, x);
            for (int b = 0; b < x.Length / 32; b++)
            {
                float bound = BlockBound(type, x.AsSpan(32 * b, 32));
                for (int j = 0; j < 32; j++)
                {
                    int i = 32 * b + j;
                    Assert.True(Math.Abs(x[i] - back[i]) <= bound, $"{type} value {i}: {x[i]} came back as {back[i]}, bound {bound}");
                }
            }
        }
    }

    /// <summary>
    /// The K-quants search their scales, so their bound is statistical: on gaussian data the relative RMS error
    /// must stay under the step of a uniform quantizer over ±3σ with that many levels, divided by √12 (the RMS of a
    /// uniform rounding error), doubled for the 6-bit scale and 16/32-value sub-block overheads.
    /// Also F16 and BF16, whose relative error per value is at most 2^-11 and 2^-8.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_K, 15)]
    [InlineData(GgmlType.Q5_K, 31)]
    [InlineData(GgmlType.Q6_K, 63)]
    public void RoundTrip_KQuantRmsErrorWithinUniformQuantizerBound(GgmlType type, int levels)
    {
        var x = TestVectors.Gaussian(8192, seed: 7);
        var back = RoundTrip(type, x);
        double se = 0, sx = 0;
        for (int i = 0; i < x.Length; i++) { se += (x[i] - back[i]) * (double)(x[i] - back[i]); sx += x[i] * (double)x[i]; }
        double relRms = Math.Sqrt(se / sx);
        double bound = 2 * (6.0 / levels) / Math.Sqrt(12);
        Assert.True(relRms < bound, $"{type}: relative RMS error {relRms:F4} above {bound:F4}");
        Assert.True(relRms > 0.05 * bound, $"{type}: relative RMS error {relRms:F6} is implausibly small for {levels + 1} levels");
    }

    [Theory]
    [InlineData(GgmlType.F16, 1.0 / 2048)]
    [InlineData(GgmlType.BF16, 1.0 / 256)]
    [InlineData(GgmlType.F32, 0)]
    public void RoundTrip_FloatFormatsWithinRelativeRounding(GgmlType type, double relative)
    {
        var x = TestVectors.Gaussian(1024, seed: 8, scale: 5);
        var back = RoundTrip(type, x);
        for (int i = 0; i < x.Length; i++)
            Assert.True(Math.Abs(x[i] - back[i]) <= relative * Math.Abs(x[i]), $"{type} value {i}: {x[i]} came back as {back[i]}");
    }

    private static float[] RoundTrip(GgmlType type, float[] x)
    {
        var q = Quantize.Matrix(type, x, 1, x.Length);
        var back = new float[x.Length];
        Dequantize.Row(type, q, back);
        return back;
    }

    // ---- exact layouts worked out by hand ----

    [Fact]
    public void Q8_0_Layout()
    {
        // amax 127 -> d = 1 (f16 0x3C00); q = round(x) with halves away from zero.
        var x = new float[32];
        x[0] = 127; x[1] = -63.5f; x[2] = 2.5f; x[3] = -0.4f; x[31] = -127;
        var y = new byte[34];
        Quantize.Row(GgmlType.Q8_0, x, y);
        var expected = new byte[34];
        expected[0] = 0x00; expected[1] = 0x3C;
        expected[2] = 127; expected[3] = unchecked((byte)-64); expected[4] = 3; expected[5] = 0; expected[33] = unchecked((byte)-127);
        Assert.Equal(expected, y);
    }

    [Fact]
    public void Q4_0_Layout()
    {
        // Largest magnitude is -8 -> d = -8 / -8 = 1 (0x3C00), q = trunc(x + 8.5) capped at 15.
        // x[j] = j - 8 for j < 16 -> q = j; x[16 + j] = 7 - j... first value 7.9 rounds to 16 and is capped at 15.
        var x = new float[32];
        for (int j = 0; j < 16; j++) { x[j] = j - 8; x[16 + j] = 7 - j; }
        x[16] = 7.9f;
        var y = new byte[18];
        Quantize.Row(GgmlType.Q4_0, x, y);
        Assert.Equal(0x00, y[0]);
        Assert.Equal(0x3C, y[1]);
        for (int j = 0; j < 16; j++)
        {
            int hi = j == 0 ? 15 : 15 - j;
            Assert.Equal((byte)(j | (hi << 4)), y[2 + j]);
        }
    }

    [Fact]
    public void Q4_1_Layout()
    {
        // min -1, max 14 -> d = 15/15 = 1, m = -1 (f16 0xBC00); q = trunc(x - min + 0.5).
        var x = new float[32];
        for (int j = 0; j < 32; j++) x[j] = (j % 16) - 1;
        x[5] = 2.4f;  // 3.4 + 0.5 -> 3
        var y = new byte[20];
        Quantize.Row(GgmlType.Q4_1, x, y);
        Assert.Equal(new byte[] { 0x00, 0x3C, 0x00, 0xBC }, y[..4]);
        for (int j = 0; j < 16; j++)
        {
            int lo = j == 5 ? 3 : j;
            Assert.Equal((byte)(lo | (j << 4)), y[4 + j]);
        }
    }

    [Fact]
    public void Q5_0_Layout()
    {
        // Largest magnitude -16 -> d = 1, q = x + 16 in 0..31; low nibbles in qs, fifth bits in the u32 qh.
        var x = new float[32];
        for (int j = 0; j < 32; j++) x[j] = j - 16;
        var y = new byte[22];
        Quantize.Row(GgmlType.Q5_0, x, y);
        Assert.Equal(new byte[] { 0x00, 0x3C }, y[..2]);
        // q = j: the fifth bit is set for j >= 16, i.e. qh bits 16..31.
        Assert.Equal(0xFFFF0000u, BinaryPrimitives.ReadUInt32LittleEndian(y.AsSpan(2)));
        for (int j = 0; j < 16; j++) Assert.Equal((byte)(j | (j << 4)), y[6 + j]);
    }

    [Fact]
    public void Q5_1_Layout()
    {
        // min 0.5, max 31.5 -> d = 1, m = 0.5 (0x3800); q = x - 0.5.
        var x = new float[32];
        for (int j = 0; j < 32; j++) x[j] = (31 - j) + 0.5f;
        var y = new byte[24];
        Quantize.Row(GgmlType.Q5_1, x, y);
        Assert.Equal(new byte[] { 0x00, 0x3C, 0x00, 0x38 }, y[..4]);
        // q[j] = 31 - j: fifth bit set for j < 16.
        Assert.Equal(0x0000FFFFu, BinaryPrimitives.ReadUInt32LittleEndian(y.AsSpan(4)));
        for (int j = 0; j < 16; j++) Assert.Equal((byte)(((31 - j) & 0xF) | (((15 - j) & 0xF) << 4)), y[8 + j]);
    }

    [Fact]
    public void Q4_K_Layout()
    {
        // Each 32-value sub-block is 0..15 twice: the min/max fit is exact (scale 1, min 0), so every sub-block scale is
        // the largest one (6-bit 63), d = f16(1/63) = 0x2410 (2^-6 * (1 + 16/1024)), all mins 0 (dmin 0), and q = x.
        var x = new float[256];
        for (int i = 0; i < 256; i++) x[i] = i % 16;
        var y = new byte[144];
        Quantize.Row(GgmlType.Q4_K, x, y);
        Assert.Equal(new byte[] { 0x10, 0x24, 0x00, 0x00 }, y[..4]);
        // scales 0..3: 63 in the low 6 bits plus the top two bits (3) of scales 4..7 -> 0xFF; mins 0..3 -> 0;
        // bytes 8..11: low nibble of scales 4..7 (0xF), low nibble of mins 4..7 (0).
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0x0F, 0x0F, 0x0F, 0x0F }, y[4..16]);
        for (int i = 0; i < 128; i++) Assert.Equal((byte)(0x11 * (i % 16)), y[16 + i]);
    }

    [Fact]
    public void F16_BF16_F32_Layout()
    {
        float[] x = [1f, -2f, 0.5f];
        var h = new byte[6]; var b = new byte[6]; var f = new byte[12];
        Quantize.Row(GgmlType.F16, x, h);
        Quantize.Row(GgmlType.BF16, x, b);
        Quantize.Row(GgmlType.F32, x, f);
        Assert.Equal(new byte[] { 0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38 }, h);
        Assert.Equal(new byte[] { 0x80, 0x3F, 0x00, 0xC0, 0x00, 0x3F }, b);
        Assert.Equal(new byte[] { 0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0, 0, 0, 0, 0x3F }, f);
    }

    // ---- hand-built blocks ----

    [Fact]
    public void Q5_1_HandBuiltBlock()
    {
        // d = 0.5 (0x3800), m = -2 (0xC000), qh = 0x80000001 (fifth bit of values 0 and 31), qs[j] = j | (15 - j) << 4.
        var block = new byte[24];
        block[1] = 0x38; block[3] = 0xC0;
        BinaryPrimitives.WriteUInt32LittleEndian(block.AsSpan(4), 0x80000001);
        for (int j = 0; j < 16; j++) block[8 + j] = (byte)(j | ((15 - j) << 4));
        var y = new float[32];
        Dequantize.Row(GgmlType.Q5_1, block, y);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(0.5f * (j + (j == 0 ? 16 : 0)) - 2, y[j]);
            Assert.Equal(0.5f * (15 - j + (j == 15 ? 16 : 0)) - 2, y[16 + j]);
        }
    }

    [Fact]
    public void Q5_0_And_Q4_1_HandBuiltBlocks()
    {
        var q50 = new byte[22];
        q50[1] = 0x40;                                                    // d = 2
        BinaryPrimitives.WriteUInt32LittleEndian(q50.AsSpan(2), 0x00010002); // fifth bits of values 1 and 16
        for (int j = 0; j < 16; j++) q50[6 + j] = (byte)(3 | (12 << 4));
        var y = new float[32];
        Dequantize.Row(GgmlType.Q5_0, q50, y);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(2f * (3 + (j == 1 ? 16 : 0) - 16), y[j]);
            Assert.Equal(2f * (12 + (j == 0 ? 16 : 0) - 16), y[16 + j]);
        }

        var q41 = new byte[20];
        q41[1] = 0x34; q41[3] = 0x3C;                                     // d = 0.25, m = 1
        for (int j = 0; j < 16; j++) q41[4 + j] = (byte)(j << 4 | 1);
        Dequantize.Row(GgmlType.Q4_1, q41, y);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(0.25f + 1, y[j]);
            Assert.Equal(0.25f * j + 1, y[16 + j]);
        }
    }

    [Fact]
    public void Q4_K_And_Q5_K_HandBuiltBlocks()
    {
        // d = 0.5, dmin = 0.25; sub-block j has scale 40 + j and min 17 + 2j (both above 15, so the top two bits of
        // the 6-bit values live in the spare bits for j >= 4).
        int[] sc = new int[8], mn = new int[8];
        var packed = new byte[12];
        for (int j = 0; j < 8; j++)
        {
            sc[j] = 40 + j; mn[j] = 17 + 2 * j;
            if (j < 4) { packed[j] = (byte)sc[j]; packed[j + 4] = (byte)mn[j]; }
            else
            {
                packed[j + 4] = (byte)((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
                packed[j - 4] |= (byte)((sc[j] >> 4) << 6);
                packed[j] |= (byte)((mn[j] >> 4) << 6);
            }
        }
        var q4k = new byte[144];
        q4k[1] = 0x38; q4k[3] = 0x34;
        packed.CopyTo(q4k, 4);
        for (int i = 0; i < 128; i++) q4k[16 + i] = (byte)((i % 16) | ((15 - i % 16) << 4));
        var y = new float[256];
        Dequantize.Row(GgmlType.Q4_K, q4k, y);
        for (int i = 0; i < 256; i++)
        {
            int l = i % 64, j = i / 32;
            int q = l < 32 ? l % 16 : 15 - (l - 32) % 16;
            Assert.Equal(0.5f * sc[j] * q - 0.25f * mn[j], y[i]);
        }

        var q5k = new byte[176];
        q5k[1] = 0x38; q5k[3] = 0x34;
        packed.CopyTo(q5k, 4);
        for (int l = 0; l < 32; l++) q5k[16 + l] = (byte)(l % 2 == 0 ? 0b1010_1010 : 0b0000_0101); // qh
        for (int i = 0; i < 128; i++) q5k[48 + i] = (byte)((i % 16) | ((15 - i % 16) << 4));
        Dequantize.Row(GgmlType.Q5_K, q5k, y);
        for (int i = 0; i < 256; i++)
        {
            int c = i / 64, l = i % 64, j = i / 32, pos = l % 32;
            int bit = 2 * c + (l < 32 ? 0 : 1);
            int qh = pos % 2 == 0 ? 0b1010_1010 : 0b0000_0101;
            int q = (l < 32 ? pos % 16 : 15 - pos % 16) + (((qh >> bit) & 1) << 4);
            Assert.Equal(0.5f * sc[j] * q - 0.25f * mn[j], y[i]);
        }
    }

    [Fact]
    public void Q6_K_HandBuiltBlock()
    {
        // d = 0.125; group scales g - 8 (negative ones included); value v gets q = v % 64.
        var block = new byte[210];
        var q = new int[256];
        for (int v = 0; v < 256; v++) q[v] = (v * 7) % 64;
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++)
            {
                int b = 128 * h + l;
                block[64 * h + l] = (byte)((q[b] & 0xF) | ((q[b + 64] & 0xF) << 4));
                block[64 * h + 32 + l] = (byte)((q[b + 32] & 0xF) | ((q[b + 96] & 0xF) << 4));
                block[128 + 32 * h + l] = (byte)((q[b] >> 4) | ((q[b + 32] >> 4) << 2) | ((q[b + 64] >> 4) << 4) | ((q[b + 96] >> 4) << 6));
            }
        for (int g = 0; g < 16; g++) block[192 + g] = unchecked((byte)(sbyte)(g - 8));
        block[209] = 0x30; // d = 0.125
        var y = new float[256];
        Dequantize.Row(GgmlType.Q6_K, block, y);
        for (int v = 0; v < 256; v++)
            Assert.Equal(0.125f * (v / 16 - 8) * (q[v] - 32), y[v]);
    }

    [Fact]
    public void Q4_0_And_Q8_0_HandBuiltBlocks()
    {
        var q40 = new byte[18];
        q40[1] = 0x38; // d = 0.5
        for (int j = 0; j < 16; j++) q40[2 + j] = (byte)(j | ((15 - j) << 4));
        var y = new float[32];
        Dequantize.Row(GgmlType.Q4_0, q40, y);
        for (int j = 0; j < 16; j++) { Assert.Equal(0.5f * (j - 8), y[j]); Assert.Equal(0.5f * (7 - j), y[16 + j]); }

        var q80 = new byte[34];
        q80[1] = 0xC0; // d = -2
        for (int j = 0; j < 32; j++) q80[2 + j] = unchecked((byte)(sbyte)(j * 8 - 128));
        Dequantize.Row(GgmlType.Q8_0, q80, y);
        for (int j = 0; j < 32; j++) Assert.Equal(-2f * (j * 8 - 128), y[j]);
    }

    [Fact]
    public void Row_RejectsPartialBlocksAndShortDestinations()
    {
        var ex = Assert.Throws<ArgumentException>(() => Quantize.Row(GgmlType.Q4_K, new float[200], new byte[200]));
        Assert.Contains("256", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Quantize.Row(GgmlType.Q8_0, new float[64], new byte[67]));
        Assert.Contains("68", ex.Message);
        Assert.Throws<NotSupportedException>(() => Quantize.Row(GgmlType.Q2_K, new float[256], new byte[84]));
    }

    private static int FirstDifference(byte[] a, byte[] b)
    {
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return i;
        return -1;
    }
}
