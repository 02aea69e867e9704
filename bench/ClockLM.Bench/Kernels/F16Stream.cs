using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ClockLM.Tensors;

namespace ClockLM.Bench.Kernels;

/// <summary>
/// `--f16-stream`: GB/s one core streams through F16 and BF16 matrix-vector rows (<see cref="HalfMatVec"/>, 256- and
/// 512-bit loops, over rows in their file layout and over the same bytes read as panels, <see cref="HalfPanels"/>, the
/// layout rows longer than 4096 columns get when a model loads) beside a plain read loop over the same bytes (four 256-bit accumulators, no prefetching), and beside
/// the F16 loop with a software prefetch 4 KB ahead (the earlier form of the kernel), all taking turns product by
/// product in one process so that they see the same machine.
/// </summary>
/// <remarks>
/// <c>--f16-stream [--rows 5632] [--cols 2048] [--ms 3000]</c>. Copies of the matrix fill 512 MB and are read in turn
/// (each kernel a different copy each time), so the weights come from memory, not from the cache. Prints per kernel
/// the median, upper quartile and best GB/s.
/// </remarks>
public static unsafe class F16Stream
{
    public static int Run(string[] args)
    {
        int rows = int.Parse(Value(args, "--rows") ?? "5632"), cols = int.Parse(Value(args, "--cols") ?? "2048");
        int ms = int.Parse(Value(args, "--ms") ?? "3000");
        if (!Avx2.IsSupported || !Fma.IsSupported)
        {
            Console.Error.WriteLine("--f16-stream needs AVX2 and FMA");
            return 1;
        }
        var rng = new Random(1);
        var x = (float*)NativeMemory.AlignedAlloc((nuint)cols * 4, 64);
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var xs = FloatDots.ScaledForHalves(x, cols);
        var y = (float*)NativeMemory.AlignedAlloc((nuint)rows * 4, 64);
        long bytes = (long)rows * cols * 2;
        int copies = (int)Math.Max(2, (512L << 20) / bytes);
        var mats = new nint[copies];
        for (int c = 0; c < copies; c++)
        {
            var h = (ushort*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            for (long i = 0; i < bytes / 2; i++) h[i] = BitConverter.HalfToUInt16Bits((Half)((rng.NextDouble() * 2 - 1) * 0.05));
            mats[c] = (nint)h;
        }
        int rowBytes = cols * 2;
        var kernels = new List<(string Name, Action<nint> Run)>
        {
            ("plain read loop", m => Plain((float*)m, bytes / 4)),
            ("F16 256-bit, prefetch 4 KB", m => F16Prefetching((byte*)m, rowBytes, cols, xs, y, rows)),
            ("F16 256-bit", m => HalfMatVec.F16Rows((byte*)m, rowBytes, cols, x, xs, y, 0, rows, wide: false)),
            ("BF16 256-bit", m => HalfMatVec.BF16Rows((byte*)m, rowBytes, cols, x, y, 0, rows, wide: false)),
            ("F16 256-bit panels", m => HalfMatVec.F16PanelRows((byte*)m, rows, cols, x, xs, y, 0, rows, wide: false)),
            ("BF16 256-bit panels", m => HalfMatVec.BF16PanelRows((byte*)m, rows, cols, x, y, 0, rows, wide: false)),
        };
        if (Avx512F.IsSupported)
        {
            kernels.Add(("F16 512-bit", m => HalfMatVec.F16Rows((byte*)m, rowBytes, cols, x, xs, y, 0, rows, wide: true)));
            kernels.Add(("BF16 512-bit", m => HalfMatVec.BF16Rows((byte*)m, rowBytes, cols, x, y, 0, rows, wide: true)));
            kernels.Add(("F16 512-bit panels", m => HalfMatVec.F16PanelRows((byte*)m, rows, cols, x, xs, y, 0, rows, wide: true)));
            kernels.Add(("BF16 512-bit panels", m => HalfMatVec.BF16PanelRows((byte*)m, rows, cols, x, y, 0, rows, wide: true)));
        }
        Console.WriteLine($"# one core, {rows}x{cols} 16-bit rows ({bytes >> 20} MiB), {copies} copies read in turn, kernels alternating");
        var times = kernels.Select(_ => new List<double>()).ToList();
        var total = Stopwatch.StartNew();
        for (int k = 0; total.ElapsedMilliseconds < (long)ms * kernels.Count || k < 20 * kernels.Count; k++)
        {
            int v = k % kernels.Count;
            long t0 = Stopwatch.GetTimestamp();
            kernels[v].Run(mats[k % copies]); // copies rotate independently of the kernels
            times[v].Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        Console.WriteLine($"| {"kernel",-28} | {"median GB/s",11} | {"p25 GB/s",8} | {"best GB/s",9} | {"runs",5} |");
        Console.WriteLine($"| {new string('-', 28)} | {new string('-', 11)} | {new string('-', 8)} | {new string('-', 9)} | {new string('-', 5)} |");
        for (int v = 0; v < kernels.Count; v++)
        {
            var s = times[v].Skip(2).Order().ToList(); // the first runs warm up
            Console.WriteLine($"| {kernels[v].Name,-28} | {bytes / s[s.Count / 2] / 1e9,11:F2} | {bytes / s[s.Count / 4] / 1e9,8:F2} | {bytes / s[0] / 1e9,9:F2} | {s.Count,5} |");
        }
        foreach (var m in mats) NativeMemory.AlignedFree((void*)m);
        NativeMemory.AlignedFree(x);
        NativeMemory.AlignedFree(y);
        GC.KeepAlive(_sink);
        return 0;
    }

    private static float _sink;

    /// <summary>The roofline's plain read loop over the same bytes (<see cref="Clock.ReadBandwidth.Sum"/>).</summary>
    private static void Plain(float* p, long n) => _sink += Clock.ReadBandwidth.Sum(p, n);

    /// <summary>The F16 loop as it was before the prefetch was dropped: the 256-bit loop plus a prefetch of the weights
    /// 2048 halves ahead each 32 halves (the row length is a multiple of 32 here, so there is no tail).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void F16Prefetching(byte* weights, int rowBytes, int n, float* xs, float* y, int rows)
    {
        var mask = HalfWidening.FiniteMask;
        for (int r = 0; r < rows; r++)
        {
            var w = (ushort*)(weights + (long)r * rowBytes);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int i = 0; i + 32 <= n; i += 32)
            {
                Sse.Prefetch0(w + i + 2048);
                a0 = Fma.MultiplyAdd(HalfWidening.WidenFiniteUnscaled(w + i, mask), Vector256.Load(xs + i), a0);
                a1 = Fma.MultiplyAdd(HalfWidening.WidenFiniteUnscaled(w + i + 8, mask), Vector256.Load(xs + i + 8), a1);
                a2 = Fma.MultiplyAdd(HalfWidening.WidenFiniteUnscaled(w + i + 16, mask), Vector256.Load(xs + i + 16), a2);
                a3 = Fma.MultiplyAdd(HalfWidening.WidenFiniteUnscaled(w + i + 24, mask), Vector256.Load(xs + i + 24), a3);
            }
            y[r] = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
    }

    private static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
