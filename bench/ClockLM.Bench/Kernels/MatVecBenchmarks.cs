using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using ClockLM.Tensors;

namespace ClockLM.Bench.Kernels;

/// <summary>
/// y = W x for one token: a weight matrix per type, at the shapes of a 1B-class model's attention (2048x2048) and
/// feed-forward (5632x2048) projections, on 1 thread and on 2 (caller plus one pool worker). Decoding is bound by
/// reading the weights, so the GB/s column (weight bytes / mean time) is the figure to compare with memory bandwidth.
/// Run: dotnet run -c Release --project bench/ClockLM.Bench -- --filter '*MatVecBenchmarks*' [--job short]
/// </summary>
[Config(typeof(Config))]
public unsafe class MatVecBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddColumn(new WeightBandwidthColumn(best: false), new WeightBandwidthColumn(best: true));
            AddColumn(StatisticColumn.Min);
        }
    }

    [Params(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0,
        GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K)]
    public GgmlType Type { get; set; }

    [Params(2048, 5632)]
    public int Rows { get; set; }

    public const int Cols = 2048;

    [Params(1, 2)]
    public int Threads { get; set; }

    private byte* _weights;
    private TensorView _view;
    private float[] _x = [];
    private float[] _y = [];
    private WorkerPool? _pool;

    /// <summary>Bytes of weights one product reads.</summary>
    public static long WeightBytes(GgmlType type, int rows) => GgmlTypeInfo.RowBytes(type, Cols) * rows;

    [GlobalSetup]
    public void Setup()
    {
        // 64 distinct quantized rows, tiled: the reference K-quant searches are too slow to quantize 11M values per setup,
        // and repeating rows changes nothing for a kernel that streams every byte once.
        var rng = new Random(1);
        var values = new float[64 * Cols];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
        var distinct = Quantize.Matrix(Type, values, 64, Cols);
        int rowBytes = distinct.Length / 64;
        long total = (long)rowBytes * Rows;
        _weights = (byte*)NativeMemory.AlignedAlloc((nuint)total, 64);
        for (int r = 0; r < Rows; r++)
            distinct.AsSpan(r % 64 * rowBytes, rowBytes).CopyTo(new Span<byte>(_weights + (long)r * rowBytes, rowBytes));
        _view = new TensorView(Type, Rows, Cols, _weights);
        _x = new float[Cols];
        for (int i = 0; i < Cols; i++) _x[i] = (float)(rng.NextDouble() * 2 - 1);
        _y = new float[Rows];
        _pool = Threads > 1 ? new WorkerPool(Threads - 1) : null;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _pool?.Dispose();
        NativeMemory.AlignedFree(_weights);
    }

    [Benchmark]
    public void MatVec()
    {
        if (_pool is null) Tensors.MatVec.Multiply(_view, _x, _y);
        else Tensors.MatVec.Multiply(_view, _x, _y, _pool);
    }

    /// <summary>
    /// Weight bytes read per second: the matrix's size over the mean (or the fastest) time of one product. On a
    /// machine shared with other work the fastest iteration is the better estimate of what the kernel can do.
    /// </summary>
    private sealed class WeightBandwidthColumn(bool best) : IColumn
    {
        public string Id => nameof(WeightBandwidthColumn) + (best ? "Best" : "Mean");
        public string ColumnName => best ? "GB/s (min time)" : "GB/s (mean)";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => $"weight bytes read per second (matrix bytes / {(best ? "fastest" : "mean")} time), 1 GB = 1e9 bytes";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var report = summary[benchmarkCase];
            if (report?.ResultStatistics is not { } stats) return "-";
            var type = (GgmlType)benchmarkCase.Parameters[nameof(Type)];
            int rows = (int)benchmarkCase.Parameters[nameof(Rows)];
            double seconds = (best ? stats.Min : stats.Mean) * 1e-9;
            return (WeightBytes(type, rows) / seconds / 1e9).ToString("F2");
        }
    }
}
