using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ClockLM.Tensors;

namespace ClockLM.Nn;

/// <summary>
/// The float matrix product of training, C = A·B or C += A·B, with A (m×k) and B (k×n) read through their strides
/// (so the three products of a linear layer, y = x·Wᵀ, dx += dy·W and dW += dyᵀ·x, need no transposed copies).
/// </summary>
/// <remarks>
/// <para>Every value of C is one chain of fused multiply-adds, c ← a[i,p]·b[p,j] + c for p = 0, 1, …, k−1 in order,
/// starting from 0 (or from C when accumulating). That order does not depend on how the work is split, so the result
/// is the same bits on any number of threads, and <see cref="Reference"/> (the plain triple loop) gives the same bits
/// as the vector path.</para>
/// <para>The vector path is the classic packed product (Goto and van de Geijn; BLIS): B is copied once into panels of
/// 16 columns, each panel's rows one after another; a work item is a block of at most 96 rows by 192 columns of C,
/// run 256 values of depth at a time. The micro-kernel keeps a 6×16 tile of C in twelve 8-lane registers; per depth
/// step it loads 16 values of B, broadcasts 6 of A and does 12 fused multiply-adds, so its loads stay well below the
/// two FMA pipes' rate. It reads A where it lies, through its strides (a row-major x or dy, or a transposed dy), so A
/// is not copied; only a last micro-panel of fewer than 6 rows is copied out with zero rows. A tile at the edge of C
/// runs in a 6×16 scratch tile and copies its part back.</para>
/// </remarks>
internal static unsafe class Gemm
{
    private const int Mr = 6, Nr = 16;
    /// <summary>Depth of one pass: a micro-panel of A (6×256) and of B (256×16) fit the first-level cache together.</summary>
    private const int Kc = 256;
    /// <summary>Rows of a work item: its part of A (96×256 floats, 96 KB) stays in the second-level cache.</summary>
    private const int Mc = 96;
    /// <summary>Columns of a work item.</summary>
    private const int Nc = 192;
    /// <summary>Below this many multiply-adds a product runs on the calling thread.</summary>
    private const long ParallelWork = 1 << 19;

    [ThreadStatic] private static float[]? _packedB;
    [ThreadStatic] private static float[]? _packedA;

    /// <summary>True where the 8-lane fused multiply-add path runs; elsewhere <see cref="Multiply"/> runs <see cref="Reference"/>.</summary>
    public static bool Vectorized => Fma.IsSupported && Vector256.IsHardwareAccelerated;

