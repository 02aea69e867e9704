using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// The activation vector x of a matrix-vector product, quantized once per product to 8-bit blocks so every weight row
/// can be multiplied with integer dot products (llama.cpp quantizes to Q8_0/Q8_1 or Q8_K for the same reason):
/// <list type="bullet">
/// <item>32-value blocks for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights: x ≈ D[b] * Qs, D rounded to f16 as in Q8_0;
/// Sum[b] = Σ Qs (used to apply the weight's offset), S[b] = f16(d * Sum[b]) with d = amax / 127 before its rounding, as llama.cpp's Q8_1 keeps it (used to apply the weight's min).</item>
/// <item>256-value blocks for K-quant weights: x ≈ DK[b] * Qs with Qs in -127..127 (ggml's Q8_K);
/// BSums[g] = Σ Qs over each group of 16 (used for the mins and the -32 offset of Q6_K).</item>
/// </list>
/// The arrays are pinned and reused: each <see cref="ProductInput"/> keeps one instance per vector, grown when a longer
/// vector arrives.
/// </summary>
internal sealed unsafe class ActivationBlocks
{
    private sbyte[] _qs = [];
    private float[] _d = [];
    private float[] _dUp = [];
    private int[] _sum = [];
    private float[] _s = [];
    private short[] _bsums = [];

    public int Count { get; private set; }
    public sbyte* Qs => (sbyte*)Unsafe.AsPointer(ref _qs[0]);
    public float* D => (float*)Unsafe.AsPointer(ref _d[0]);

    /// <summary>The 32-value blocks' scales times 2^112 (exact: they are f16 values, at most 65504): multiplied with
    /// f16 weight scales widened without their exponent rebias (worth 2^-112), they give the same rounded products as
    /// D with the exact scales, which packed rows use to widen their scales in three operations.</summary>
    public float* DUp => (float*)Unsafe.AsPointer(ref _dUp[0]);
    public int* Sum => (int*)Unsafe.AsPointer(ref _sum[0]);
    public float* S => (float*)Unsafe.AsPointer(ref _s[0]);
    public short* BSums => (short*)Unsafe.AsPointer(ref _bsums[0]);

    private void Reserve(int count)
    {
        Count = count;
        if (_qs.Length >= count && _qs.Length > 0) return;
        int n = Math.Max(count, 256);
        _qs = GC.AllocateUninitializedArray<sbyte>(n, pinned: true);
        _d = GC.AllocateUninitializedArray<float>(n / 32 + 1, pinned: true);
        _dUp = GC.AllocateUninitializedArray<float>(n / 32 + 1, pinned: true);
        _sum = GC.AllocateUninitializedArray<int>(n / 32 + 1, pinned: true);
        _s = GC.AllocateUninitializedArray<float>(n / 32 + 1, pinned: true);
        _bsums = GC.AllocateUninitializedArray<short>(n / 16 + 1, pinned: true);
    }

    /// <summary>
    /// Quantizes x (a multiple of 32 values) to 32-value blocks: d = f16(amax / 127), q = round(x * (127 / amax)),
    /// rounding halves to even, as llama.cpp's x86 quantize_row_q8_0 does. (Its portable reference rounds halves away
    /// from zero and multiplies by 1 / d; activations that come from quantized weights land on exact halves often, so
    /// the choice decides whether both engines see the same 8-bit activations.) With <paramref name="avx2"/> (and AVX2
    /// present) a block is done in four 256-bit vectors; the result is identical, since max, x * id, the rounding and
    /// the integer sum are each exact or done with the same single float operation.
    /// </summary>
    public void Quantize32(ReadOnlySpan<float> x, bool avx2 = false)
    {
        Reserve(x.Length);
        if (avx2 && Avx2.IsSupported)
        {
            fixed (float* px = x)
                for (int b = 0; b < x.Length / 32; b++) Block32Avx2(px + 32 * b, b);
            return;
        }
        for (int b = 0; b < x.Length / 32; b++)
        {
            var xb = x.Slice(32 * b, 32);
            float amax = 0;
            foreach (float v in xb) amax = Math.Max(amax, MathF.Abs(v));
            float d = amax / 127;
            float id = amax != 0 ? 127f / amax : 0.0f;
            int sum = 0;
            for (int j = 0; j < 32; j++)
            {
                int q = (int)MathF.Round(xb[j] * id, MidpointRounding.ToEven);
                _qs[32 * b + j] = (sbyte)q;
                sum += q;
            }
            float d16 = RoundToHalf(d);
            _d[b] = d16;
            _dUp[b] = d16 * TwoPow112;
            _sum[b] = sum;
            _s[b] = RoundToHalf(d * sum);
        }
    }

