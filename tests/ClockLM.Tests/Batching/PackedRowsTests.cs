using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tests.Tensors;

namespace ClockLM.Tests.Batching;

/// <summary>Weights packed eight rows at a time at load: every product on the packed copy equals the product on the
/// file layout bit for bit, for one vector (decode) and for many (prompt chunks, batched decoding).</summary>
public class PackedRowsTests
{
    /// <summary>The 256-bit path with the packed Q4_0 kernel <paramref name="width"/> bits wide.</summary>
    private static KernelOptions Packed(int width) => new() { Path = KernelPath.Vector256, PackedWidth = width };

    private static unsafe void AssertPackedEqualsUnpacked(GgmlType type, int rows, int cols, int count, int seed, WorkerPool? pool, KernelOptions kernels)
    {
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
            // The same bytes, rearranged (Q4_0 rows of an odd number of blocks: one zero block more per octet).
            int padding = type == GgmlType.Q4_0 && cols / 32 % 2 == 1 ? rows * 18 : 0;
            Assert.Equal(w.Length + padding, PackedRows.PackedBytes(view));
            if (count == 1) MatVec.Multiply(packed, x, y, pool, kernels);
            else MatMul.Multiply(packed, x, y, count, pool, kernels);
            for (int t = 0; t < count; t++)
            {
                MatVec.Multiply(view, x.AsSpan(t * cols, cols), expected, null, kernels);
                for (int r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                        $"{type} {rows}x{cols} x{count} pool {pool is not null} {kernels}: vector {t} row {r}: packed {y[t * rows + r]} vs {expected[r]}");
            }
            GC.KeepAlive(storage);
        }
    }

    // Each check below runs with the packed Q4_0 kernel on 256-bit registers (every AVX2 machine) and, as a test of
    // its own that is skipped where AVX-512BW is missing, on 512-bit ones.

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void PackedProductsEqualTheFileLayoutBitForBit(GgmlType type) => PackedProducts(type, Packed(256));

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void PackedProductsEqualTheFileLayoutBitForBit512(GgmlType type) => PackedProducts(type, Packed(512));

    private static void PackedProducts(GgmlType type, KernelOptions kernels)
    {
        // Block counts: one, fewer than four, odd (Q4_0: the last pair is half empty), a tail after whole four-block
        // steps, many; Q4_0 rows of more than one column panel of 64 blocks: one block more, and two panels and a half-empty pair.
        foreach (var (rows, cols) in new[] { (8, 32), (8, 3 * 32), (16, 37 * 32), (24, 64 * 32), (8, 6 * 32), (8, 65 * 32), (16, 133 * 32) })
            foreach (int count in new[] { 1, 2, 3, 4, 5, 9 })
                AssertPackedEqualsUnpacked(type, rows, cols, count, seed: rows + count, pool: null, kernels);
    }

    /// <summary>
    /// Packed kernels widen the weights' f16 scales without their exponent rebias and take the activations' scales
    /// times 2^112: every product of the two must still round like the true scales' product. Block scales at the edges
    /// of f16 (the smallest subnormal, subnormals, the smallest normal, 65504, zero, negative) meet activation vectors
    /// from 1e-5 to 8.3e6 in magnitude (block scales from f16 subnormals to near 65504), for one vector and for four and
    /// five. Infinite and NaN scales cannot be packed.
    /// </summary>
    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void ExtremeScalesGiveTheFileLayoutsProductsBitForBit(GgmlType type) => ExtremeScales(type, Packed(256));

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void ExtremeScalesGiveTheFileLayoutsProductsBitForBit512(GgmlType type) => ExtremeScales(type, Packed(512));

    private static unsafe void ExtremeScales(GgmlType type, KernelOptions kernels)
    {
        const int rows = 16, cols = 8 * 32;
        int blockBytes = type == GgmlType.Q4_0 ? 18 : 34, rowBytes = cols / 32 * blockBytes;
        byte[] w = Quantize.Matrix(type, TestVectors.Gaussian(rows * cols, 9, scale: 0.05f), rows, cols);
        ushort[] edges = [0x0001, 0x0003, 0x03FF, 0x0400, 0x7BFF, 0x0000, 0x8001, 0xFBFF, 0x3C00, 0xBC00, 0x0200];
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < cols / 32; b++)
                BitConverter.TryWriteBytes(w.AsSpan(r * rowBytes + b * blockBytes, 2), edges[(r * 3 + b) % edges.Length]);
        foreach (int count in new[] { 1, 4, 5 })
        {
            var x = TestVectors.Gaussian(count * cols, count);
            float[] magnitudes = [1e-5f, 1e-3f, 1f, 300f, 7e4f, 8.3e6f];
            for (int t = 0; t < count; t++)
            {
                Span<float> xt = x.AsSpan(t * cols, cols);
                float m = magnitudes[(t + 2 * count) % magnitudes.Length];
                for (int i = 0; i < cols; i++) xt[i] = Math.Clamp(xt[i], -2.5f, 2.5f) * m / 2.5f;
            }
            var y = new float[count * rows];
            var expected = new float[rows];
            fixed (byte* p = w)
            {
                var view = new TensorView(type, rows, cols, p);
                var (packed, storage) = PackedRows.Pack(view);
                if (count == 1) MatVec.Multiply(packed, x, y, null, kernels);
                else MatMul.Multiply(packed, x, y, count, null, kernels);
                for (int t = 0; t < count; t++)
                {
                    MatVec.Multiply(view, x.AsSpan(t * cols, cols), expected, null, kernels);
                    for (int r = 0; r < rows; r++)
                    {
                        Assert.True(float.IsFinite(expected[r]), $"{type} x{count}: vector {t} row {r} is {expected[r]}");
                        Assert.True(BitConverter.SingleToInt32Bits(expected[r]) == BitConverter.SingleToInt32Bits(y[t * rows + r]),
                            $"{type} x{count}: vector {t} row {r}: packed {y[t * rows + r]} vs {expected[r]}");
                    }
                }
                GC.KeepAlive(storage);
            }
        }
        foreach (ushort bad in new ushort[] { 0x7C00, 0xFC00, 0x7E00 })
        {
            var copy = (byte[])w.Clone();
            BitConverter.TryWriteBytes(copy.AsSpan(5 * rowBytes + 2 * blockBytes, 2), bad);
            fixed (byte* p = copy)
            {
                var view = new TensorView(type, rows, cols, p);
                var error = Assert.Throws<ArgumentException>(() => PackedRows.Pack(view));
                Assert.Contains("infinite or NaN", error.Message);
            }
        }
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void PackedProductsSplitAcrossAPoolEqualTheFileLayout(GgmlType type) => SplitAcrossAPool(type, Packed(256));

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q8_0)]
    public void PackedProductsSplitAcrossAPoolEqualTheFileLayout512(GgmlType type) => SplitAcrossAPool(type, Packed(512));

    private static void SplitAcrossAPool(GgmlType type, KernelOptions kernels)
    {
        using var pool = new WorkerPool(2);
        // At least 256 KB of weight bytes times vectors, so the pool splits the octets.
        foreach (int count in new[] { 1, 4, 6 })
            AssertPackedEqualsUnpacked(type, 8 * 131, 2048, count, seed: count, pool, kernels);
        // Rows of three column panels (Q4_0), more octets than one tile of them.
        AssertPackedEqualsUnpacked(type, 8 * 37, 160 * 32, 5, seed: 7, pool, kernels);
    }

    /// <summary>A model file's Q4_0 and Q8_0 matrices are packed as they load (read from the file, not the map): every
    /// packed matrix gives the products of its file bytes, and the matrices of other types are left alone.</summary>
    [TheoryNeeds(Cpu.Avx2)]
    [InlineData("Q4_0")]
    [InlineData("Q8_0")]
    [InlineData("Q4_K_M")]
    public unsafe void LoadedModelsPackTheirQ4_0AndQ8_0Matrices(string scheme)
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        int dim = scheme == "Q4_K_M" ? 256 : 320;
        var config = new LlamaConfig(Dim: dim, HiddenDim: 2 * dim, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 304, ContextLength: 32);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(304), QuantizationScheme.Parse(scheme), std: 0.05f);
        using var model = Model.Load(path);
        var matrices = model.Weights.Layers.SelectMany(l => new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.W1, l.W2, l.W3 }).Append(model.Weights.Output).ToList();
        Assert.NotEmpty(matrices);
        int packed = 0;
        foreach (var w in matrices)
        {
            if (w.Packed == null)
            {
                Assert.False(w.Type is GgmlType.Q4_0 or GgmlType.Q8_0, $"a {w.Rows}x{w.Cols} {w.Type} matrix was not packed");
                continue;
            }
            packed++;
            var fileLayout = new TensorView(w.Type, w.Rows, w.Cols, w.Data);
            var x = TestVectors.Gaussian(w.Cols, seed: packed);
            var expected = new float[w.Rows];
            var actual = new float[w.Rows];
            MatVec.Multiply(fileLayout, x, expected, null, Packed(256));
            MatVec.Multiply(w, x, actual, null, Packed(256));
            Assert.Equal(expected, actual);
        }
        Assert.Equal(scheme == "Q4_K_M" ? 0 : matrices.Count, packed);
    }

    /// <summary>A Q4_0 matrix whose file holds an infinite block scale loads in its file layout (the packed kernels
    /// assume finite scales); the model's other matrices are packed, and its products are those of the file bytes.</summary>
    [FactNeeds(Cpu.Avx2)]
    public unsafe void AMatrixWithAnInfiniteScaleStaysInItsFileLayout()
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        var config = new LlamaConfig(Dim: 320, HiddenDim: 640, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 304, ContextLength: 32);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(304), QuantizationScheme.Parse("Q4_0"), std: 0.05f);
        long at;
        using (var file = GgufFile.Open(path))
        {
            var info = file.Tensors.Single(t => t.Name == "blk.1.ffn_down.weight");
            Assert.Equal(GgmlType.Q4_0, info.Type);
            at = file.DataOffset + info.Offset + 3 * 18; // row 0, block 3: its f16 scale
        }
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            stream.Position = at;
            stream.Write([0x00, 0x7C]); // +infinity
        }
        using var model = Model.Load(path);
        var down = model.Weights.Layers[1].W2;
        Assert.True(down.Packed == null, "the matrix with an infinite scale was packed");
        var fallback = Assert.Single(model.Weights.PackingFallbacks); // counted, with its name and why
        Assert.Contains("blk.1.ffn_down.weight", fallback);
        Assert.Contains("infinite or NaN", fallback);
        Assert.True(model.Weights.Layers[1].W1.Packed != null && model.Weights.Layers[0].W2.Packed != null);
        var x = TestVectors.Gaussian(down.Cols, seed: 4);
        var y = new float[down.Rows];
        MatVec.Multiply(down, x, y, null, Packed(256));
        Assert.True(float.IsInfinity(y[0]) || float.IsNaN(y[0]), $"row 0 holds an infinite scale but gave {y[0]}");
        Assert.True(y.Skip(1).All(float.IsFinite));
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
            Assert.Equal(KernelOptions.CanRun(KernelPath.Vector256), PackedRows.CanPack(new TensorView(GgmlType.Q8_0, 16, 64, p)));
        }
        var twelveRows = TensorView.Pinned(GgmlType.Q4_0, 12, 64, GC.AllocateArray<byte>(12 * 36, pinned: true));
        Assert.Throws<ArgumentException>(() => PackedRows.Pack(twelveRows));
    }
}
