using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>KV-cache rows of halves, widened exactly (infinities and NaNs included); eight at a time needs AVX2.</summary>
internal unsafe struct F16CacheRows : ICacheRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int i) => HalfWidening.ToSingle(((ushort*)row)[i]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i) =>
        HalfWidening.Widen(Avx2.ConvertToVector256Int32((ushort*)row + i).AsUInt32());
}
