using ClockLM.Tensors;
using ClockLM.Tests.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>The matrix-matrix product against the matrix-vector product it batches: bit for bit, per vector.</summary>
public class MatMulTests
{
    public static TheoryData<GgmlType> Types => new()
    {
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0,
        GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
    };

    /// <summary>Paths to compare: the one this machine uses, and the scalar reference.</summary>
    private static IEnumerable<KernelPath> Paths() => new[] { KernelOptions.BestPath, KernelPath.Scalar }.Distinct();

    private static unsafe void AssertEqualsMatVec(GgmlType type, int rows, int cols, int count, int seed, KernelPath path, WorkerPool? pool)
    {
        var values = TestVectors.Gaussian(rows * cols, seed, scale: 0.05f);
        if (rows * cols >= 256) TestVectors.Awkward(rows * cols / 256 * 256, seed + 1).AsSpan(0, Math.Min(2048, rows * cols / 256 * 256)).CopyTo(values);
        byte[] w = Quantize.Matrix(type, values, rows, cols);
        var x = TestVectors.Gaussian(count * cols, seed + 2);
        if (count > 1) x[cols + 5] = 30f; // an activation outlier in one vector only
        var y = new float[count * rows];
        var expected = new float[rows];
        fixed (byte* p = w)
        {
            var view = new TensorView(type, rows, cols, p);
            var kernels = new KernelOptions { Path = path };
            MatMul.Multiply(view, x, y, count, pool, kernels);
            for (int t = 0; t < count; t++)
            {
                MatVec.Multiply(view, x.AsSpan(t * cols, cols), expected, null, kernels);
                for (int r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                        $"{type} {rows}x{cols} x{count} {path} pool {pool is not null}: vector {t} row {r}: {y[t * rows + r]} vs matvec {expected[r]}");
            }
        }
    }

    [Theory, MemberData(nameof(Types))]
    public void EveryVectorEqualsMatVecBitForBit(GgmlType type)
    {
        int block = GgmlTypeInfo.BlockSize(type);
        // Block counts: a tail after whole eight-block steps, exactly eight, fewer than eight; float rows get odd tails.
        var shapes = block == 1
            ? new[] { (7, 296), (5, 37), (3, 64) }
            : block == 32 ? new[] { (11, 37 * 32), (9, 8 * 32), (5, 3 * 32) } : new[] { (11, 3 * 256), (4, 256) };
        foreach (var path in Paths())
            foreach (var (rows, cols) in shapes)
                foreach (int count in new[] { 1, 2, 3, 4, 5, 9, 17 })
                    AssertEqualsMatVec(type, rows, cols, count, seed: rows * 31 + count, path, pool: null);
    }

