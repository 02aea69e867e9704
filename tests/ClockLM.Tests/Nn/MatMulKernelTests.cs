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
        // Same products summed in the same order (over k) per output value: bit-identical.
        Assert.Equal(cRef, c);

        var db = new float[k * n];
        var dbRef = new float[k * n];
        MatMulKernel.MatMulGradB(a, dc, db, m, k, n);
        MatMulKernel.MatMulGradBScalar(a, dc, dbRef, m, k, n);
        Assert.Equal(dbRef, db);

        // The dot products of dA add vector lanes in a different order: equal up to float rounding.
        var da = new float[m * k];
        var daRef = new float[m * k];
        MatMulKernel.MatMulGradA(dc, b, da, m, k, n);
        MatMulKernel.MatMulGradAScalar(dc, b, daRef, m, k, n);
        for (int i = 0; i < da.Length; i++)
            Assert.True(Math.Abs(da[i] - daRef[i]) <= 1e-5f * (1 + Math.Abs(daRef[i])), $"dA[{i}] = {da[i]}, scalar {daRef[i]}");
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
