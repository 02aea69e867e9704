using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

public class WorkerPoolTests
{
    private struct RecordJob : IRowRangeJob
    {
        public int[] Hits;
        public void Execute(int start, int end)
        {
            for (int r = start; r < end; r++) Interlocked.Increment(ref Hits[r]);
        }
    }

    [Fact]
    public void Run_CoversEveryRowExactlyOnce()
    {
        using var pool = new WorkerPool(2);
        foreach (int count in new[] { 2, 3, 23, 1000, 1001 })
            for (int repeat = 0; repeat < 20; repeat++)
            {
                var job = new RecordJob { Hits = new int[count] };
                pool.Run(job, count);
                Assert.All(job.Hits, h => Assert.Equal(1, h));
            }
    }

    /// <summary>Every chunk waits until two different threads have entered, which only happens if the work really runs in parallel.</summary>
    private struct RendezvousJob : IRowRangeJob
    {
        public int[] Threads; // [first thread id, second distinct thread id]
        public void Execute(int start, int end)
        {
            int me = Environment.CurrentManagedThreadId;
            if (Interlocked.CompareExchange(ref Threads[0], me, 0) != 0 && Threads[0] != me)
                Interlocked.CompareExchange(ref Threads[1], me, 0);
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (Volatile.Read(ref Threads[1]) == 0 && DateTime.UtcNow < deadline) Thread.Yield();
        }
    }

    [Fact]
    public void Run_UsesWorkerThreadsAlongsideTheCaller()
    {
        using var pool = new WorkerPool(1);
        var job = new RendezvousJob { Threads = new int[2] };
        pool.Run(job, 100);
        Assert.NotEqual(0, job.Threads[1]);
        Assert.NotEqual(job.Threads[0], job.Threads[1]);
    }

    [Fact]
    public void Run_WakesWorkersThatWentToSleepBetweenRuns()
    {
        // Idle workers poll for about half a millisecond, then sleep: after a 20 ms pause every run must wake one again.
        using var pool = new WorkerPool(1);
        for (int i = 0; i < 5; i++)
        {
            Thread.Sleep(20);
            var job = new RendezvousJob { Threads = new int[2] };
            pool.Run(job, 100);
            Assert.NotEqual(0, job.Threads[1]);
            Assert.NotEqual(job.Threads[0], job.Threads[1]);
        }
    }

    /// <summary>Rows run by the pool's workers (not the caller) sleep a little, so the caller waits for their done count.</summary>
    private struct SlowWorkersJob : IRowRangeJob
    {
        public int Caller;
        public int[] Hits;
        public void Execute(int start, int end)
        {
            if (Environment.CurrentManagedThreadId != Caller) Thread.Sleep(1);
            for (int r = start; r < end; r++) Interlocked.Increment(ref Hits[r]);
        }
    }

    [Fact]
    public void Run_ReturnsOnlyAfterTheWorkersChunksAreDone()
    {
        using var pool = new WorkerPool(2);
        for (int repeat = 0; repeat < 20; repeat++)
        {
            var job = new SlowWorkersJob { Caller = Environment.CurrentManagedThreadId, Hits = new int[240] };
            pool.Run(job, 240);
            Assert.All(job.Hits, h => Assert.Equal(1, h));
        }
    }

    [Theory]
    [InlineData(2048, 2)]
    [InlineData(32000, 2)]
    [InlineData(256, 4)]
    [InlineData(7, 3)]
    public void ChunkSize_ShrinksAndCoversEveryRowOnce(int count, int participants)
    {
        int smallest = Math.Max(1, count / (participants * 16));
        var sizes = new List<int>();
        for (int remaining = count; remaining > 0;)
        {
            int size = WorkerPool.ChunkSize(remaining, participants, smallest);
            Assert.InRange(size, 1, remaining);
            sizes.Add(size);
            remaining -= size;
        }
        Assert.Equal(count, sizes.Sum());
        for (int i = 1; i < sizes.Count; i++) Assert.True(sizes[i] <= sizes[i - 1], $"chunk {i} ({sizes[i]}) is larger than chunk {i - 1} ({sizes[i - 1]})");
        Assert.Equal(Math.Max(smallest, count / (2 * participants)), sizes[0]);
        Assert.True(sizes[^1] <= smallest, $"the last chunk has {sizes[^1]} rows, more than the smallest chunk ({smallest})");
        Assert.True(sizes.Count <= 4 * participants * 16, $"{sizes.Count} claims");
    }