    /// <summary>
    /// <paramref name="value"/> rounded to the nearest f16 (ties to even), as a float: the same result as
    /// <c>(float)(Half)value</c>, computed here with a few integer and float operations. The quantizer runs between
    /// 256-bit kernels, and the runtime's precompiled <see cref="Half"/> conversion, called from there, costs as much
    /// as quantizing the whole block.
    /// </summary>
    internal static float RoundToHalf(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint sign = bits & 0x80000000u, abs = bits ^ sign;
        if (abs >= 0x7f800000u) return value; // infinity, NaN
        if (abs >= 0x477ff000u) return BitConverter.UInt32BitsToSingle(sign | 0x7f800000u); // 65520 and up round past 65504
        if (abs >= 0x38800000u) // normal halves (2^-14 and up): keep ten mantissa bits, ties to even
            return BitConverter.UInt32BitsToSingle(sign | ((abs + 0xfffu + ((abs >> 13) & 1)) & 0xffffe000u));
        // Subnormal halves are multiples of 2^-24, the spacing of floats in [0.5, 1): adding 0.5 rounds to one.
        float rounded = (BitConverter.UInt32BitsToSingle(abs) + 0.5f) - 0.5f;
        return BitConverter.UInt32BitsToSingle(sign | BitConverter.SingleToUInt32Bits(rounded));
    }

