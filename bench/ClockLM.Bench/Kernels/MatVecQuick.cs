using System.Diagnostics;
using System.Runtime.InteropServices;
using ClockLM.Tensors;

namespace ClockLM.Bench.Kernels;

/// <summary>
/// `--matvec-quick`: a fast stopwatch measurement of y = W x per weight type, for A/B comparisons between builds
/// (BenchmarkDotNet's <see cref="MatVecBenchmarks"/> is the careful one). Copies of the matrix fill 256 MB and are used
/// in turn, so the weights come from memory as in decoding, not from the cache.
/// Usage: --matvec-quick [--types F16,Q4_0] [--rows 5632] [--cols 2048] [-t 1,2] [--ms 1500] [--kernels K[,K...]]
/// Prints per type, thread count and kernel choice the median weight bandwidth (GB/s) of the products; several kernel
/// choices (e.g. vector256/256,vector256/512) take turns product by product, so they see the same machine.
/// Each copy's view is made once, as a model's are: an F16 matrix runs the kernel that watches for infinities only
/// in its first product.
/// </summary>
public static unsafe class MatVecQuick
{
    public static int Run(string[] args)
    {
        var types = new[] { GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K };
        int rows = 5632, cols = 2048, ms = 1500;
        int[] threads = [1, 2];
        var choices = new[] { KernelOptions.Best };
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--types": types = args[++i].Split(',').Select(Enum.Parse<GgmlType>).ToArray(); break;
                case "--rows": rows = int.Parse(args[++i]); break;
                case "--cols": cols = int.Parse(args[++i]); break;
                case "--ms": ms = int.Parse(args[++i]); break;
                case "-t": threads = args[++i].Split(',').Select(int.Parse).ToArray(); break;
                case "--kernels": choices = args[++i].Split(',').Select(KernelOptions.Parse).ToArray(); break;
            }
        }
        var rng = new Random(1);
        var x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var y = new float[rows];
        foreach (var type in types)
        {
            var values = new float[64 * cols];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
            var distinct = Quantize.Matrix(type, values, 64, cols);
            int rowBytes = distinct.Length / 64;
            long bytes = (long)rowBytes * rows;
            int copies = (int)Math.Max(1, (256L << 20) / bytes);
            var mats = new byte*[copies];
            var views = new TensorView[copies];
            for (int c = 0; c < copies; c++)
            {
                mats[c] = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
                for (int r = 0; r < rows; r++)
                    distinct.AsSpan(r % 64 * rowBytes, rowBytes).CopyTo(new Span<byte>(mats[c] + (long)r * rowBytes, rowBytes));
                views[c] = new TensorView(type, rows, cols, mats[c]);
            }
            foreach (int t in threads)
            {
                using var pool = t > 1 ? new WorkerPool(t - 1) : null;
                var times = choices.Select(_ => new List<double>()).ToArray();
                var total = Stopwatch.StartNew();
                for (int k = 0; total.ElapsedMilliseconds < ms * choices.Length || times[^1].Count < 20; k++)
                {
                    var view = views[k % copies];
                    int choice = k % choices.Length;
                    long t0 = Stopwatch.GetTimestamp();
                    MatVec.Multiply(view, x, y, pool, choices[choice]);
                    times[choice].Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
                }
                for (int c = 0; c < choices.Length; c++)
                {
                    var sorted = times[c].Skip(copies).Order().ToList(); // each copy's first product watches
                    double median = sorted[sorted.Count / 2], best = sorted[0];
                    Console.WriteLine($"{type,-5} {rows}x{cols} t={t} {choices[c],-14}: median {bytes / median / 1e9,6:F2} GB/s  best {bytes / best / 1e9,6:F2} GB/s  ({sorted.Count} runs)");
                }
            }
            foreach (var m in mats) NativeMemory.AlignedFree(m);
        }
        return 0;
    }
}
