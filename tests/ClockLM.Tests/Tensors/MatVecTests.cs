using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

public class MatVecTests
{
    public static TheoryData<GgmlType> QuantizedTypes => new()
    {
        GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1,
        GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
    };

    public static TheoryData<GgmlType> FloatTypes => new() { GgmlType.F32, GgmlType.F16, GgmlType.BF16 };

    /// <summary>Vector paths this machine can run (Vector128 and, for floats, Vector512 run everywhere: software fallback if not accelerated).</summary>
    private static IEnumerable<KernelPath> VectorPaths() =>
        new[] { KernelPath.Vector128, KernelPath.Vector256, KernelPath.Vector512 }.Where(KernelOptions.CanRun);

    /// <summary>A rows x cols weight matrix of <paramref name="type"/> (odd row counts, many blocks) and an activation vector.</summary>
    private static (byte[] W, float[] X) Problem(GgmlType type, int rows, int cols, int seed)
    {
        var values = TestVectors.Gaussian(rows * cols, seed, scale: 0.05f);
        // Sprinkle the awkward blocks into the first rows' values (zeros, constants, outliers, tiny).
        var awkward = TestVectors.Awkward(Math.Min(rows * cols / 256 * 256, 2048), seed + 1);
        awkward.CopyTo(values, 0);
        var x = TestVectors.Gaussian(cols, seed + 2);
        x[3] = 25f; // an activation outlier, like the massive activations of real models
        return (Quantize.Matrix(type, values, rows, cols), x);
    }

    private static unsafe float[] Run(GgmlType type, byte[] w, int rows, int cols, float[] x, KernelPath path, WorkerPool? pool = null)
    {
        var y = new float[rows];
        fixed (byte* p = w)
            MatVec.Multiply(new TensorView(type, rows, cols, p), x, y, pool, new KernelOptions { Path = path });
        return y;
    }

    [Theory, MemberData(nameof(QuantizedTypes))]
    public void VectorPaths_EqualScalarReferenceBitForBit(GgmlType type)
    {
        int block = GgmlTypeInfo.BlockSize(type);
        // 37 blocks: eight-block groups plus a tail; 24: a 768-wide row, whole groups only; 9: one group and one block.
        foreach (var (rows, blocks) in new[] { (7, 37), (13, block == 32 ? 64 : 8), (1, 1), (3, 24), (2, 9) })
        {
            int cols = blocks * block;
            var (w, x) = Problem(type, rows, cols, seed: rows * 100 + blocks);
            var reference = Run(type, w, rows, cols, x, KernelPath.Scalar);
            foreach (var path in VectorPaths())
            {
                var y = Run(type, w, rows, cols, x, path);
                for (int r = 0; r < rows; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(reference[r]) == BitConverter.SingleToInt32Bits(y[r]),
                        $"{type} {rows}x{cols} {path} row {r}: {y[r]} vs scalar {reference[r]}");
            }
        }
    }

    /// <summary>
    /// The scalar reference against an independent computation: dot(dequantized row, dequantized 8-bit activations)
    /// in double. Both compute the same real number up to float rounding in the reference's scaling and summation,
    /// bounded here by 1e-5 of Σ|w x| (tens of float operations per block, each relatively 6e-8). For the formats with
    /// a min (Q4_1, Q5_1) the min multiplies the activation block's stored sum s = f16(d Σq), as in llama.cpp's Q8_1,
    /// rather than the sum of the dequantized activations.
    /// </summary>
    [Theory, MemberData(nameof(QuantizedTypes))]
    public void ScalarReference_EqualsDequantizedDot(GgmlType type)
    {
        int rows = 5, cols = GgmlTypeInfo.BlockSize(type) == 32 ? 32 * 24 : 256 * 3;
        var (w, x) = Problem(type, rows, cols, seed: 11);
        var y = Run(type, w, rows, cols, x, KernelPath.Scalar);
        var xq = DequantizedActivations(type, x);
        var row = new float[cols];
        int rowBytes = (int)GgmlTypeInfo.RowBytes(type, cols);
        bool hasMin = type is GgmlType.Q4_1 or GgmlType.Q5_1;
        int blockBytes = (int)GgmlTypeInfo.RowBytes(type, 32);
        for (int r = 0; r < rows; r++)
        {
            Dequantize.Row(type, w.AsSpan(r * rowBytes, rowBytes), row);
            double exact = 0, magnitude = 0;
            for (int i = 0; i < cols; i++)
            {
                double min = hasMin ? (double)BitConverter.ToHalf(w, r * rowBytes + i / 32 * blockBytes + 2) : 0;
                exact += (row[i] - min) * xq[i];
                magnitude += Math.Abs((double)row[i] * xq[i]);
            }
            if (hasMin)
                for (int b = 0; b < cols / 32; b++)
                    exact += (double)BitConverter.ToHalf(w, r * rowBytes + b * blockBytes + 2) * StoredSum(x.AsSpan(32 * b, 32));
            Assert.True(Math.Abs(y[r] - exact) <= 1e-5 * magnitude + 1e-30, $"{type} row {r}: {y[r]} vs {exact} (Σ|wx| {magnitude})");
        }
    }