    private void Block32Avx2(float* x, int b)
    {
        var x0 = Vector256.Load(x);
        var x1 = Vector256.Load(x + 8);
        var x2 = Vector256.Load(x + 16);
        var x3 = Vector256.Load(x + 24);
        var m = Vector256.Max(Vector256.Max(Vector256.Abs(x0), Vector256.Abs(x1)), Vector256.Max(Vector256.Abs(x2), Vector256.Abs(x3)));
        var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
        var m2 = Vector128.Max(m4, Vector128.Shuffle(m4, Vector128.Create(2, 3, 0, 1)));
        float amax = MathF.Max(m2.ToScalar(), m2.GetElement(1));
        float d = amax / 127;
        var id = Vector256.Create(amax != 0 ? 127f / amax : 0.0f);
        var q0 = Avx.ConvertToVector256Int32(x0 * id);
        var q1 = Avx.ConvertToVector256Int32(x1 * id);
        var q2 = Avx.ConvertToVector256Int32(x2 * id);
        var q3 = Avx.ConvertToVector256Int32(x3 * id);
        Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).Store(Qs + 32 * b);
        int sum = Vector256.Sum((q0 + q1) + (q2 + q3));
        float d16 = RoundToHalf(d);
        _d[b] = d16;
        _dUp[b] = d16 * TwoPow112;
        _sum[b] = sum;
        _s[b] = RoundToHalf(d * sum);
    }

    private static readonly float TwoPow112 = BitConverter.UInt32BitsToSingle(HalfWidening.TwoPow112Bits);

    /// <summary>
    /// Quantizes x (a multiple of 256 values) as ggml's quantize_row_q8_K_ref does. With <paramref name="avx2"/> (and
    /// AVX2 present) a block is done in 256-bit vectors; the result is identical: the largest magnitude is found
    /// exactly and its first occurrence taken, as the scalar loop does, and each value goes through the same single
    /// multiply, the same rounding addition and the same clamp.
    /// </summary>
    public void Quantize256(ReadOnlySpan<float> x, bool avx2 = false)
    {
        Reserve(x.Length);
        if (avx2 && Avx2.IsSupported)
        {
            fixed (float* px = x)
                for (int b = 0; b < x.Length / 256; b++) Block256Avx2(px + 256 * b, b);
            return;
        }
        for (int b = 0; b < x.Length / 256; b++)
        {
            var xb = x.Slice(256 * b, 256);
            float max = Tensors.Quantize.SignedAbsMax(xb);
            var qs = _qs.AsSpan(256 * b, 256);
            if (max == 0)
            {
                _d[b] = 0;
                qs.Clear();
                _bsums.AsSpan(16 * b, 16).Clear();
                continue;
            }
            float iscale = -127f / max;
            for (int j = 0; j < 256; j++) qs[j] = (sbyte)Math.Min(127, KQuants.NearestInt(iscale * xb[j]));
            for (int g = 0; g < 16; g++)
            {
                int sum = 0;
                for (int i = 0; i < 16; i++) sum += qs[16 * g + i];
                _bsums[16 * b + g] = (short)sum;
            }
            _d[b] = 1 / iscale;
        }
    }

    private void Block256Avx2(float* x, int b)
    {
        // Largest magnitude: vmaxps returns its second operand when the first is NaN, so NaNs never win (nor in the scalar loop).
        var sign = Vector256.Create(-0.0f);
        var m = Vector256<float>.Zero;
        for (int i = 0; i < 256; i += 8) m = Avx.Max(Avx.AndNot(sign, Vector256.Load(x + i)), m);
        var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
        var m2 = Vector128.Max(m4, Vector128.Shuffle(m4, Vector128.Create(2, 3, 0, 1)));
        float amax = MathF.Max(m2.ToScalar(), m2.GetElement(1));
        sbyte* qs = Qs + 256 * b;
        short* bsums = BSums + 16 * b;
        if (amax == 0)
        {
            new Span<sbyte>(qs, 256).Clear();
            new Span<short>(bsums, 16).Clear();
            _d[b] = 0;
            return;
        }
        // The first value of that magnitude, with its sign.
        var amaxV = Vector256.Create(amax);
        int first = 0;
        while (true)
        {
            uint hits = Vector256.Equals(Avx.AndNot(sign, Vector256.Load(x + first)), amaxV).ExtractMostSignificantBits();
            if (hits != 0) { first += BitOperations.TrailingZeroCount(hits); break; }
            first += 8;
        }
        float iscale = -127f / x[first];
        var id = Vector256.Create(iscale);
        var magic = Vector256.Create(12582912f); // KQuants.NearestInt: adding 1.5 * 2^23 rounds to an integer in the low mantissa bits
        var low23 = Vector256.Create(0x007fffff);
        var bias = Vector256.Create(0x00400000);
        var top = Vector256.Create(127);
        for (int i = 0; i < 256; i += 32)
        {
            var q0 = Vector256.Min(((Vector256.Load(x + i) * id + magic).AsInt32() & low23) - bias, top);
            var q1 = Vector256.Min(((Vector256.Load(x + i + 8) * id + magic).AsInt32() & low23) - bias, top);
            var q2 = Vector256.Min(((Vector256.Load(x + i + 16) * id + magic).AsInt32() & low23) - bias, top);
            var q3 = Vector256.Min(((Vector256.Load(x + i + 24) * id + magic).AsInt32() & low23) - bias, top);
            Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).Store(qs + i);
            bsums[i / 16] = (short)Vector256.Sum(q0 + q1);
            bsums[i / 16 + 1] = (short)Vector256.Sum(q2 + q3);
        }
        _d[b] = 1 / iscale;
    }
}
