using System.Buffers.Binary;

namespace ClockLM.Tensors;

/// <summary>
/// Reference quantizers for the 256-value super-blocks (Q4_K, Q5_K, Q6_K), following ggml's
/// <c>quantize_row_q*_K_ref</c>: each sub-block gets a scale (and a min) found by a small search that minimises a
/// weighted squared error, then the scales themselves are quantized (6 bits for Q4_K/Q5_K, 8 bits for Q6_K) against
/// one f16 super-block scale, and the values are re-quantized against the scales as stored.
/// Floating-point operations are written in the reference's order so the bytes match exactly.
/// </summary>
internal static class KQuants
{
    public const int SuperBlock = 256;

    /// <summary>Round to nearest, ties to even, for |f| &lt; 2^22: adding 1.5*2^23 leaves the integer in the low mantissa bits.</summary>
    public static int NearestInt(float f)
    {
        float v = f + 12582912f;
        return (BitConverter.SingleToInt32Bits(v) & 0x007fffff) - 0x00400000;
    }

    // Q4_K block: f16 d, f16 dmin, scales[12] (8 six-bit scales and 8 six-bit mins), qs[128].
    // value = d * sc[j] * q - dmin * m[j], q in 0..15, sub-block j of 32 values.
    public static void Q4_K(ReadOnlySpan<float> x, Span<byte> y) => AsymmetricK(x, y, nmax: 15);

    // Q5_K block: f16 d, f16 dmin, scales[12], qh[32] (fifth bits), qs[128]; q in 0..31.
    public static void Q5_K(ReadOnlySpan<float> x, Span<byte> y) => AsymmetricK(x, y, nmax: 31);

    private static void AsymmetricK(ReadOnlySpan<float> x, Span<byte> y, int nmax)
    {
        Span<byte> L = stackalloc byte[SuperBlock];
        Span<byte> laux = stackalloc byte[32];
        Span<float> weights = stackalloc float[32];
        Span<float> mins = stackalloc float[8];
        Span<float> scales = stackalloc float[8];

        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; j++)
        {
            var xs = x.Slice(32 * j, 32);
            float sumX2 = 0;
            for (int l = 0; l < 32; l++) sumX2 += xs[l] * xs[l];
            float avX = MathF.Sqrt(sumX2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(xs[l]);
            scales[j] = nmax == 15
                ? ScaleMinSearch(32, 15, xs, weights, L.Slice(32 * j, 32), out mins[j], laux, -1f, 0.1f, 20)
                : ScaleMinSearch(32, 31, xs, weights, L.Slice(32 * j, 32), out mins[j], laux, -0.5f, 0.1f, 15);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }

        var packed = y.Slice(4, 12);
        packed.Clear();
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        for (int j = 0; j < 8; j++)
        {
            byte ls = Math.Min((byte)63, (byte)NearestInt(invScale * scales[j]));
            byte lm = Math.Min((byte)63, (byte)NearestInt(invMin * mins[j]));
            PackScaleMin(packed, j, ls, lm);
        }
        ushort dBits = Quantize.HalfBits(maxScale / 63f), dminBits = Quantize.HalfBits(maxMin / 63f);
        BinaryPrimitives.WriteUInt16LittleEndian(y, dBits);
        BinaryPrimitives.WriteUInt16LittleEndian(y[2..], dminBits);
        float d16 = (float)BitConverter.UInt16BitsToHalf(dBits), dmin16 = (float)BitConverter.UInt16BitsToHalf(dminBits);

        for (int j = 0; j < 8; j++)
        {
            var (sc, m) = ScaleMin(packed, j);
            float d = d16 * sc;
            if (d == 0) continue;
            float dm = dmin16 * m;
            for (int i = 0; i < 32; i++)
                L[32 * j + i] = (byte)Math.Clamp(NearestInt((x[32 * j + i] + dm) / d), 0, nmax);
        }

        if (nmax == 15)
        {
            // qs[32c + l] holds value 64c + l in its low nibble and 64c + 32 + l in its high nibble.
            var qs = y.Slice(16, 128);
            for (int c = 0; c < 4; c++)
                for (int l = 0; l < 32; l++)
                    qs[32 * c + l] = (byte)(L[64 * c + l] | (L[64 * c + l + 32] << 4));
        }
        else
        {
            // Same nibbles as Q4_K; bit 2c of qh[l] is the fifth bit of value 64c + l, bit 2c+1 of value 64c + 32 + l.
            var qh = y.Slice(16, 32);
            var qs = y.Slice(48, 128);
            qh.Clear();
            for (int c = 0; c < 4; c++)
                for (int l = 0; l < 32; l++)
                {
                    int lo = L[64 * c + l], hi = L[64 * c + l + 32];
                    if (lo > 15) { lo -= 16; qh[l] |= (byte)(1 << (2 * c)); }
                    if (hi > 15) { hi -= 16; qh[l] |= (byte)(2 << (2 * c)); }
                    qs[32 * c + l] = (byte)(lo | (hi << 4));
                }
        }
    }

