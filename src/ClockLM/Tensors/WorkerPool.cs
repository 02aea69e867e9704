namespace ClockLM.Tensors;

/// <summary>A piece of work over a range of rows, run by <see cref="WorkerPool.Run{TJob}"/> on several threads at once.</summary>
public interface IRowRangeJob
{
    /// <summary>Processes rows [start, end). Called concurrently with disjoint ranges, possibly several times per thread.</summary>
    void Execute(int start, int end);
}

/// <summary>
/// A fixed set of threads that share out row ranges, for the matrix-vector products of one token. The calling thread
/// works too, so a pool of N threads keeps N+1 cores busy.
/// </summary>
/// <remarks>
/// The rows are cut into a few chunks per participant, and each participant claims the next chunk with one
/// compare-and-swap until none are left: a thread the OS has descheduled simply claims fewer chunks, instead of
/// holding up the product with a fixed share. The claim counter carries the run number in its top 32 bits, so a
/// worker that wakes late can never claim a chunk of a later run with a stale view of it. Workers spin briefly
/// between runs (a token's matmuls follow each other within microseconds), then sleep on a semaphore.
/// A run allocates nothing: the job struct is copied into a holder created once per job type.
/// </remarks>
public sealed class WorkerPool : IDisposable
{
    private const int ChunksPerParticipant = 8;
    private readonly Worker[] _workers;
    private readonly Dictionary<Type, JobHolder> _holders = new();
    private JobHolder? _current;
    private int _count;
    private int _chunks;
    private long _claims;       // (run << 32) | chunks not yet claimed
    private int _chunksDone;
    private int _run;           // also the wake-up generation
    private int _running;
    private Exception? _failure;
    private volatile bool _disposed;

    /// <summary>Starts <paramref name="threads"/> background worker threads (0 runs everything on the caller).</summary>
    public WorkerPool(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        _workers = new Worker[threads];
        for (int i = 0; i < threads; i++)
        {
            _workers[i] = new Worker(this, i + 1);
            _workers[i].Thread.Start();
        }
    }

    /// <summary>Worker threads (not counting the caller).</summary>
    public int Threads => _workers.Length;

    /// <summary>Threads a <see cref="Run{TJob}"/> can split work over: the workers plus the caller.</summary>
    public int Participants => _workers.Length + 1;

    /// <summary>
    /// Runs <paramref name="job"/> over rows [0, <paramref name="count"/>) on the workers and the caller, and returns
    /// when every row is done. Not reentrant: one run at a time per pool.
    /// </summary>
    public void Run<TJob>(in TJob job, int count) where TJob : struct, IRowRangeJob
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_workers.Length == 0 || count < 2)
        {
            job.Execute(0, count);
            return;
        }
        if (Interlocked.Exchange(ref _running, 1) != 0)
            throw new InvalidOperationException("WorkerPool.Run is already running a job; a pool runs one job at a time");
        try
        {
            if (!_holders.TryGetValue(typeof(TJob), out var holder))
                _holders[typeof(TJob)] = holder = new JobHolder<TJob>();
            ((JobHolder<TJob>)holder).Job = job;
            _current = holder;
            _count = count;
            _chunks = Math.Min(count, Participants * ChunksPerParticipant);
            _chunksDone = 0;
            int run = _run + 1;
            Interlocked.Exchange(ref _claims, ((long)run << 32) | (uint)_chunks);
            Interlocked.Exchange(ref _run, run); // publishes the run; workers polling or asleep pick it up
            foreach (var w in _workers) w.WakeIfSleeping();

            while (TryClaim(run, out int chunk)) Execute(chunk);

            var spin = new SpinWait();
            while (Volatile.Read(ref _chunksDone) != _chunks) spin.SpinOnce(sleep1Threshold: -1);
            var failure = _failure;
            _failure = null;
            if (failure != null) throw new AggregateException("a WorkerPool job failed", failure);
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    /// <summary>
    /// Claims the next chunk of run <paramref name="run"/>, or returns false once that run has none left. The counter
    /// holds the chunks still unclaimed, so a stale claimer sees 0 (or another run) and can never overshoot; and while
    /// a claimed chunk is unfinished its run cannot end, so the run's fields read after the claim are still its own.
    /// </summary>
    private bool TryClaim(int run, out int chunk)
    {
        while (true)
        {
            long claims = Volatile.Read(ref _claims);
            int remaining = (int)claims;
            chunk = 0;
            if ((int)(claims >> 32) != run || remaining == 0) return false;
            if (Interlocked.CompareExchange(ref _claims, claims - 1, claims) == claims)
            {
                chunk = _chunks - remaining;
                return true;
            }
        }
    }

    /// <summary>Runs a claimed chunk. The run cannot finish before this chunk is counted done, so its state is still current.</summary>
    private void Execute(int chunk)
    {
        try
        {
            var (start, end) = Share(chunk, _chunks, _count);
            _current!.Execute(start, end);
        }
        catch (Exception e)
        {
            _failure ??= e;
        }
        Interlocked.Increment(ref _chunksDone);
    }

    /// <summary>Rows of part <paramref name="index"/> out of <paramref name="parts"/>: an even contiguous split.</summary>
    internal static (int Start, int End) Share(int index, int parts, int count) =>
        ((int)((long)count * index / parts), (int)((long)count * (index + 1) / parts));

    /// <summary>Stops the worker threads.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Interlocked.Increment(ref _run);
        foreach (var w in _workers) w.WakeIfSleeping();
        foreach (var w in _workers) w.Thread.Join();
        foreach (var w in _workers) w.Signal.Dispose();
    }

    private abstract class JobHolder
    {
        public abstract void Execute(int start, int end);
    }

    private sealed class JobHolder<TJob> : JobHolder where TJob : struct, IRowRangeJob
    {
        public TJob Job;
        public override void Execute(int start, int end) => Job.Execute(start, end);
    }

    private sealed class Worker
    {
        private const int SpinIterations = 2000; // about half a millisecond of polling before sleeping
        private readonly WorkerPool _pool;
        private int _sleeping;
        public readonly SemaphoreSlim Signal = new(0);
        public readonly Thread Thread;

        public Worker(WorkerPool pool, int index)
        {
            _pool = pool;
            Thread = new Thread(Loop) { IsBackground = true, Name = $"ClockLM worker {index}" };
        }

        /// <summary>Called after a new run is published: releases the worker if it went to sleep.</summary>
        public void WakeIfSleeping()
        {
            if (Interlocked.CompareExchange(ref _sleeping, 0, 1) == 1) Signal.Release();
        }

        private void Loop()
        {
            int seen = Volatile.Read(ref _pool._run);
            while (true)
            {
                seen = WaitForNext(seen);
                if (_pool._disposed) return;
                while (_pool.TryClaim(seen, out int chunk)) _pool.Execute(chunk);
            }
        }

        private int WaitForNext(int seen)
        {
            for (int i = 0; i < SpinIterations; i++)
            {
                int run = Volatile.Read(ref _pool._run);
                if (run != seen) return run;
                Thread.SpinWait(20);
            }
            while (true)
            {
                // Announce sleep, then look again: either this thread takes the flag back (a run arrived in between),
                // or the publisher took it and released the semaphore, which must then be consumed.
                Interlocked.Exchange(ref _sleeping, 1);
                int run = Volatile.Read(ref _pool._run);
                if (run != seen)
                {
                    if (Interlocked.CompareExchange(ref _sleeping, 0, 1) != 1) Signal.Wait();
                    return run;
                }
                Signal.Wait();
                run = Volatile.Read(ref _pool._run);
                if (run != seen) return run;
            }
        }
    }
}
