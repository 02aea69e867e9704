using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>
/// The grouped attention kernels, which read F32, F16 and Q8_0 cache rows in place, against the one-query F32 kernels
/// (<see cref="AttentionKernels"/>, themselves checked against double-precision sums) over the same rows converted to
/// floats: bit for bit, on the scalar path and on the vector path, for every group shape (one query to a dozen, so that
/// each block of the vector kernels is filled, padded and split), head sizes with and without whole 32-value blocks,
/// and position counts around the blocks of eight.
/// </summary>
public class GroupedAttentionTests
{
    public static TheoryData<GgmlType> Types => [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0];

    private static readonly int[] HeadSizes = [8, 12, 16, 24, 40, 64, 128];
    private static readonly int[] Groups = [1, 2, 3, 4, 5, 8, 12];
    private static readonly int[] Counts = [1, 3, 8, 9, 31, 100];

    /// <summary>n rows of a cache of kv_dim values (two heads' worth, a multiple of 32) stored as <paramref name="type"/>,
    /// the same rows as floats, and where the last head starts (so its values end exactly at the end of the bytes).</summary>
    private static (byte[] Bytes, float[] Floats, int RowBytes, int KvDim, int Offset) Rows(GgmlType type, int headSize, int n, int seed)
    {
        int kvDim = 2 * headSize * 32 / Gcd(headSize, 32);
        int rowBytes = (int)GgmlTypeInfo.RowBytes(type, kvDim);
        var raw = TestVectors.Gaussian(n * kvDim, seed, scale: 2f);
        var bytes = new byte[n * rowBytes];
        var floats = new float[n * kvDim];
        for (int t = 0; t < n; t++)
        {
            CacheRows.Store(type, raw.AsSpan(t * kvDim, kvDim), bytes.AsSpan(t * rowBytes, rowBytes));
            CacheRows.Load(type, bytes.AsSpan(t * rowBytes, rowBytes), floats.AsSpan(t * kvDim, kvDim));
        }
        return (bytes, floats, rowBytes, kvDim, kvDim - headSize);
    }

