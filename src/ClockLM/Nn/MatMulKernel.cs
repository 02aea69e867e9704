using System.Numerics;
using System.Runtime.InteropServices;

namespace ClockLM.Nn;

/// <summary>
/// Row-major matrix products for training: the forward product and the two products of its backward pass.
/// Every inner loop runs along a contiguous row, so each is an axpy (y += a·x) or a dot product over
/// <see cref="Vector{T}"/> lanes; large products split their output rows across threads. Each output
/// element is computed by one thread in a fixed order, so results do not depend on the thread count.
/// The <c>Scalar</c> twins are the reference the tests compare against.
/// </summary>
internal static class MatMulKernel
{
    // Below this many multiply-adds a product runs on the calling thread.
    private const long ParallelThreshold = 1 << 18;

    /// <summary>C (m×n) = A (m×k) · B (k×n).</summary>
    public static void MatMul<T>(T[] a, T[] b, T[] c, int m, int k, int n) where T : unmanaged, INumber<T>
    {
        ForRows(m, (long)m * k * n, i =>
        {
            var row = c.AsSpan(i * n, n);
            row.Clear();
            int p = 0;
            // Four rows of B per pass: the output row is loaded and stored once for four multiply-adds.
            for (; p + 4 <= k; p += 4)
                Axpy4(row, a.AsSpan(i * k + p, 4), b.AsSpan(p * n, 4 * n), n);
            for (; p < k; p++)
                Axpy(row, a[i * k + p], b.AsSpan(p * n, n));
        });
    }

    /// <summary>dA (m×k) += dC (m×n) · Bᵀ: dA[i,p] += Σ_j dC[i,j]·B[p,j].</summary>
    public static void MatMulGradA<T>(T[] dc, T[] b, T[] da, int m, int k, int n) where T : unmanaged, INumber<T>
    {
        ForRows(m, (long)m * k * n, i =>
        {
            var dcRow = dc.AsSpan(i * n, n);
            for (int p = 0; p < k; p++)
                da[i * k + p] += Dot<T>(dcRow, b.AsSpan(p * n, n));
        });
    }

    /// <summary>dB (k×n) += Aᵀ · dC: dB[p,:] += Σ_i A[i,p]·dC[i,:].</summary>
    public static void MatMulGradB<T>(T[] a, T[] dc, T[] db, int m, int k, int n) where T : unmanaged, INumber<T>
    {
        ForRows(k, (long)m * k * n, p =>
        {
            var dbRow = db.AsSpan(p * n, n);
            Span<T> column = stackalloc T[4];
            int i = 0;
            for (; i + 4 <= m; i += 4)
            {
                for (int q = 0; q < 4; q++) column[q] = a[(i + q) * k + p];
                Axpy4(dbRow, column, dc.AsSpan(i * n, 4 * n), n);
            }
            for (; i < m; i++)
                Axpy(dbRow, a[i * k + p], dc.AsSpan(i * n, n));
        });
    }

    /// <summary>y += a·x.</summary>
    public static void Axpy<T>(Span<T> y, T a, ReadOnlySpan<T> x) where T : unmanaged, INumber<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && y.Length >= Vector<T>.Count)
        {
            var va = new Vector<T>(a);
            var vy = MemoryMarshal.Cast<T, Vector<T>>(y);
            var vx = MemoryMarshal.Cast<T, Vector<T>>(x);
            for (int v = 0; v < vy.Length; v++)
                vy[v] += va * vx[v];
            i = vy.Length * Vector<T>.Count;
        }
        for (; i < y.Length; i++)
            y[i] += a * x[i];
    }

    /// <summary>y += a[0]·x[0..n) + a[1]·x[n..2n) + a[2]·x[2n..3n) + a[3]·x[3n..4n): four axpys in one pass over y.</summary>
    public static void Axpy4<T>(Span<T> y, ReadOnlySpan<T> a, ReadOnlySpan<T> x, int n) where T : unmanaged, INumber<T>
    {
        ReadOnlySpan<T> x0 = x[..n], x1 = x.Slice(n, n), x2 = x.Slice(2 * n, n), x3 = x.Slice(3 * n, n);
        T a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        int i = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<T>.Count)
        {
            Vector<T> v0 = new(a0), v1 = new(a1), v2 = new(a2), v3 = new(a3);
            var vy = MemoryMarshal.Cast<T, Vector<T>>(y[..n]);
            var vx0 = MemoryMarshal.Cast<T, Vector<T>>(x0);
            var vx1 = MemoryMarshal.Cast<T, Vector<T>>(x1);
            var vx2 = MemoryMarshal.Cast<T, Vector<T>>(x2);
            var vx3 = MemoryMarshal.Cast<T, Vector<T>>(x3);
            for (int v = 0; v < vy.Length; v++)
                vy[v] += v0 * vx0[v] + v1 * vx1[v] + v2 * vx2[v] + v3 * vx3[v];
            i = vy.Length * Vector<T>.Count;
        }
        for (; i < n; i++)
            y[i] += a0 * x0[i] + a1 * x1[i] + a2 * x2[i] + a3 * x3[i];
    }

    /// <summary>Σ x[i]·y[i].</summary>
    public static T Dot<T>(ReadOnlySpan<T> x, ReadOnlySpan<T> y) where T : unmanaged, INumber<T>
    {
        T sum = T.Zero;
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            var acc = Vector<T>.Zero;
            var vx = MemoryMarshal.Cast<T, Vector<T>>(x);
            var vy = MemoryMarshal.Cast<T, Vector<T>>(y);
            for (int v = 0; v < vx.Length; v++)
                acc += vx[v] * vy[v];
            sum = Vector.Sum(acc);
            i = vx.Length * Vector<T>.Count;
        }
        for (; i < x.Length; i++)
            sum += x[i] * y[i];
        return sum;
    }

    /// <summary>Scalar reference for <see cref="MatMul"/>.</summary>
    public static void MatMulScalar<T>(T[] a, T[] b, T[] c, int m, int k, int n) where T : INumber<T>
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                T sum = T.Zero;
                for (int p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
                c[i * n + j] = sum;
            }
    }

    /// <summary>Scalar reference for <see cref="MatMulGradA"/>.</summary>
    public static void MatMulGradAScalar<T>(T[] dc, T[] b, T[] da, int m, int k, int n) where T : INumber<T>
    {
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
                for (int j = 0; j < n; j++)
                    da[i * k + p] += dc[i * n + j] * b[p * n + j];
    }

    /// <summary>Scalar reference for <see cref="MatMulGradB"/>.</summary>
    public static void MatMulGradBScalar<T>(T[] a, T[] dc, T[] db, int m, int k, int n) where T : INumber<T>
    {
        for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++)
                    db[p * n + j] += a[i * k + p] * dc[i * n + j];
    }

    private static void ForRows(int rows, long work, Action<int> body)
    {
        int threads = Environment.ProcessorCount;
        if (work < ParallelThreshold || rows < 2 || threads < 2)
        {
            for (int r = 0; r < rows; r++) body(r);
            return;
        }
        // One contiguous block of rows per worker keeps each thread on its own cache lines.
        int blocks = Math.Min(rows, threads);
        Parallel.For(0, blocks, block =>
        {
            int start = (int)((long)rows * block / blocks), end = (int)((long)rows * (block + 1) / blocks);
            for (int r = start; r < end; r++) body(r);
        });
    }
}