    private struct ThrowingJob : IRowRangeJob
    {
        public void Execute(int start, int end)
        {
            if (start >= 5) throw new InvalidDataException($"rows {start}..{end}");
        }
    }

    [Fact]
    public void Run_ReportsFailuresAndStaysUsable()
    {
        using var pool = new WorkerPool(1);
        var ex = Assert.Throws<AggregateException>(() => pool.Run(new ThrowingJob(), 10));
        Assert.IsType<InvalidDataException>(ex.InnerException);
        var job = new RecordJob { Hits = new int[10] };
        pool.Run(job, 10);
        Assert.All(job.Hits, h => Assert.Equal(1, h));
    }

    [Theory]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    [InlineData(GgmlType.F16)]
    public unsafe void ParallelMatVec_EqualsSingleThreadedBitForBit(GgmlType type)
    {
        // 301 x 2048 is above the size where MatVec splits rows, and 301 does not divide among 3 participants.
        const int rows = 301, cols = 2048;
        // 17 distinct quantized rows repeated (quantizing all 301 with the K-quant searches would dominate the test's time).
        var distinct = Quantize.Matrix(type, TestVectors.Gaussian(17 * cols, seed: 21, scale: 0.05f), 17, cols);
        var w = new byte[distinct.Length / 17 * rows];
        for (int r = 0; r < rows; r++) distinct.AsSpan(r % 17 * (distinct.Length / 17), distinct.Length / 17).CopyTo(w.AsSpan(r * (distinct.Length / 17)));
        var x = TestVectors.Gaussian(cols, seed: 22);
        var single = new float[rows];
        var parallel = new float[rows];
        using var pool = new WorkerPool(2);
        fixed (byte* p = w)
        {
            var view = new TensorView(type, rows, cols, p);
            Assert.True(view.ByteCount >= 256 * 1024);
            MatVec.Multiply(view, x, single);
            MatVec.Multiply(view, x, parallel, pool);
        }
        for (int r = 0; r < rows; r++)
            Assert.Equal(BitConverter.SingleToInt32Bits(single[r]), BitConverter.SingleToInt32Bits(parallel[r]));
    }

    [Fact]
    public void Dispose_StopsWorkersAndRejectsFurtherRuns()
    {
        var pool = new WorkerPool(2);
        pool.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pool.Run(new RecordJob { Hits = new int[4] }, 4));
    }
}

/// <summary>The pool's per-call allocation, read from the runtime's per-thread counter: in the "timing" collection, so it
/// runs alone, after the parallel tests, whose threads would otherwise share the machine with the measured calls.</summary>
[Collection("timing")]
public class WorkerPoolAllocationTests
{
    [Fact]
    public unsafe void ParallelMatVec_AllocatesNothingPerCall()
    {
        const int rows = 256, cols = 2048;
        var w = Quantize.Matrix(GgmlType.Q8_0, TestVectors.Gaussian(rows * cols, seed: 23), rows, cols);
        var x = TestVectors.Gaussian(cols, seed: 24);
        var y = new float[rows];
        using var pool = new WorkerPool(2);
        fixed (byte* p = w)
        {
            var view = new TensorView(GgmlType.Q8_0, rows, cols, p);
            for (int i = 0; i < 5; i++) MatVec.Multiply(view, x, y, pool); // warm-up: scratch buffers, job holder, JIT
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 200; i++) MatVec.Multiply(view, x, y, pool);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(0, allocated);
        }
        Assert.NotEqual(0f, y[0]);
    }
}