    /// <summary>
    /// Products that read one <see cref="ProductInput"/> one after another (q, k, v; gate, up) quantize it once: each
    /// product after the first reuses the 8-bit blocks, and the packed layouts, that an earlier product of the input
    /// made, of whatever type, packed or not; loading another input forgets them. Every product must equal its own
    /// MatVec bit for bit, whatever ran before it; a stale reuse (another input's blocks) would not. Counts above
    /// <see cref="MatMul.MaxVectors"/> run in slices that keep their own forms.
    /// </summary>
    [Fact]
    public unsafe void SharedInputProductsEqualMatVecBitForBit()
    {
        const int cols = 512, rows = 24;
        var steps = new (GgmlType Type, int Count, bool Packed)[]
        {
            (GgmlType.Q4_0, 4, true), (GgmlType.Q8_0, 4, true), (GgmlType.Q4_0, 4, false), (GgmlType.Q4_K, 4, false),
            (GgmlType.Q6_K, 4, false), (GgmlType.Q8_0, 4, true), (GgmlType.Q8_0, 9, true), (GgmlType.Q4_0, 9, true),
            (GgmlType.Q4_0, 5, true), (GgmlType.F16, 5, false), (GgmlType.Q4_0, 5, true), (GgmlType.Q4_1, 5, false),
            (GgmlType.Q8_0, 4, true), (GgmlType.Q4_0, 4, true), (GgmlType.Q4_0, 4, true), (GgmlType.Q8_0, 4, true),
            (GgmlType.Q5_0, 1, false), (GgmlType.Q5_0, 1, false), (GgmlType.Q8_0, 1, true), (GgmlType.Q4_0, 1, true),
            (GgmlType.Q8_0, 1, true), (GgmlType.Q8_0, 300, true), (GgmlType.Q4_K, 300, false), (GgmlType.Q4_0, 300, true),
        };
        const int most = 300;
        var x = TestVectors.Gaussian(most * cols, 5);
        var other = TestVectors.Gaussian(most * cols, 6);
        using var pool = new WorkerPool(1);
        var input = new ProductInput();
        fixed (float* px = x)
        fixed (float* pOther = other)
            for (int i = 0; i < steps.Length; i++)
            {
                var (type, count, packed) = steps[i];
                byte[] w = Quantize.Matrix(type, TestVectors.Gaussian(rows * cols, 100 + i, scale: 0.05f), rows, cols);
                var y = new float[count * rows];
                var expected = new float[rows];
                fixed (byte* p = w)
                {
                    var fileLayout = new TensorView(type, rows, cols, p);
                    var view = fileLayout;
                    byte[]? storage = null;
                    if (packed) (view, storage) = PackedRows.Pack(view);
                    if (i == 6 || i == 18)
                    {
                        // Another input in between, through the same object: the next products must not see its forms.
                        MatMul.Multiply(view, input.Load(pOther, count, cols), new float[count * rows], pool, KernelOptions.Best);
                        input.Load(px, count, cols);
                    }
                    else if (i == 0 || count != steps[i - 1].Count) input.Load(px, count, cols);
                    MatMul.Multiply(view, input, y, pool, KernelOptions.Best);
                    for (int t = 0; t < count; t++)
                    {
                        MatVec.Multiply(fileLayout, x.AsSpan(t * cols, cols), expected, null, KernelOptions.Best);
                        for (int r = 0; r < rows; r++)
                            Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                                $"step {i} ({type} x{count}, packed {packed}): vector {t} row {r}: {y[t * rows + r]} vs matvec {expected[r]}");
                    }
                    GC.KeepAlive(storage);
                }
            }
    }

    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    public void SplitAcrossAPoolEqualsMatVecBitForBit(GgmlType type)
    {
        using var pool = new WorkerPool(2);
        int cols = GgmlTypeInfo.BlockSize(type) == 256 ? 512 : 320;
        // Large enough for the pool to split the rows (at least 256 KB of weight bytes times vectors).
        foreach (int count in new[] { 2, 7, 12 })
            AssertEqualsMatVec(type, 301, cols, count, seed: count, KernelOptions.BestPath, pool);
    }

    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.F16)]
    public void MoreVectorsThanOnePassEqualMatVec(GgmlType type) =>
        AssertEqualsMatVec(type, 9, 256, MatMul.MaxVectors + 3, seed: 5, KernelOptions.BestPath, pool: null);

    /// <summary>
    /// K-quant super-blocks written byte by byte, so the extremes the eight-row kernels must sum without overflow occur:
    /// rows whose codes are all 15 (Q4_K) or 63 (Q6_K) with the largest scales (63; Q6_K -128 and 127), rows of random
    /// bytes, and activation vectors that quantize to all +127 or all -127.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    public unsafe void ExtremeKQuantBlocksEqualMatVecBitForBit(GgmlType type)
    {
        const int rows = 19, cols = 512;
        int blockBytes = type == GgmlType.Q4_K ? 144 : 210;
        var rng = new Random(7);
        var w = new byte[rows * cols / 256 * blockBytes];
        rng.NextBytes(w);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < cols / 256; b++)
            {
                var block = w.AsSpan((r * cols / 256 + b) * blockBytes, blockBytes);
                bool extreme = r % 3 == 0;
                if (type == GgmlType.Q4_K)
                {
                    BitConverter.TryWriteBytes(block, (Half)0.01f);
                    BitConverter.TryWriteBytes(block[2..], (Half)0.02f);
                    if (extreme) block[4..].Fill(0xFF); // scales and mins 63, codes 15
                }
                else
                {
                    BitConverter.TryWriteBytes(block[208..], (Half)0.01f);
                    if (extreme)
                    {
                        block[..192].Fill(0xFF); // codes 63
                        for (int g = 0; g < 16; g++) block[192 + g] = (byte)(r % 2 == 0 ? 0x80 : 0x7F); // scale -128 or 127
                    }
                }
            }
        const int count = 6;
        var x = TestVectors.Gaussian(count * cols, 3);
        x.AsSpan(0, cols).Fill(1f);          // every activation quantizes to 127
        x.AsSpan(cols, cols).Fill(-1f);      // and to -127
        for (int i = 0; i < cols; i++) x[2 * cols + i] = i % 2 == 0 ? 2f : -2f;
        var y = new float[count * rows];
        var expected = new float[rows];
        fixed (byte* p = w)
        {
            var view = new TensorView(type, rows, cols, p);
            foreach (var path in Paths())
            {
                var kernels = new KernelOptions { Path = path };
                MatMul.Multiply(view, x, y, count, null, kernels);
                for (int t = 0; t < count; t++)
                {
                    MatVec.Multiply(view, x.AsSpan(t * cols, cols), expected, null, kernels);
                    for (int r = 0; r < rows; r++)
                        Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                            $"{type} {path}: vector {t} row {r}: {y[t * rows + r]} vs matvec {expected[r]}");
                }
            }
        }
        // The all-+127 vector against rows of all-maximum codes gives a result far from zero (no silent wrap to 0 or NaN).
        Assert.True(float.IsFinite(y[0]) && Math.Abs(y[0]) > 1f, $"row 0 with all +127 activations: {y[0]}");
    }

    [Fact]
    public void ShapeErrorsNameTheSizes()
    {
        var w = GC.AllocateArray<byte>(4 * 8 * 4, pinned: true);
        var e = Assert.Throws<ArgumentException>(() => MatMul.Multiply(TensorView.Pinned(GgmlType.F32, 4, 8, w), new float[15], new float[8], 2));
        Assert.Contains("4x8", e.Message);
        Assert.Contains("15", e.Message);
    }
}
