using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ClockLM.Tensors;

/// <summary>KV-cache rows of floats, read as they are.</summary>
internal unsafe struct F32CacheRows : ICacheRowFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int i) => ((float*)row)[i];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i) => Vector256.Load((float*)row + i);
}
