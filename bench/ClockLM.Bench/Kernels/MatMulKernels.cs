using System.Diagnostics;
using ClockLM.Generation;
using ClockLM.Tensors;

namespace ClockLM.Bench.Kernels;

/// <summary>
/// `--matmul-kernels`: W (rows x 2048) times a chunk of activation vectors, once with MatMul and once as one MatVec per
/// vector, interleaved, single-threaded unless -t says otherwise. Prints the median time per product, the
/// multiply-adds per nanosecond and the MatMul/MatVec speed ratio. Usage: --matmul-kernels [--types Q4_0,F16]
/// [--rows 2048] [--count 32] [-t 1] [-r 9] [--cpu-time: process CPU time instead of wall time, for a busy machine]
/// [--min: the fastest repetition instead of the median, which a machine busy with other work disturbs less]
/// [--packed: MatMul on Q4_0/Q8_0 rows packed eight at a time as models load them, MatVec on the file layout]
/// </summary>
public static class MatMulKernels
{
    public static int Run(string[] args)
    {
        GgmlType[] types = [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K];
        int rows = 2048, cols = 2048, count = 32, threads = 1, reps = 9;
        bool useCpu = false, packed = false, fastest = false;
        var process = Process.GetCurrentProcess();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => args[++i];
            switch (args[i])
            {
                case "--types": types = Next().Split(',').Select(Enum.Parse<GgmlType>).ToArray(); break;
                case "--rows": rows = int.Parse(Next()); break;
                case "--cols": cols = int.Parse(Next()); break;
                case "--count": count = int.Parse(Next()); break;
                case "-t": threads = int.Parse(Next()); break;
                case "-r": reps = int.Parse(Next()); break;
                case "--cpu-time": useCpu = true; break;
                case "--packed": packed = true; break;
                case "--min": fastest = true; break;
            }
        }
        using var pool = new WorkerPool(threads - 1);
        Console.WriteLine($"| {"type",6} | {"rows x cols",11} | {"vectors",7} | {"MatMul ms",10} | {"MatVec ms",10} | {"MatMul madd/ns",14} | {"speed-up",8} |");
        Console.WriteLine($"| {new string('-', 6)} | {new string('-', 11)} | {new string('-', 7)} | {new string('-', 10)} | {new string('-', 10)} | {new string('-', 14)} | {new string('-', 8)} |");
        foreach (var type in types)
        {
            var rng = new Random(1);
            var values = new float[rows * cols];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
            byte[] w = GC.AllocateArray<byte>((int)GgmlTypeInfo.RowBytes(type, cols) * rows, pinned: true);
            Quantize.Matrix(type, values, rows, cols).CopyTo(w, 0);
            var view = TensorView.Pinned(type, rows, cols, w);
            var (matMulView, packedStorage) = packed && PackedRows.CanPack(view) ? PackedRows.Pack(view) : (view, null);
            var x = new float[count * cols];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            var y = new float[count * rows];
            var mm = new double[reps];
            var mv = new double[reps];
            for (int r = -1; r < reps; r++)
            {
                // Reading the process CPU time costs tens of microseconds: only when it is what is measured.
                var cpu = useCpu ? process.TotalProcessorTime : default;
                var clock = Stopwatch.StartNew();
                MatMul.Multiply(matMulView, x, y, count, pool);
                double a = useCpu ? (process.TotalProcessorTime - cpu).TotalMilliseconds : clock.Elapsed.TotalMilliseconds;
                process.Refresh();
                cpu = useCpu ? process.TotalProcessorTime : default;
                clock.Restart();
                for (int t = 0; t < count; t++) MatVec.Multiply(view, x.AsSpan(t * cols, cols), y.AsSpan(t * rows, rows), pool);
                double b = useCpu ? (process.TotalProcessorTime - cpu).TotalMilliseconds : clock.Elapsed.TotalMilliseconds;
                process.Refresh();
                if (r >= 0) (mm[r], mv[r]) = (a, b);
            }
            GC.KeepAlive(w); // the views hold only pointers into these
            GC.KeepAlive(packedStorage);
            double mmMs = fastest ? mm.Min() : Throughput.Median(mm), mvMs = fastest ? mv.Min() : Throughput.Median(mv);
            double madds = (double)rows * cols * count / (mmMs * 1e6);
            Console.WriteLine($"| {type,6} | {$"{rows}x{cols}",11} | {count,7} | {mmMs,10:F2} | {mvMs,10:F2} | {madds,14:F1} | {mvMs / mmMs,8:F2} |");
        }
        return 0;
    }
}
