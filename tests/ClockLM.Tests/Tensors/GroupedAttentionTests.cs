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
