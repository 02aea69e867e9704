using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>
/// Decoding's F16 and BF16 row loops (HalfMatVec), 256-bit and with pairs of accumulators in 512-bit registers, must
/// give every row the bits of the per-row dot product they replace (<see cref="FloatDots.Half16x256"/>), over rows
/// shorter than one 32-value step, with steps of eight and scalar tails, one row and odd row counts, split across
/// threads, and (F16) x too large to be scaled by 2^112; the same for matrices laid out in panels of 2048 columns
/// (<see cref="HalfPanels"/>), read by the one-vector loop and by the multi-vector tiles, over widths that end inside a
/// panel, on a panel's edge, and past several panels, and without whole 32-value steps in the last panel.
/// </summary>
public class HalfMatVecTests
{
    private static readonly int[] Widths = [1, 7, 8, 31, 32, 33, 47, 1195, 2048];

    /// <summary>Random finite halves (every exponent from subnormal to the largest finite, both signs), or bfloat16
    /// values with exponents 2^-27..2^23 (no overflow in the sums).</summary>
    private static ushort[] Values(GgmlType type, int count, int seed)
    {
        var rng = new Random(seed);
        var h = new ushort[count];
        for (int i = 0; i < count; i++)
            h[i] = type == GgmlType.F16
                ? (ushort)((rng.Next(2) << 15) | (rng.Next(31) << 10) | rng.Next(1024))
                : (ushort)((rng.Next(2) << 15) | (rng.Next(100, 151) << 7) | rng.Next(128));
        return h;
    }

    private static unsafe float RowDot(GgmlType type, ushort[] values, int row, int cols, float[] x)
    {
        fixed (ushort* p = values)
        fixed (float* px = x)
            return FloatDots.Half16x256(p + (long)row * cols, px, cols, bf16: type == GgmlType.BF16);
    }

