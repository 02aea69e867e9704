using System.Runtime.Intrinsics.X86;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>The eight-row F32 kernel: each row's result is its own dot product, whatever rows it is grouped with.</summary>
public class F32MatVecTests
{
    private static unsafe float[] Rows(float[] w, int rows, int cols, float[] x, params int[] cuts)
    {
        var y = new float[rows];
        fixed (float* pw = w) fixed (float* px = x) fixed (float* py = y)
        {
            int start = 0;
            foreach (int end in cuts.Append(rows))
            {
                F32MatVec.Rows((byte*)pw, cols * sizeof(float), cols, px, py, start, end);
                start = end;
            }
        }
        return y;
    }

    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(64, 64)]
    [InlineData(172, 64)]
    [InlineData(64, 172)]
    [InlineData(13, 5)]
    [InlineData(3, 8)]
    [InlineData(20, 33)]
    public void RowsAreWithinTheSummationBoundOfTheExactDot(int rows, int cols)
    {
        var w = TestVectors.Gaussian(rows * cols, seed: rows + cols);
        var x = TestVectors.Gaussian(cols, seed: 7);
        var y = Rows(w, rows, cols, x);
        double gamma = cols * Math.Pow(2, -24) / (1 - cols * Math.Pow(2, -24));
        for (int r = 0; r < rows; r++)
        {
            double exact = 0, magnitude = 0;
            for (int i = 0; i < cols; i++)
            {
                exact += (double)w[r * cols + i] * x[i];
                magnitude += Math.Abs((double)w[r * cols + i] * x[i]);
            }
            Assert.True(Math.Abs(y[r] - exact) <= gamma * magnitude, $"{rows}x{cols} row {r}: {y[r]} vs {exact}");
        }
    }

    [FactNeeds(Cpu.Avx2)]
    public void ARowsResultDoesNotDependOnTheRangeItIsComputedIn()
    {
        const int rows = 29, cols = 44;
        var w = TestVectors.Gaussian(rows * cols, seed: 1);
        var x = TestVectors.Gaussian(cols, seed: 2);
        var whole = Rows(w, rows, cols, x);
        Assert.Equal(whole, Rows(w, rows, cols, x, 3, 11, 12, 27));
        Assert.Equal(whole, Rows(w, rows, cols, x, 8, 16, 24));
        // Only the rows of the range are written.
        var y = new float[rows];
        unsafe
        {
            fixed (float* pw = w) fixed (float* px = x) fixed (float* py = y)
                F32MatVec.Rows((byte*)pw, cols * sizeof(float), cols, px, py, 5, 9);
        }
        for (int r = 0; r < rows; r++) Assert.Equal(r is >= 5 and < 9 ? whole[r] : 0f, y[r]);
    }
}