    /// <summary>
    /// C = A·B (or C += A·B when <paramref name="accumulate"/>), C row-major with row stride <paramref name="ldc"/>.
    /// Rows of C are shared out over <paramref name="pool"/> when the product is large enough; null runs it here.
    /// </summary>
    public static void Multiply(StridedMatrix a, StridedMatrix b, float* c, int ldc, int m, int n, int k, bool accumulate, WorkerPool? pool)
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0 || !Vectorized)
        {
            Reference(a, b, c, ldc, m, n, k, accumulate);
            return;
        }
        int panels = (n + Nr - 1) / Nr;
        float* packed = PinnedBuffer(ref _packedB, PackedLength(k, n));
        bool parallel = pool != null && (long)m * n * k >= ParallelWork;
        var pack = new PackJob { B = b, Packed = packed, N = n, K = k };
        if (parallel) pool!.Run(pack, panels);
        else pack.Execute(0, panels);
        MultiplyPacked(a, new PackedPanels(packed, k * Nr), c, ldc, m, n, k, accumulate, parallel ? pool : null);
    }

    /// <summary>Floats <see cref="Pack"/> writes for a k×n matrix.</summary>
    public static long PackedLength(int k, int n) => (long)(n + Nr - 1) / Nr * Nr * k;

    /// <summary>
    /// Copies B (k×n) into panels of 16 columns at <paramref name="buffer"/> (<see cref="PackedLength"/> floats), for
    /// several products by <see cref="MultiplyPacked"/> (attention multiplies every block of queries by the same keys).
    /// </summary>
    public static PackedPanels Pack(StridedMatrix b, int k, int n, float* buffer)
    {
        new PackJob { B = b, Packed = buffer, N = n, K = k }.Execute(0, (n + Nr - 1) / Nr);
        return new PackedPanels(buffer, k * Nr);
    }

    /// <summary>C = A·B (or C += A·B) for a B packed by <see cref="Pack"/>: its first <paramref name="k"/> rows and first
    /// <paramref name="n"/> columns, so one packed matrix serves the products of any of its leading blocks. The same bits
    /// as <see cref="Multiply"/>.</summary>
    public static void MultiplyPacked(StridedMatrix a, PackedPanels b, float* c, int ldc, int m, int n, int k, bool accumulate, WorkerPool? pool)
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0 || !Vectorized)
        {
            // The plain loop, reading B from its panels.
            PlainLoop(a, new StridedMatrix(b.Data, Nr, 1), c, ldc, m, n, k, accumulate, b.PanelStride);
            return;
        }
        int rowBlocks = (m + Mc - 1) / Mc, columnBlocks = (n + Nc - 1) / Nc;
        var tiles = new TileJob
        {
            A = a, PackedB = b, C = c, Ldc = ldc, M = m, N = n, K = k, Accumulate = accumulate, ColumnBlocks = columnBlocks,
        };
        if (pool != null && (long)m * n * k >= ParallelWork) pool.Run(tiles, rowBlocks * columnBlocks);
        else tiles.Execute(0, rowBlocks * columnBlocks);
    }

    /// <summary>The plain product, the reference the vector path equals bit for bit.</summary>
    public static void Reference(StridedMatrix a, StridedMatrix b, float* c, int ldc, int m, int n, int k, bool accumulate) =>
        PlainLoop(a, b, c, ldc, m, n, k, accumulate, panelStride: 0);

    /// <summary>The plain product; with a <paramref name="panelStride"/>, B's columns come in panels of 16 that far apart.</summary>
    private static void PlainLoop(StridedMatrix a, StridedMatrix b, float* c, int ldc, int m, int n, int k, bool accumulate, int panelStride)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                var column = panelStride == 0 ? b : new StridedMatrix(b.Data + (long)(j / Nr) * panelStride, b.RowStride, b.ColumnStride);
                int jj = panelStride == 0 ? j : j % Nr;
                float sum = accumulate ? c[(long)i * ldc + j] : 0f;
                for (int p = 0; p < k; p++) sum = MathF.FusedMultiplyAdd(a[i, p], column[p, jj], sum);
                c[(long)i * ldc + j] = sum;
            }
    }

    /// <summary>B's columns [16·start, 16·end) copied into panels: panel q holds B[p, 16q..16q+16) for p = 0..k−1, one
    /// row of 16 after another, zeros past column n.</summary>
    private struct PackJob : IRowRangeJob
    {
        public StridedMatrix B;
        public float* Packed;
        public int N, K;

        public readonly void Execute(int start, int end)
        {
            for (int q = start; q < end; q++)
            {
                float* panel = Packed + (long)q * K * Nr;
                int j0 = q * Nr, columns = Math.Min(Nr, N - j0);
                if (columns == Nr && B.ColumnStride == 1)
                {
                    // Rows of B are contiguous: 16 values per depth step in two vectors.
                    for (int p = 0; p < K; p++)
                    {
                        float* source = B.Data + (long)p * B.RowStride + j0;
                        Vector256.Store(Vector256.Load(source), panel + p * Nr);
                        Vector256.Store(Vector256.Load(source + 8), panel + p * Nr + 8);
                    }
                    continue;
                }
                if (columns < Nr) new Span<float>(panel, K * Nr).Clear();
                // Otherwise column by column, each read along the depth (contiguous for a transposed row-major matrix).
                for (int jj = 0; jj < columns; jj++)
                {
                    float* source = B.Data + (long)(j0 + jj) * B.ColumnStride;
                    long step = B.RowStride;
                    for (int p = 0; p < K; p++) panel[p * Nr + jj] = source[p * step];
                }
            }
        }
    }

    /// <summary>Blocks of C of at most <see cref="Mc"/> rows by <see cref="Nc"/> columns, numbered row block by row block.</summary>
    private struct TileJob : IRowRangeJob
    {
        public StridedMatrix A;
        public PackedPanels PackedB;
        public float* C;
        public int Ldc, M, N, K, ColumnBlocks;
        public bool Accumulate;

        public readonly void Execute(int start, int end)
        {
            float* packedA = PinnedBuffer(ref _packedA, Mr * Kc);
            float* edge = stackalloc float[Mr * Nr];
            for (int item = start; item < end; item++)
            {
                int i0 = item / ColumnBlocks * Mc, j0 = item % ColumnBlocks * Nc;
                int rows = Math.Min(Mc, M - i0), j1 = Math.Min(N, j0 + Nc);
                for (int p0 = 0; p0 < K; p0 += Kc)
                {
                    int kc = Math.Min(Kc, K - p0);
                    // Full micro-panels read A where it lies; the last, short one is copied out with zero rows.
                    int fullRows = rows / Mr * Mr;
                    if (fullRows < rows) PackA(A, i0 + fullRows, rows - fullRows, p0, kc, packedA);
                    bool load = Accumulate || p0 > 0;
                    for (int j = j0; j < j1; j += Nr)
                    {
                        float* bp = PackedB.Data + (long)(j / Nr) * PackedB.PanelStride + (long)p0 * Nr;
                        int columns = Math.Min(Nr, j1 - j);
                        for (int r = 0; r < rows; r += Mr)
                        {
                            float* cp = C + (long)(i0 + r) * Ldc + j;
                            int tileRows = Math.Min(Mr, rows - r);
                            float* ap = A.Data + (long)(i0 + r) * A.RowStride + (long)p0 * A.ColumnStride;
                            nint rowStep = A.RowStride, depthStep = A.ColumnStride;
                            if (tileRows < Mr)
                            {
                                ap = packedA;
                                rowStep = 1;
                                depthStep = Mr;
                            }
                            if (tileRows == Mr && columns == Nr)
                            {
                                Kernel(kc, ap, rowStep, depthStep, bp, cp, Ldc, load);
                                continue;
                            }
                            // An edge tile: through a full 6×16 scratch tile, the same chain for every value.
                            new Span<float>(edge, Mr * Nr).Clear();
                            if (load)
                                for (int ii = 0; ii < tileRows; ii++)
                                    new ReadOnlySpan<float>(cp + (long)ii * Ldc, columns).CopyTo(new Span<float>(edge + ii * Nr, columns));
                            Kernel(kc, ap, rowStep, depthStep, bp, edge, Nr, load: true);
                            for (int ii = 0; ii < tileRows; ii++)
                                new ReadOnlySpan<float>(edge + ii * Nr, columns).CopyTo(new Span<float>(cp + (long)ii * Ldc, columns));
                        }
                    }
                }
            }
        }
    }

    /// <summary>Rows [i0, i0+rows) by depth [p0, p0+kc) of A into micro-panels of 6 rows: panel r/6 starts at r·kc and
    /// holds depth step p's 6 values at 6p; rows past the block are zeros. (Used for a last micro-panel of fewer than 6
    /// rows, which cannot be read in place.)</summary>
    private static void PackA(StridedMatrix a, int i0, int rows, int p0, int kc, float* packed)
    {
        for (int r = 0; r < rows; r += Mr)
        {
            float* panel = packed + r * kc;
            int tileRows = Math.Min(Mr, rows - r);
            if (tileRows < Mr) new Span<float>(panel, Mr * kc).Clear();
            float* source = a.Data + (long)(i0 + r) * a.RowStride + (long)p0 * a.ColumnStride;
            if (a.RowStride == 1)
            {
                // A transposed row-major matrix (dyᵀ): a depth step's six values are contiguous.
                long step = a.ColumnStride;
                for (int p = 0; p < kc; p++)
                    for (int ii = 0; ii < tileRows; ii++) panel[p * Mr + ii] = source[p * step + ii];
                continue;
            }
            // Row by row, each read along the depth (contiguous for a row-major A).
            for (int ii = 0; ii < tileRows; ii++)
            {
                float* row = source + (long)ii * a.RowStride;
                long step = a.ColumnStride;
                for (int p = 0; p < kc; p++) panel[p * Mr + ii] = row[p * step];
            }
        }
    }

    /// <summary>A 6×16 tile of C (row stride <paramref name="ldc"/>) plus the product of 6 rows of A (row i, depth step p
    /// at <c>a[i·rowStep + p·depthStep]</c>) and a packed kc×16 micro-panel of B; the tile starts from zeros unless
    /// <paramref name="load"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel(int kc, float* a, nint rowStep, nint depthStep, float* b, float* c, int ldc, bool load)
    {
        float* a3 = a + 3 * rowStep;
        nint rowStep2 = 2 * rowStep;
        Vector256<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (load)
        {
            float* r = c;
            c00 = Vector256.Load(r); c01 = Vector256.Load(r + 8); r += ldc;
            c10 = Vector256.Load(r); c11 = Vector256.Load(r + 8); r += ldc;
            c20 = Vector256.Load(r); c21 = Vector256.Load(r + 8); r += ldc;
            c30 = Vector256.Load(r); c31 = Vector256.Load(r + 8); r += ldc;
            c40 = Vector256.Load(r); c41 = Vector256.Load(r + 8); r += ldc;
            c50 = Vector256.Load(r); c51 = Vector256.Load(r + 8);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = Vector256<float>.Zero;
        }
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var x = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(x, b0, c00); c01 = Fma.MultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[rowStep]);
            c10 = Fma.MultiplyAdd(x, b0, c10); c11 = Fma.MultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[rowStep2]);
            c20 = Fma.MultiplyAdd(x, b0, c20); c21 = Fma.MultiplyAdd(x, b1, c21);
            x = Vector256.Create(a3[0]);
            c30 = Fma.MultiplyAdd(x, b0, c30); c31 = Fma.MultiplyAdd(x, b1, c31);
            x = Vector256.Create(a3[rowStep]);
            c40 = Fma.MultiplyAdd(x, b0, c40); c41 = Fma.MultiplyAdd(x, b1, c41);
            x = Vector256.Create(a3[rowStep2]);
            c50 = Fma.MultiplyAdd(x, b0, c50); c51 = Fma.MultiplyAdd(x, b1, c51);
            a += depthStep;
            a3 += depthStep;
            b += Nr;
        }
        float* w = c;
        c00.Store(w); c01.Store(w + 8); w += ldc;
        c10.Store(w); c11.Store(w + 8); w += ldc;
        c20.Store(w); c21.Store(w + 8); w += ldc;
        c30.Store(w); c31.Store(w + 8); w += ldc;
        c40.Store(w); c41.Store(w + 8); w += ldc;
        c50.Store(w); c51.Store(w + 8);
    }

    /// <summary>B of a product in panels of 16 columns: depth step p of panel q (columns 16q..16q+16) at
    /// <c>Data + q·PanelStride + 16p</c>.</summary>
    internal readonly struct PackedPanels(float* data, int panelStride)
    {
        public readonly float* Data = data;
        public readonly int PanelStride = panelStride;
    }

    /// <summary>The start, 64-byte aligned, of a pinned buffer of at least <paramref name="length"/> floats held in
    /// <paramref name="buffer"/> (a thread-static field: each thread keeps its own), grown when too small.</summary>
    internal static float* PinnedBuffer(ref float[]? buffer, long length)
    {
        if (length > Array.MaxLength - 16)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"a scratch buffer of more than {Array.MaxLength - 16} floats");
        if (buffer is null || buffer.Length < length + 16)
            buffer = GC.AllocateUninitializedArray<float>((int)Math.Min(Array.MaxLength, Math.Max(length + 16, (buffer?.Length ?? 0) * 3L / 2)), pinned: true);
        return (float*)(((nint)Unsafe.AsPointer(ref buffer[0]) + 63) & ~(nint)63);
    }
}
