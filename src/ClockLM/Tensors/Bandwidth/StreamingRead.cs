using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Reads memory as fast as a core can, for the roofline's bandwidth (<c>Clock/Roofline</c>): the XOR of every 64-bit
/// word of a buffer, which needs every byte and nothing else. Eight independent 32-byte loads per 256-byte step feed
/// eight accumulators (XOR has a one-cycle latency, so no chain ever waits), and the prefetching loop also asks for the
/// lines a fixed distance ahead, as ClockLM's streaming kernels do (2 KB in the row dots, 4 KB in the F16 rows and
/// packed kernels): a core's hardware prefetcher alone keeps fewer lines in flight than it can take. Which loop reads
/// fastest depends on the machine, so the roofline measures each and keeps the best.
/// </summary>
internal static unsafe class StreamingRead
{
    /// <summary>Bytes one step of the loops reads; buffers are a multiple of it.</summary>
    public const int StepBytes = 256;

    /// <summary>True when <see cref="Xor(byte*, long, int)"/> can prefetch (x86 with accelerated 256-bit vectors;
    /// elsewhere it only loads).</summary>
    public static bool CanPrefetch => Sse.IsSupported && Vector256.IsHardwareAccelerated;

    /// <summary>
    /// The XOR of the 64-bit words of [p, p + bytes), <paramref name="bytes"/> a multiple of <see cref="StepBytes"/>,
    /// asking for the lines <paramref name="prefetchAhead"/> bytes ahead of each step as it goes (0: loads alone). On
    /// 256-bit vectors where they are accelerated, else 128-bit ones, else one word at a time; the result is always
    /// <see cref="XorScalar"/>'s.
    /// </summary>
    public static ulong Xor(byte* p, long bytes, int prefetchAhead)
    {
        if (bytes % StepBytes != 0)
            throw new ArgumentException($"a streaming read takes a multiple of {StepBytes} bytes, not {bytes}", nameof(bytes));
        if (Vector256.IsHardwareAccelerated)
            return prefetchAhead > 0 && Sse.IsSupported ? Xor256Prefetch(p, bytes, prefetchAhead) : Xor256(p, bytes);
        if (Vector128.IsHardwareAccelerated) return Xor128(p, bytes);
        return XorScalar(p, bytes);
    }

    /// <summary>The reference: the XOR of the 64-bit words, one at a time.</summary>
    public static ulong XorScalar(byte* p, long bytes)
    {
        ulong x = 0;
        for (long i = 0; i + 8 <= bytes; i += 8) x ^= Unsafe.ReadUnaligned<ulong>(p + i);
        return x;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static ulong Xor256(byte* p, long bytes)
    {
        Vector256<ulong> a = default, b = default, c = default, d = default, e = default, f = default, g = default, h = default;
        for (byte* end = p + bytes; p < end; p += StepBytes)
        {
            a ^= Vector256.Load((ulong*)p); b ^= Vector256.Load((ulong*)(p + 32));
            c ^= Vector256.Load((ulong*)(p + 64)); d ^= Vector256.Load((ulong*)(p + 96));
            e ^= Vector256.Load((ulong*)(p + 128)); f ^= Vector256.Load((ulong*)(p + 160));
            g ^= Vector256.Load((ulong*)(p + 192)); h ^= Vector256.Load((ulong*)(p + 224));
        }
        return Fold(((a ^ b) ^ (c ^ d)) ^ ((e ^ f) ^ (g ^ h)));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static ulong Xor256Prefetch(byte* p, long bytes, int ahead)
    {
        Vector256<ulong> a = default, b = default, c = default, d = default, e = default, f = default, g = default, h = default;
        for (byte* end = p + bytes; p < end; p += StepBytes)
        {
            // The four lines of the step `ahead` bytes on; past the end of the buffer a prefetch is only a hint.
            Sse.Prefetch0(p + ahead);
            Sse.Prefetch0(p + ahead + 64);
            Sse.Prefetch0(p + ahead + 128);
            Sse.Prefetch0(p + ahead + 192);
            a ^= Vector256.Load((ulong*)p); b ^= Vector256.Load((ulong*)(p + 32));
            c ^= Vector256.Load((ulong*)(p + 64)); d ^= Vector256.Load((ulong*)(p + 96));
            e ^= Vector256.Load((ulong*)(p + 128)); f ^= Vector256.Load((ulong*)(p + 160));
            g ^= Vector256.Load((ulong*)(p + 192)); h ^= Vector256.Load((ulong*)(p + 224));
        }
        return Fold(((a ^ b) ^ (c ^ d)) ^ ((e ^ f) ^ (g ^ h)));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static ulong Xor128(byte* p, long bytes)
    {
        Vector128<ulong> a = default, b = default, c = default, d = default, e = default, f = default, g = default, h = default;
        for (byte* end = p + bytes; p < end; p += 128)
        {
            a ^= Vector128.Load((ulong*)p); b ^= Vector128.Load((ulong*)(p + 16));
            c ^= Vector128.Load((ulong*)(p + 32)); d ^= Vector128.Load((ulong*)(p + 48));
            e ^= Vector128.Load((ulong*)(p + 64)); f ^= Vector128.Load((ulong*)(p + 80));
            g ^= Vector128.Load((ulong*)(p + 96)); h ^= Vector128.Load((ulong*)(p + 112));
        }
        var x = ((a ^ b) ^ (c ^ d)) ^ ((e ^ f) ^ (g ^ h));
        return x.GetElement(0) ^ x.GetElement(1);
    }

    /// <summary>The XOR of the four lanes.</summary>
    private static ulong Fold(Vector256<ulong> x)
    {
        var half = x.GetLower() ^ x.GetUpper();
        return half.GetElement(0) ^ half.GetElement(1);
    }
}