    // Q6_K block: ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d.
    // value = d * scales[g] * (q - 32), q in 0..63, group g of 16 values.
    public static void Q6_K(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<sbyte> L = stackalloc sbyte[SuperBlock];
        Span<float> scales = stackalloc float[16];
        float maxScale = 0, maxAbsScale = 0;
        for (int g = 0; g < 16; g++)
        {
            float scale = SymmetricSearch(16, 32, x.Slice(16 * g, 16), L.Slice(16 * g, 16));
            scales[g] = scale;
            if (MathF.Abs(scale) > maxAbsScale) { maxAbsScale = MathF.Abs(scale); maxScale = scale; }
        }

        var ql = y[..128];
        var qh = y.Slice(128, 64);
        var sc = y.Slice(192, 16);
        if (maxAbsScale < GroupMaxEps)
        {
            y[..210].Clear();
            return;
        }

        float iscale = -128f / maxScale;
        ushort dBits = Quantize.HalfBits(1 / iscale);
        BinaryPrimitives.WriteUInt16LittleEndian(y[208..], dBits);
        for (int g = 0; g < 16; g++)
            sc[g] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * scales[g]));

        float d16 = (float)BitConverter.UInt16BitsToHalf(dBits);
        for (int g = 0; g < 16; g++)
        {
            float d = d16 * (sbyte)sc[g];
            if (d == 0) continue;
            for (int i = 0; i < 16; i++)
                L[16 * g + i] = (sbyte)(Math.Clamp(NearestInt(x[16 * g + i] / d), -32, 31) + 32);
        }

        // For each half h of 128 values: ql[64h + l] = value l (low nibble) | value l + 64 (high nibble),
        // ql[64h + 32 + l] = value l + 32 | value l + 96; qh[32h + l] holds the top two bits of values l, l+32, l+64, l+96.
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++)
            {
                int b = 128 * h + l;
                int q1 = L[b], q2 = L[b + 32], q3 = L[b + 64], q4 = L[b + 96];
                ql[64 * h + l] = (byte)((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[64 * h + l + 32] = (byte)((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[32 * h + l] = (byte)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
    }

    private const float GroupMaxEps = 1e-15f;

    /// <summary>
    /// Finds scale and min for x ≈ scale * L + min (L in 0..nmax, min ≤ 0) minimising Σ w (scale L + min - x)²:
    /// start from the min/max fit, then try nstep+1 stretched grids and solve the weighted least-squares for each.
    /// Returns the scale; <paramref name="negMin"/> gets -min (ggml's <c>make_qkx2_quants</c>).
    /// </summary>
    internal static float ScaleMinSearch(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> L,
        out float negMin, Span<byte> laux, float rmin, float rdelta, int nstep)
    {
        float min = x[0], max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            L[..n].Clear();
            negMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            bestError += weights[i] * (diff * diff);
        }
        for (int s = 0; s <= nstep; s++)
        {
            iscale = (rmin + rdelta * s + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Max(0, Math.Min(nmax, NearestInt(iscale * (x[i] - min))));
                laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float error = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * laux[i] + thisMin - x[i];
                    error += weights[i] * (diff * diff);
                }
                if (error < bestError)
                {
                    laux[..n].CopyTo(L);
                    bestError = error;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        negMin = -min;
        return scale;
    }

    /// <summary>
    /// Finds a signed scale for x ≈ scale * (L - nmax), L in 0..2 nmax - 1, weighting each value by x²: the
    /// largest-magnitude value maps to -nmax, then 18 nearby grids are tried (ggml's <c>make_qx_quants</c>, rmse_type 1).
    /// </summary>
    internal static float SymmetricSearch(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            L[..n].Clear();
            return 0f;
        }
        float iscale = -nmax / max;
        float sumLX = 0, sumL2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Max(-nmax, Math.Min(nmax - 1, NearestInt(iscale * x[i])));
            L[i] = (sbyte)(l + nmax);
            float w = x[i] * x[i];
            sumLX += w * x[i] * l;
            sumL2 += w * l * l;
        }
        float scale = sumL2 != 0 ? sumLX / sumL2 : 0.0f;
        float best = scale * sumLX;
        for (int s = -9; s <= 9; s++)
        {
            if (s == 0) continue;
            iscale = -(nmax + 0.1f * s) / max;
            sumLX = sumL2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Max(-nmax, Math.Min(nmax - 1, NearestInt(iscale * x[i])));
                float w = x[i] * x[i];
                sumLX += w * x[i] * l;
                sumL2 += w * l * l;
            }
            if (sumL2 > 0 && sumLX * sumLX > best * sumL2)
            {
                for (int i = 0; i < n; i++)
                    L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, NearestInt(iscale * x[i]))));
                scale = sumLX / sumL2;
                best = scale * sumLX;
            }
        }
        return scale;
    }

    /// <summary>
    /// Stores the 6-bit scale and min of sub-block j in the 12-byte Q4_K/Q5_K layout: sub-blocks 0..3 use the low
    /// 6 bits of bytes j and j+4; sub-blocks 4..7 keep their low 4 bits in byte j+4 and their top 2 bits in the
    /// spare top bits of bytes j-4 (scale) and j (min).
    /// </summary>
    internal static void PackScaleMin(Span<byte> packed, int j, byte scale, byte min)
    {
        if (j < 4)
        {
            packed[j] = scale;
            packed[j + 4] = min;
        }
        else
        {
            packed[j + 4] = (byte)((scale & 0xF) | ((min & 0xF) << 4));
            packed[j - 4] |= (byte)((scale >> 4) << 6);
            packed[j] |= (byte)((min >> 4) << 6);
        }
    }

    /// <summary>The 6-bit scale and min of sub-block j from the 12-byte Q4_K/Q5_K layout.</summary>
    internal static (int Scale, int Min) ScaleMin(ReadOnlySpan<byte> packed, int j) => j < 4
        ? (packed[j] & 63, packed[j + 4] & 63)
        : ((packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4), (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
}
