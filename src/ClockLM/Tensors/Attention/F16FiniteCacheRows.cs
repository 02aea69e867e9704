using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ClockLM.Tensors;

/// <summary>
/// KV-cache rows of finite halves, widened in three operations to their values times 2^-112
/// (<see cref="HalfWidening.WidenFiniteUnscaled"/>), exactly. A kernel that multiplies these by a factor it has scaled
/// by 2^112 gets the same real products, so the same rounded floats, as over the widened values: the factor must stay
/// finite when scaled (<see cref="GroupedAttention"/> checks it). Infinite or NaN halves would come out finite: rows
/// that may hold one are read as <see cref="F16CacheRows"/>.
/// </summary>
internal unsafe struct F16FiniteCacheRows : ICacheRowFormat
{
    /// <summary>2^112, the factor the other operand is scaled by.</summary>
    public static float Compensation => BitConverter.UInt32BitsToSingle(HalfWidening.TwoPow112Bits);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, int i) => HalfWidening.ToSingle(((ushort*)row)[i]) * (1 / Compensation);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, int i) => HalfWidening.WidenFiniteUnscaled((ushort*)row + i, HalfWidening.FiniteMask);
}