    /// <summary>One 32-value activation block by the definition: d = amax / 127, q = round(x * 127 / amax) with halves to even.</summary>
    private static (float D, int[] Q) ActivationBlock(ReadOnlySpan<float> x)
    {
        float amax = 0;
        foreach (float v in x) amax = Math.Max(amax, Math.Abs(v));
        float id = amax != 0 ? 127f / amax : 0;
        var q = new int[x.Length];
        for (int i = 0; i < x.Length; i++) q[i] = (int)MathF.Round(x[i] * id, MidpointRounding.ToEven);
        return (amax / 127, q);
    }

    /// <summary>s = f16(d Σq) of a 32-value activation block.</summary>
    private static double StoredSum(ReadOnlySpan<float> x)
    {
        var (d, q) = ActivationBlock(x);
        return (double)(Half)(d * q.Sum());
    }

    /// <summary>x as the kernels see it, rebuilt from the formats' definitions (Q8_0 for 32-blocks, ggml's Q8_K for 256-blocks).</summary>
    private static float[] DequantizedActivations(GgmlType type, float[] x)
    {
        if (GgmlTypeInfo.BlockSize(type) == 32)
        {
            var back = new float[x.Length];
            for (int b = 0; b < x.Length / 32; b++)
            {
                var (d, q) = ActivationBlock(x.AsSpan(32 * b, 32));
                float d16 = (float)(Half)d;
                for (int i = 0; i < 32; i++) back[32 * b + i] = d16 * q[i];
            }
            return back;
        }
        var qk = GgmlNative.QuantizeRow(GgmlType.Q8_K, x);
        return GgmlNative.DequantizeRow(GgmlType.Q8_K, qk, x.Length);
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void FloatVectorPaths_WithinSummationOrderBound(GgmlType type)
    {
        // Reordered float sums each lie within γ_n Σ|w x| of the exact value (γ_n = n u / (1 - n u), u = 2^-24),
        // so two orders differ by at most twice that. Odd column counts exercise the scalar tails.
        foreach (var (rows, cols) in new[] { (9, 1187), (3, 4096), (5, 31) })
        {
            var (w, x) = Problem(type, rows, cols, seed: cols);
            var reference = Run(type, w, rows, cols, x, KernelPath.Scalar);
            var row = new float[cols];
            int rowBytes = (int)GgmlTypeInfo.RowBytes(type, cols);
            double u = Math.Pow(2, -24), gamma = cols * u / (1 - cols * u);
            foreach (var path in VectorPaths())
            {
                var y = Run(type, w, rows, cols, x, path);
                for (int r = 0; r < rows; r++)
                {
                    Dequantize.Row(type, w.AsSpan(r * rowBytes, rowBytes), row);
                    double magnitude = 0;
                    for (int i = 0; i < cols; i++) magnitude += Math.Abs((double)row[i] * x[i]);
                    Assert.True(Math.Abs(y[r] - reference[r]) <= 2 * gamma * magnitude,
                        $"{type} {rows}x{cols} {path} row {r}: {y[r]} vs scalar {reference[r]}");
                }
            }
        }
    }

    /// <summary>The packed integer kernels, the matrix-matrix tiles and the streaming F32/F16 rows are 256-bit: a machine
    /// with AVX2 and FMA runs them whatever wider vectors it has (the 512-bit float path, chosen on AVX-512 machines
    /// before, decoded a quarter to a third slower and read prompts several times slower). Nothing overrides it: other
    /// kernels are passed in (<see cref="KernelOptions"/>).</summary>
    [Fact]
    public void BestPathIsThe256BitOneWhereAvx2AndFmaRun()
    {
        var expected = System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported
            ? KernelPath.Vector256
            : System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated ? KernelPath.Vector128 : KernelPath.Scalar;
        Assert.Equal(expected, KernelOptions.BestPath);
        Assert.Equal(expected, KernelOptions.Best.Path);
    }

    [Fact]
    public void F16Widening_HandlesSubnormalsInfinitiesAndSigns()
    {
        // Halves chosen to hit every branch of the vector widening: ±0, subnormals, normals, ±inf; x = 1 picks them out.
        ushort[] halves = [0x0000, 0x8000, 0x0001, 0x83FF, 0x3C00, 0xC2A0, 0x7BFF, 0x0400];
        var bytes = new byte[2 * 32];
        for (int i = 0; i < 32; i++) BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), halves[i % halves.Length]);
        foreach (var path in new[] { KernelPath.Scalar }.Concat(VectorPaths()))
            for (int k = 0; k < 32; k++)
            {
                var x = new float[32];
                x[k] = 1;
                var y = Run(GgmlType.F16, bytes, 1, 32, x, path);
                Assert.Equal((float)BitConverter.UInt16BitsToHalf(halves[k % halves.Length]), y[0]);
            }
        var inf = new byte[64];
        BitConverter.TryWriteBytes(inf.AsSpan(10), (ushort)0xFC00);
        var ones = Enumerable.Repeat(1f, 32).ToArray();
        var nan = new byte[64];
        BitConverter.TryWriteBytes(nan.AsSpan(20), (ushort)0x7E00);
        foreach (var path in VectorPaths())
        {
            Assert.Equal(float.NegativeInfinity, Run(GgmlType.F16, inf, 1, 32, ones, path)[0]);
            Assert.True(float.IsNaN(Run(GgmlType.F16, nan, 1, 32, ones, path)[0]), $"{path}: an f16 NaN must stay NaN");
        }
    }

    /// <summary>
    /// The AVX2 F16 row widens halves assuming they are finite and checks for exponent 31 once per row: an infinity or
    /// NaN anywhere (the 32-value loop, the 8-value loop, the scalar tail) must still reach the result, and rows of the
    /// largest finite halves (±65504, just below the check's threshold) must come out finite and right.
    /// </summary>
    [Fact]
    public void F16Rows_InfinityAnywhereReachesTheResult_LargestFiniteStaysRight()
    {
        const int cols = 1195; // 37 chunks of 32 (to 1184), one of 8 (to 1192), a scalar tail of 3
        var x = Enumerable.Range(0, cols).Select(i => 1f + (i % 7) * 0.125f).ToArray();
        foreach (int position in new[] { 0, 17, 31, 600, 1183, 1188, 1192, 1194 })
        {
            var bytes = new byte[2 * cols];
            for (int i = 0; i < cols; i++) BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), (ushort)(i % 2 == 0 ? 0x7BFF : 0xFBFF));
            BitConverter.TryWriteBytes(bytes.AsSpan(2 * position), (ushort)0x7C00);
            foreach (var path in new[] { KernelPath.Scalar }.Concat(VectorPaths()))
                Assert.Equal(float.PositiveInfinity, Run(GgmlType.F16, bytes, 1, cols, x, path)[0]);
        }
        var finite = new byte[2 * cols];
        for (int i = 0; i < cols; i++) BitConverter.TryWriteBytes(finite.AsSpan(2 * i), (ushort)(i % 3 == 0 ? 0xFBFF : 0x7BFF));
        double exact = 0, magnitude = 0;
        for (int i = 0; i < cols; i++)
        {
            double w = i % 3 == 0 ? -65504.0 : 65504.0;
            exact += w * x[i];
            magnitude += Math.Abs(w * x[i]);
        }
        double gamma = cols * Math.Pow(2, -24) / (1 - cols * Math.Pow(2, -24));
        foreach (var path in new[] { KernelPath.Scalar }.Concat(VectorPaths()))
        {
            float y = Run(GgmlType.F16, finite, 1, cols, x, path)[0];
            Assert.True(Math.Abs(y - exact) <= gamma * magnitude, $"{path}: {y} vs exact {exact}");
        }
    }

    [Fact]
    public unsafe void Multiply_PublicOverloadMatchesScalarReferenceAndChecksShapes()
    {
        var (w, x) = Problem(GgmlType.Q4_K, 3, 512, seed: 3);
        var expected = Run(GgmlType.Q4_K, w, 3, 512, x, KernelPath.Scalar);
        var y = new float[3];
        fixed (byte* p = w)
        {
            var view = new TensorView(GgmlType.Q4_K, 3, 512, p);
            MatVec.Multiply(view, x, y);
            Assert.Equal(expected, y);
            var ex = Assert.Throws<ArgumentException>(() => MatVec.Multiply(view, new float[256], y));
            Assert.Contains("3x512", ex.Message);
        }
    }
}
