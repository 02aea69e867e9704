using ClockLM.Nn;
using ClockLM.Tensors;

namespace ClockLM.Tests.Nn;

/// <summary>The packed matrix product of training against its plain triple loop, bit for bit.</summary>
public unsafe class GemmTests
{
    [FmaTheory]
    [InlineData(1, 1, 1)]
    [InlineData(5, 7, 3)]      // smaller than one 6×16 tile
    [InlineData(6, 16, 256)]   // exactly one tile and one depth pass
    [InlineData(7, 17, 257)]   // one past each: edge tiles and a second, 1-deep pass
    [InlineData(97, 193, 300)] // one past a 96-row and a 192-column work item
    [InlineData(200, 40, 600)] // three depth passes, several row blocks
    [InlineData(13, 300, 1)]
    public void PackedProductEqualsPlainLoopBitForBit(int m, int n, int k)
    {
        var random = new Random(m * 7919 + n * 31 + k);
        float[] Values(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        var a = Values(m * k);
        var b = Values(k * n);
        var c0 = Values(m * n);
        using var pool2 = new WorkerPool(1);
        using var pool3 = new WorkerPool(2);
        foreach (bool transposeA in new[] { false, true })
            foreach (bool transposeB in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                    fixed (float* pa = a, pb = b)
                    {
                        // A (m×k) stored row-major, or as the transpose of a row-major (k×m) matrix; B likewise.
                        var av = transposeA ? StridedMatrix.Transposed(pa, m) : StridedMatrix.RowMajor(pa, k);
                        var bv = transposeB ? StridedMatrix.Transposed(pb, k) : StridedMatrix.RowMajor(pb, n);
                        var expected = (float[])c0.Clone();
                        fixed (float* pc = expected) Gemm.Reference(av, bv, pc, n, m, n, k, accumulate);
                        foreach (var pool in new WorkerPool?[] { null, pool2, pool3 })
                        {
                            var actual = (float[])c0.Clone();
                            fixed (float* pc = actual) Gemm.Multiply(av, bv, pc, n, m, n, k, accumulate, pool);
                            Assert.True(expected.AsSpan().SequenceEqual(actual),
                                $"{m}x{n}x{k} transposeA {transposeA} transposeB {transposeB} accumulate {accumulate} threads {(pool?.Participants ?? 1)}");
                        }
                    }
    }

    [FmaFact]
    public void APackedMatrixServesProductsOfItsLeadingBlocks()
    {
        // Attention packs a sequence's keys once and multiplies every block of queries by the first keys it sees.
        var random = new Random(11);
        float[] Values(int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1))];
        int m = 13, k = 70, n = 45;
        var a = Values(m * k);
        var b = Values(k * n);
        var buffer = new float[Gemm.PackedLength(k, n) + 16];
        fixed (float* pa = a, pb = b, pbuf = buffer)
        {
            var packed = Gemm.Pack(StridedMatrix.Transposed(pb, k), k, n, pbuf);
            foreach (var (kk, nn) in new[] { (70, 45), (70, 17), (33, 45), (1, 1), (64, 32) })
            {
                var expected = new float[m * nn];
                var actual = new float[m * nn];
                fixed (float* pe = expected, pc = actual)
                {
                    Gemm.Reference(StridedMatrix.RowMajor(pa, k), StridedMatrix.Transposed(pb, k), pe, nn, m, nn, kk, accumulate: false);
                    Gemm.MultiplyPacked(StridedMatrix.RowMajor(pa, k), packed, pc, nn, m, nn, kk, accumulate: false, pool: null);
                }
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"leading {kk}x{nn}");
            }
        }
    }

    [Fact]
    public void ProductOfKnownMatricesIntoAWiderOutput()
    {
        // [[1, 2, 3], [4, 5, 6]] · [[7, 8], [9, 10], [11, 12]] = [[58, 64], [139, 154]], written into rows of 3 values
        // whose last column must stay untouched; accumulating adds the product again.
        float[] a = [1, 2, 3, 4, 5, 6], b = [7, 8, 9, 10, 11, 12], c = [-1, -1, 99, -1, -1, 99];
        fixed (float* pa = a, pb = b, pc = c)
        {
            Gemm.Multiply(StridedMatrix.RowMajor(pa, 3), StridedMatrix.RowMajor(pb, 2), pc, 3, 2, 2, 3, accumulate: false, pool: null);
            Assert.Equal([58f, 64f, 99f, 139f, 154f, 99f], c);
            Gemm.Multiply(StridedMatrix.RowMajor(pa, 3), StridedMatrix.RowMajor(pb, 2), pc, 3, 2, 2, 3, accumulate: true, pool: null);
            Assert.Equal([116f, 128f, 99f, 278f, 308f, 99f], c);
        }
    }
}