    /// <summary>Three products of one view (an F16 matrix's first one watches for infinities, the later ones run the
    /// loop under test; one laid out in panels runs the panel loop from the first); every row of each must equal the row
    /// dot bit for bit.</summary>
    private static unsafe void AssertRowsEqualRowDots(GgmlType type, int rows, int cols, float[] x, int width, WorkerPool? pool = null,
        bool panels = false)
    {
        var values = Values(type, rows * cols, seed: rows * 31 + cols);
        var kernels = new KernelOptions { Path = KernelPath.Vector256, PackedWidth = width };
        var laidOut = new ushort[values.Length];
        fixed (ushort* p = values)
        fixed (ushort* q = laidOut)
        {
            var view = new TensorView(type, rows, cols, (byte*)p);
            if (panels)
            {
                Assert.True(HalfPanels.Pack(type, cols, (byte*)p, view.RowBytes, 0, rows, rows, (byte*)q));
                view = view.WithPacked((byte*)q);
                Assert.True(HalfPanels.Used(view, kernels));
            }
            for (int product = 0; product < 3; product++)
            {
                var y = new float[rows];
                MatVec.Multiply(view, x, y, pool, kernels);
                if (type == GgmlType.F16 && !panels) Assert.True(view.Halves!.AllFinite);
                for (int r = 0; r < rows; r++)
                {
                    float expected = RowDot(type, values, r, cols, x);
                    Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(y[r]),
                        $"{type} {rows}x{cols}{(panels ? " in panels" : "")} on {kernels}, product {product}, row {r}: {y[r]} vs row dot {expected}");
                }
            }
        }
    }

    private static void OddShapes(GgmlType type, int width)
    {
        foreach (int cols in Widths)
            foreach (int rows in new[] { 1, 3, 9 })
                AssertRowsEqualRowDots(type, rows, cols, TestVectors.Gaussian(cols, cols + rows), width);
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Loop256_OddShapes_EqualTheRowDotBitForBit(GgmlType type) => OddShapes(type, 256);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Loop512_OddShapes_EqualTheRowDotBitForBit(GgmlType type) => OddShapes(type, 512);

    /// <summary>x with a value of 2^16 or more cannot be scaled by 2^112: the F16 loops scale the widened halves instead,
    /// with the same bits.</summary>
    private static void TooLargeToScale(int width)
    {
        foreach (int cols in new[] { 33, 1195 })
        {
            var x = TestVectors.Gaussian(cols, cols);
            x[cols / 2] = 70000f;
            AssertRowsEqualRowDots(GgmlType.F16, 5, cols, x, width);
        }
    }

    [FactNeeds(Cpu.Avx2)]
    public void F16Loop256_ActivationsTooLargeToScale_EqualTheRowDotBitForBit() => TooLargeToScale(256);

    [FactNeeds(Cpu.Avx512BW)]
    public void F16Loop512_ActivationsTooLargeToScale_EqualTheRowDotBitForBit() => TooLargeToScale(512);

    /// <summary>A matrix of 67 rows of 2048 values (268 KB) is split across the pool's threads in uneven chunks.</summary>
    private static void SplitAcrossThreads(GgmlType type, int width)
    {
        using var pool = new WorkerPool(2);
        AssertRowsEqualRowDots(type, 67, 2048, TestVectors.Gaussian(2048, 3), width, pool);
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Loop256_RowsSplitAcrossThreads_EqualTheRowDotBitForBit(GgmlType type) => SplitAcrossThreads(type, 256);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Loop512_RowsSplitAcrossThreads_EqualTheRowDotBitForBit(GgmlType type) => SplitAcrossThreads(type, 512);

    /// <summary>Widths that end inside the first panel, on its edge, a few values past it (no whole 32-value step in
    /// the last panel), past two panels with steps of eight and a scalar tail, and tinyllama's 5632.</summary>
    private static readonly int[] PanelWidths = [33, 2048, 2049, 2083, 4096 + 32 + 8 + 3, 5632, 3 * 2048 + 7];

    private static void PanelShapes(GgmlType type, int width)
    {
        foreach (int cols in PanelWidths)
            foreach (int rows in new[] { 1, 3, 9 })
                AssertRowsEqualRowDots(type, rows, cols, TestVectors.Gaussian(cols, cols + rows), width, panels: true);
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void PanelLoop256_OddShapes_EqualTheRowDotBitForBit(GgmlType type) => PanelShapes(type, 256);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void PanelLoop512_OddShapes_EqualTheRowDotBitForBit(GgmlType type) => PanelShapes(type, 512);

    /// <summary>Panels with x too large to scale (the F16 loop then scales the widened halves).</summary>
    [FactNeeds(Cpu.Avx2)]
    public void PanelLoops_ActivationsTooLargeToScale_EqualTheRowDotBitForBit()
    {
        var x = TestVectors.Gaussian(4107, 5);
        x[3000] = 70000f;
        AssertRowsEqualRowDots(GgmlType.F16, 5, 4107, x, 256, panels: true);
        if (System.Runtime.Intrinsics.X86.Avx512BW.IsSupported) AssertRowsEqualRowDots(GgmlType.F16, 5, 4107, x, 512, panels: true);
    }

    /// <summary>67 rows of 5632 values in panels (754 KB) split across two threads in uneven chunks, which cut the
    /// groups of rows that go through the panels together.</summary>
    private static void PanelsSplitAcrossThreads(GgmlType type, int width)
    {
        using var pool = new WorkerPool(2);
        AssertRowsEqualRowDots(type, 67, 5632, TestVectors.Gaussian(5632, 3), width, pool, panels: true);
        AssertRowsEqualRowDots(type, 131, 4107, TestVectors.Gaussian(4107, 4), width, pool, panels: true);
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void PanelLoop256_RowsSplitAcrossThreads_EqualTheRowDotBitForBit(GgmlType type) => PanelsSplitAcrossThreads(type, 256);

    [TheoryNeeds(Cpu.Avx512BW)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void PanelLoop512_RowsSplitAcrossThreads_EqualTheRowDotBitForBit(GgmlType type) => PanelsSplitAcrossThreads(type, 512);

    /// <summary>Several vectors at once (the tiles widen each row from its panels): every (row, vector) result equals
    /// that of the same matrix in its file layout bit for bit, for 2, 4 and 7 vectors, 256 and 512 bits wide.</summary>
    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public unsafe void PanelTiles_EqualTheFileLayoutsTilesBitForBit(GgmlType type)
    {
        foreach (int width in System.Runtime.Intrinsics.X86.Avx512BW.IsSupported ? new[] { 256, 512 } : [256])
            foreach (var (rows, cols) in new[] { (9, 4107), (13, 5632) })
                foreach (int count in new[] { 2, 4, 7 })
                {
                    var kernels = new KernelOptions { Path = KernelPath.Vector256, PackedWidth = width };
                    var values = Values(type, rows * cols, seed: rows + cols);
                    var laidOut = new ushort[values.Length];
                    var x = TestVectors.Gaussian(count * cols, count);
                    var (expected, actual) = (new float[count * rows], new float[count * rows]);
                    fixed (ushort* p = values)
                    fixed (ushort* q = laidOut)
                    {
                        var view = new TensorView(type, rows, cols, (byte*)p);
                        Assert.True(HalfPanels.Pack(type, cols, (byte*)p, view.RowBytes, 0, rows, rows, (byte*)q));
                        MatMul.Multiply(view, x, expected, count, null, kernels);
                        MatMul.Multiply(view.WithPacked((byte*)q), x, actual, count, null, kernels);
                    }
                    for (int i = 0; i < expected.Length; i++)
                        Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                            $"{type} {rows}x{cols} times {count} vectors, {width} bits, result {i}: panels {actual[i]}, file layout {expected[i]}");
                }
    }

    /// <summary>An F16 matrix with an infinity or a NaN anywhere (in a 32-value step or in a row's scalar tail) is
    /// refused by the panel layout, whose loop assumes finite halves; BF16 is laid out whatever its values.</summary>
    [Fact]
    public unsafe void Panels_RefuseF16MatricesWithInfinitiesOrNaNs()
    {
        const int rows = 3, cols = 4107;
        foreach (var (at, bits) in new[] { (cols + 100, (ushort)0x7c00), (2 * cols - 1, (ushort)0xfe01), (5, (ushort)0xfc00) })
        {
            var values = Values(GgmlType.F16, rows * cols, seed: at);
            values[at] = bits;
            var laidOut = new ushort[values.Length];
            fixed (ushort* p = values)
            fixed (ushort* q = laidOut)
            {
                Assert.False(HalfPanels.Pack(GgmlType.F16, cols, (byte*)p, 2 * cols, 0, rows, rows, (byte*)q), $"half {bits:x4} at {at}");
                Assert.True(HalfPanels.Pack(GgmlType.BF16, cols, (byte*)p, 2 * cols, 0, rows, rows, (byte*)q));
            }
        }
    }
}
