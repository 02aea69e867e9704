using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>KV-cache rows of Q8_0 blocks of 34 bytes (an f16 scale d, then 32 signed codes q): value d · q, exact in float (an 11-bit
/// significand times 7 bits), as <see cref="Dequantize"/> gives it. Eight at a time needs AVX2.</summary>
internal unsafe struct Q8_0CacheRows : ICacheRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int i)
    {
        byte* block = row + i / 32 * 34;
        return HalfWidening.ToSingle(*(ushort*)block) * ((sbyte*)block)[2 + i % 32];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i)
    {
        byte* block = row + i / 32 * 34;
        var codes = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)block + 2 + i % 32));
        return codes * Vector256.Create(HalfWidening.ToSingle(*(ushort*)block));
    }
}
