using ClockLM.Tensors;
using ClockLM.Tests.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>Weights packed eight rows at a time at load: every product on the packed copy equals the product on the
/// file layout bit for bit, for one vector (decode) and for many (prompt chunks, batched decoding).</summary>
public class PackedRowsTests
{
    private static unsafe void AssertPackedEqualsUnpacked(GgmlType type, int rows, int cols, int count, int seed, WorkerPool? pool)
    {
        if (!KernelPaths.CanRun(KernelPath.Vector256)) return; // the packed kernels need AVX2 (the machines that run ClockLM's tests have it)
        var values = TestVectors.Gaussian(rows * cols, seed, scale: 0.05f);
        // Rows at the extremes: all codes at the top of the range, and the awkward values of the quantizer tests.
        values.AsSpan(0, cols).Fill(0.05f);
        TestVectors.Awkward(Math.Min(2048, (rows - 1) * cols / 256 * 256), seed + 1).CopyTo(values.AsSpan(cols));
        byte[] w = Quantize.Matrix(type, values, rows, cols);
        var x = TestVectors.Gaussian(count * cols, seed + 2);
        x[cols - 1] = 40f; // an outlier: one block quantizes to ±127
        var y = new float[count * rows];
        var expected = new float[rows];
        fixed (byte* p = w)
        {
            var view = new TensorView(type, rows, cols, p);
            Assert.True(PackedRows.CanPack(view));
            var (packed, storage) = PackedRows.Pack(view);
            Assert.Equal(w.Length, storage.Length); // the same bytes, rearranged
            if (count == 1) MatVec.Multiply(packed, x, y, pool, KernelPath.Vector256);
            else MatMul.Multiply(packed, x, y, count, pool, KernelPath.Vector256);
            for (int t = 0; t < count; t++)
            {
                MatVec.Multiply(view, x.AsSpan(t * cols, cols), expected, null, KernelPath.Vector256);
                for (int r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                        $"{type} {rows}x{cols} x{count} pool {pool is not null}: vector {t} row {r}: packed {y[t * rows + r]} vs {expected[r]}");
            }
            GC.KeepAlive(storage);
        }
    }

    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void PackedProductsEqualTheFileLayoutBitForBit(GgmlType type)
    {
        // Block counts: fewer than four, a tail after whole four-block steps, many.
        foreach (var (rows, cols) in new[] { (8, 3 * 32), (16, 37 * 32), (24, 64 * 32) })
            foreach (int count in new[] { 1, 2, 3, 4, 9 })
                AssertPackedEqualsUnpacked(type, rows, cols, count, seed: rows + count, pool: null);
    }

    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void PackedProductsSplitAcrossAPoolEqualTheFileLayout(GgmlType type)
    {
        using var pool = new WorkerPool(2);
        // At least 256 KB of weight bytes times vectors, so the pool splits the octets.
        foreach (int count in new[] { 1, 4 })
            AssertPackedEqualsUnpacked(type, 8 * 131, 2048, count, seed: count, pool);
    }

    [Fact]
    public unsafe void OnlyWholeOctetsOfQ4_0AndQ8_0ArePacked()
    {
        var bytes = new byte[16 * 1024];
        fixed (byte* p = bytes)
        {
            Assert.False(PackedRows.CanPack(new TensorView(GgmlType.Q4_0, 12, 64, p)));  // 12 rows: not whole octets
            Assert.False(PackedRows.CanPack(new TensorView(GgmlType.Q4_K, 8, 256, p)));
            Assert.False(PackedRows.CanPack(new TensorView(GgmlType.F16, 8, 64, p)));
            Assert.Equal(KernelPaths.CanRun(KernelPath.Vector256), PackedRows.CanPack(new TensorView(GgmlType.Q8_0, 16, 64, p)));
        }
        var twelveRows = TensorView.Pinned(GgmlType.Q4_0, 12, 64, GC.AllocateArray<byte>(12 * 36, pinned: true));
        Assert.Throws<ArgumentException>(() => PackedRows.Pack(twelveRows));
    }
}
