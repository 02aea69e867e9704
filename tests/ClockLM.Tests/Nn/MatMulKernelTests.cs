using ClockLM.Nn;

namespace ClockLM.Tests.Nn;

/// <summary>The vectorised, multi-threaded matrix products against their scalar twins.</summary>
public class MatMulKernelTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 5, 7)]
    [InlineData(7, 13, 19)]
    [InlineData(33, 784, 128)] // a training batch through the first layer of a 784-128-10 MLP: parallel path
    [InlineData(64, 130, 10)]
    public void MatchesScalarReference(int m, int k, int n)
    {
        var random = new Random(m * 1000 + k * 10 + n);
        float[] Rand(int len) => [.. Enumerable.Range(0, len).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        var a = Rand(m * k);
        var b = Rand(k * n);
        var dc = Rand(m * n);

        var c = new float[m * n];
        var cRef = new float[m * n];
        MatMulKernel.MatMul(a, b, c, m, k, n);
        MatMulKernel.MatMulScalar(a, b, cRef, m, k, n);
        AssertClose(cRef, c, k, "C");

        var db = new float[k * n];
        var dbRef = new float[k * n];
        MatMulKernel.MatMulGradB(a, dc, db, m, k, n);
        MatMulKernel.MatMulGradBScalar(a, dc, dbRef, m, k, n);
        AssertClose(dbRef, db, m, "dB");

        var da = new float[m * k];
        var daRef = new float[m * k];
        MatMulKernel.MatMulGradA(dc, b, da, m, k, n);
        MatMulKernel.MatMulGradAScalar(dc, b, daRef, m, k, n);
        AssertClose(daRef, da, n, "dA");
    }

    /// <summary>The kernels group the products of a sum differently (four rows per pass, vector lanes), so the
    /// results agree up to float rounding, which grows with the number of terms (values here lie in [−1, 1]).</summary>
    private static void AssertClose(float[] expected, float[] actual, int terms, string name)
    {
        float bound = terms * 1e-6f;
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= bound, $"{name}[{i}] = {actual[i]}, scalar {expected[i]}");
    }

    [Fact]
    public void MatMulOfKnownMatrices()
    {
        // [[1, 2, 3], [4, 5, 6]] · [[7, 8], [9, 10], [11, 12]] = [[58, 64], [139, 154]]
        var a = new Tensor<float>([2, 3], [1, 2, 3, 4, 5, 6]);
        var b = new Tensor<float>([3, 2], [7, 8, 9, 10, 11, 12]);
        Assert.Equal([58f, 64f, 139f, 154f], a.MatMul(b).Data);
    }
}