    private static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);

    private static IEnumerable<KernelPath> Paths => KernelOptions.BestPath == KernelPath.Scalar ? [KernelPath.Scalar] : [KernelPath.Scalar, KernelOptions.BestPath];

    [Theory, MemberData(nameof(Types))]
    public void ScoresEqualTheFloatKernelOverTheConvertedRows(GgmlType type)
    {
        const float scale = 0.17677669f;
        foreach (int headSize in HeadSizes)
            foreach (int n in Counts)
            {
                var (bytes, floats, rowBytes, kvDim, offset) = Rows(type, headSize, n, seed: headSize * 1000 + n);
                foreach (int groups in Groups)
                {
                    var queries = TestVectors.Gaussian(groups * headSize, seed: groups + n);
                    int stride = n + 3; // room after each query's scores, which must stay untouched
                    foreach (var path in Paths)
                    {
                        var scores = Enumerable.Repeat(float.NaN, groups * stride).ToArray();
                        GroupedAttention.Scores(queries, headSize, new CacheRows(bytes, type, rowBytes, offset, n), scale, scores, stride, path);
                        for (int g = 0; g < groups; g++)
                        {
                            var expected = new float[n];
                            AttentionKernels.Scores(queries.AsSpan(g * headSize, headSize), floats.AsSpan(offset), kvDim, scale, expected, path);
                            string what = $"{type}, head {headSize}, {n} rows, group of {groups}, {path}, query {g}";
                            AssertBitIdentical(expected, scores.AsSpan(g * stride, n), what);
                            Assert.True(scores.AsSpan(g * stride + n, stride - n).ToArray().All(float.IsNaN), $"{what}: wrote past its scores");
                        }
                    }
                }
            }
    }

    [Theory, MemberData(nameof(Types))]
    public void WeightedSumsEqualTheFloatKernelOverTheConvertedRows(GgmlType type)
    {
        foreach (int headSize in HeadSizes)
            foreach (int n in Counts)
            {
                var (bytes, floats, rowBytes, kvDim, offset) = Rows(type, headSize, n, seed: headSize * 2000 + n);
                foreach (int groups in Groups)
                {
                    int stride = n + 2;
                    var weights = TestVectors.Gaussian(groups * stride, seed: groups * 7 + n);
                    foreach (var path in Paths)
                    {
                        var output = Enumerable.Repeat(float.NaN, groups * headSize).ToArray(); // overwritten, not accumulated into
                        GroupedAttention.WeightedSums(weights, stride, new CacheRows(bytes, type, rowBytes, offset, n), output, headSize, path);
                        for (int g = 0; g < groups; g++)
                        {
                            var expected = new float[headSize];
                            AttentionKernels.WeightedSum(weights.AsSpan(g * stride, n), floats.AsSpan(offset), kvDim, expected, path);
                            AssertBitIdentical(expected, output.AsSpan(g * headSize, headSize), $"{type}, head {headSize}, {n} rows, group of {groups}, {path}, query {g}");
                        }
                    }
                }
            }
    }

    // ---- finite halves: the three-operation widening with the other factor scaled by 2^112

    private static readonly int[] FiniteCounts = [1, 2, 3, 7, 8, 9, 16, 31, 33, 64, 100, 129];

    /// <summary>F16 rows of n positions whose values reach the ends of the half range: subnormals, the largest finite
    /// half (65504), zeros of both signs, and ordinary values; and the same rows widened exactly.</summary>
    private static (byte[] Bytes, float[] Floats, int RowBytes, int KvDim, int Offset) ExtremeHalfRows(int headSize, int n, int seed)
    {
        var (bytes, _, rowBytes, kvDim, offset) = Rows(GgmlType.F16, headSize, n, seed);
        var rng = new Random(seed);
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
        for (int i = 0; i < halves.Length; i++)
        {
            int pick = rng.Next(10);
            ushort sign = (ushort)(rng.Next(2) << 15);
            if (pick == 0) halves[i] = (ushort)(sign | rng.Next(1, 0x400));  // subnormal
            else if (pick == 1) halves[i] = (ushort)(sign | 0x7bff);        // 65504
            else if (pick == 2) halves[i] = sign;                             // ±0
            else if (pick == 3) halves[i] = (ushort)(sign | rng.Next(0x400, 0x1000)); // tiny normals
        }
        var floats = new float[n * kvDim];
        for (int t = 0; t < n; t++) CacheRows.Load(GgmlType.F16, bytes.AsSpan(t * rowBytes, rowBytes), floats.AsSpan(t * kvDim, kvDim));
        Assert.True(CacheRows.AllFinite(GgmlType.F16, bytes));
        return (bytes, floats, rowBytes, kvDim, offset);
    }

    /// <summary>Gaussian values with some tiny (subnormal), some large (just under 2^16) and some zero, so that products
    /// with the rows' extremes underflow, round in the subnormal range and approach overflow.</summary>
    private static float[] ExtremeFactors(int count, int seed)
    {
        var v = TestVectors.Gaussian(count, seed);
        var rng = new Random(seed + 1);
        for (int i = 0; i < count; i++)
        {
            int pick = rng.Next(8);
            if (pick == 0) v[i] *= 1e-39f;       // subnormal
            else if (pick == 1) v[i] *= 1e-30f;
            else if (pick == 2) v[i] = MathF.CopySign(65535f, v[i]);
            else if (pick == 3) v[i] = 0;
        }
        return v;
    }

    [FactNeeds(Cpu.Avx2)]
    public void ScoresOverFiniteHalvesAreTheBitsOfTheExactWidening()
    {
        foreach (int headSize in HeadSizes.Where(h => h % 8 == 0))
            foreach (int n in FiniteCounts)
            {
                var (bytes, floats, rowBytes, kvDim, offset) = ExtremeHalfRows(headSize, n, seed: headSize * 31 + n);
                foreach (int groups in Groups)
                {
                    var queries = ExtremeFactors(groups * headSize, seed: groups * 13 + n);
                    int stride = n + 5;
                    var exact = Enumerable.Repeat(float.NaN, groups * stride).ToArray();
                    var finite = Enumerable.Repeat(float.NaN, groups * stride).ToArray();
                    Assert.True(GroupedAttention.Scores(queries, headSize, new CacheRows(bytes, GgmlType.F16, rowBytes, offset, n), 0.125f, exact, stride, KernelPath.Vector256));
                    Assert.False(GroupedAttention.Scores(queries, headSize, new CacheRows(bytes, GgmlType.F16, rowBytes, offset, n, finiteHalves: true), 0.125f, finite, stride, KernelPath.Vector256));
                    string what = $"head {headSize}, {n} rows, group of {groups}";
                    AssertBitIdentical(exact, finite, what);
                    // And both are the float kernel's over the widened rows.
                    for (int g = 0; g < groups; g++)
                    {
                        var expected = new float[n];
                        AttentionKernels.Scores(queries.AsSpan(g * headSize, headSize), floats.AsSpan(offset), kvDim, 0.125f, expected, KernelPath.Vector256);
                        AssertBitIdentical(expected, finite.AsSpan(g * stride, n), $"{what}, query {g}");
                    }
                }
            }
    }

    [FactNeeds(Cpu.Avx2)]
    public void WeightedSumsOverFiniteHalvesAreTheBitsOfTheExactWidening()
    {
        foreach (int headSize in HeadSizes.Where(h => h % 8 == 0))
            foreach (int n in FiniteCounts)
            {
                var (bytes, floats, rowBytes, kvDim, offset) = ExtremeHalfRows(headSize, n, seed: headSize * 37 + n);
                foreach (int groups in Groups)
                {
                    int stride = n + 3;
                    var weights = ExtremeFactors(groups * stride, seed: groups * 17 + n);
                    var exact = new float[groups * headSize];
                    var finite = Enumerable.Repeat(float.NaN, groups * headSize).ToArray();
                    Assert.True(GroupedAttention.WeightedSums(weights, stride, new CacheRows(bytes, GgmlType.F16, rowBytes, offset, n), exact, headSize, KernelPath.Vector256));
                    Assert.False(GroupedAttention.WeightedSums(weights, stride, new CacheRows(bytes, GgmlType.F16, rowBytes, offset, n, finiteHalves: true), finite, headSize, KernelPath.Vector256));
                    AssertBitIdentical(exact, finite, $"head {headSize}, {n} rows, group of {groups}");
                    for (int g = 0; g < groups; g++)
                    {
                        var expected = new float[headSize];
                        AttentionKernels.WeightedSum(weights.AsSpan(g * stride, n), floats.AsSpan(offset), kvDim, expected, KernelPath.Vector256);
                        AssertBitIdentical(expected, finite.AsSpan(g * headSize, headSize), $"head {headSize}, {n} rows, group of {groups}, query {g}");
                    }
                }
            }
    }

    [FactNeeds(Cpu.Avx2)]
    public void FactorsTooLargeToScaleTakeTheExactWidening()
    {
        const int headSize = 64, n = 19, groups = 4;
        var (bytes, _, rowBytes, _, offset) = ExtremeHalfRows(headSize, n, seed: 3);
        foreach (float large in new[] { 65536f, -1e20f, float.NaN, float.PositiveInfinity })
        {
            var queries = TestVectors.Gaussian(groups * headSize, seed: 4);
            queries[headSize + 5] = large;
            var exact = new float[groups * n];
            var finite = new float[groups * n];
            GroupedAttention.Scores(queries, headSize, new CacheRows(bytes, GgmlType.F16, rowBytes, offset, n), 1f, exact, n, KernelPath.Vector256);
            Assert.True(GroupedAttention.Scores(queries, headSize, new CacheRows(bytes, GgmlType.F16, rowBytes, offset, n, finiteHalves: true), 1f, finite, n, KernelPath.Vector256),
                $"a query of {large} counts as a fallback");
            AssertBitIdentical(exact, finite, $"scores with a query of {large}");

            var weights = TestVectors.Gaussian(groups * n, seed: 5);
            weights[2 * n + n - 1] = large; // the last weight of a row: the scalar tail of the scaling
            var sums = new float[groups * headSize];
            var finiteSums = new float[groups * headSize];
            GroupedAttention.WeightedSums(weights, n, new CacheRows(bytes, GgmlType.F16, rowBytes, offset, n), sums, headSize, KernelPath.Vector256);
            Assert.True(GroupedAttention.WeightedSums(weights, n, new CacheRows(bytes, GgmlType.F16, rowBytes, offset, n, finiteHalves: true), finiteSums, headSize, KernelPath.Vector256),
                $"a weight of {large} counts as a fallback");
            AssertBitIdentical(sums, finiteSums, $"sums with a weight of {large}");
        }
    }

    [Fact]
    public void InfiniteOrNaNHalvesMakeARowNotFinite()
    {
        var row = new byte[2 * 40]; // 40 halves: five vectors of eight
        Assert.True(CacheRows.AllFinite(GgmlType.F16, row));
        foreach (int at in new[] { 0, 7, 8, 33, 39 })
            foreach (ushort bits in new ushort[] { 0x7c00, 0xfc00, 0x7e00, 0xfc01 }) // +inf, -inf, NaNs
            {
                var bad = (byte[])row.Clone();
                BitConverter.TryWriteBytes(bad.AsSpan(2 * at), bits);
                Assert.False(CacheRows.AllFinite(GgmlType.F16, bad), $"0x{bits:x4} at {at}");
            }
        var largest = (byte[])row.Clone();
        BitConverter.TryWriteBytes(largest.AsSpan(2 * 39), (ushort)0xfbff); // -65504 is finite
        Assert.True(CacheRows.AllFinite(GgmlType.F16, largest));
        // Only F16 rows are ever read on the three-operation widening.
        Assert.False(new CacheRows(row, GgmlType.F32, 80, 0, 1, finiteHalves: true).FiniteHalves);
        Assert.True(new CacheRows(row, GgmlType.F16, 80, 0, 1, finiteHalves: true).FiniteHalves);
    }

    [FactNeeds(Cpu.Avx2)]
    public void TheFiniteRowFormatsWideningsAgree()
    {
        var (bytes, floats, _, _, _) = ExtremeHalfRows(64, 4, seed: 9);
        unsafe
        {
            fixed (byte* p = bytes)
                for (int i = 0; i + 8 <= floats.Length; i += 8)
                {
                    var v = F16FiniteCacheRows.Load8(p, i);
                    for (int j = 0; j < 8; j++)
                    {
                        Assert.Equal(F16FiniteCacheRows.Load(p, i + j), v[j]);
                        Assert.Equal(floats[i + j], v[j] * F16FiniteCacheRows.Compensation);
                    }
                }
        }
    }

    [Fact]
    public void CompactRowsHoldTheValuesTheirFormatsDefine()
    {
        var raw = TestVectors.Awkward(256, seed: 5);
        var f16 = new byte[512];
        CacheRows.Store(GgmlType.F16, raw, f16);
        var q8 = new byte[GgmlTypeInfo.RowBytes(GgmlType.Q8_0, 256)];
        CacheRows.Store(GgmlType.Q8_0, raw, q8);
        var reference = new byte[q8.Length];
        Quantize.Row(GgmlType.Q8_0, raw, reference);
        Assert.Equal(reference, q8); // ggml's reference quantizer, byte for byte
        var back = new float[256];
        CacheRows.Load(GgmlType.F16, f16, back);
        for (int i = 0; i < 256; i++) Assert.Equal((float)(Half)raw[i], back[i]);
    }

    [Fact]
    public void RowsThatDoNotHoldTheHeadAreRejected()
    {
        var q = new float[16];
        var bytes = new byte[3 * 34]; // three Q8_0 rows of 32 values
        // Values 24..39 reach past a 32-value row.
        var e = Assert.Throws<ArgumentException>(() => GroupedAttention.Scores(q, 16, new CacheRows(bytes, GgmlType.Q8_0, 34, 24, 3), 1f, new float[3], 3));
        Assert.Contains("keys", e.Message);
        // Four rows in the bytes of three.
        Assert.Throws<ArgumentException>(() => GroupedAttention.WeightedSums(new float[4], 4, new CacheRows(bytes, GgmlType.Q8_0, 34, 0, 4), new float[16], 16));
        // Queries that are not whole heads, and scores that do not fit.
        Assert.Throws<ArgumentException>(() => GroupedAttention.Scores(new float[20], 16, new CacheRows(bytes, GgmlType.Q8_0, 34, 0, 3), 1f, new float[6], 3));
        Assert.Throws<ArgumentException>(() => GroupedAttention.Scores(new float[32], 16, new CacheRows(bytes, GgmlType.Q8_0, 34, 0, 3), 1f, new float[5], 3));
    }

    private static void AssertBitIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: [{i}] is {actual[i]}, the float kernel gives {expected[i]}");
    }
}
