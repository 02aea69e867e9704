namespace ClockLM.Tensors;

/// <summary>A piece of work over a range of rows, run by <see cref="WorkerPool.Run{TJob}"/> on several threads at once.</summary>
public interface IRowRangeJob
{
    /// <summary>Processes rows [start, end). Called concurrently with disjoint ranges.</summary>
    void Execute(int start, int end);
}

/// <summary>
/// A fixed set of threads that split row ranges between them, for the matrix-vector products of one token. The
/// calling thread takes a share too, so a pool of N threads keeps N+1 cores busy. Workers spin briefly waiting for the
/// next job (a token's matmuls follow each other within microseconds), then sleep on a semaphore. A run allocates
/// nothing: the job struct is copied into a holder created once per job type.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private readonly Worker[] _workers;
    private readonly Dictionary<Type, JobHolder> _holders = new();
    private JobHolder? _current;
    private int _count;
    private int _generation;
    private int _pending;
    private int _running;
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

    /// <summary>Threads a <see cref="Run{TJob}"/> splits work over: the workers plus the caller.</summary>
    public int Participants => _workers.Length + 1;

    /// <summary>
    /// Runs <paramref name="job"/> over rows [0, <paramref name="count"/>), split into one contiguous range per participant,
    /// and returns when all are done. Not reentrant: one run at a time per pool.
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
            Volatile.Write(ref _pending, _workers.Length);
            Interlocked.Increment(ref _generation); // publishes the job to the workers
            foreach (var w in _workers) w.WakeIfSleeping();

            var (start, end) = Share(0, Participants, count);
            try
            {
                job.Execute(start, end);
            }
            finally
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
            }
            var failure = _failure;
            _failure = null;
            if (failure != null) throw new AggregateException("a WorkerPool job failed on a worker thread", failure);
        }
        finally
        {
            _current = null;
            Volatile.Write(ref _running, 0);
        }
    }

    private Exception? _failure;

    /// <summary>Rows of participant <paramref name="index"/> out of <paramref name="participants"/>: an even contiguous split.</summary>
    internal static (int Start, int End) Share(int index, int participants, int count) =>
        ((int)((long)count * index / participants), (int)((long)count * (index + 1) / participants));

    /// <summary>Stops the worker threads.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Interlocked.Increment(ref _generation);
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
        private readonly int _index;
        private int _sleeping;
        public readonly SemaphoreSlim Signal = new(0);
        public readonly Thread Thread;

        public Worker(WorkerPool pool, int index)
        {
            _pool = pool;
            _index = index;
            Thread = new Thread(Loop) { IsBackground = true, Name = $"ClockLM worker {index}" };
        }

        /// <summary>Called after a new generation is published: releases the worker if it went to sleep.</summary>
        public void WakeIfSleeping()
        {
            if (Interlocked.CompareExchange(ref _sleeping, 0, 1) == 1) Signal.Release();
        }

        private void Loop()
        {
            int seen = Volatile.Read(ref _pool._generation);
            while (true)
            {
                int generation = WaitForNext(seen);
                seen = generation;
                if (_pool._disposed) return;
                try
                {
                    var (start, end) = Share(_index, _pool.Participants, _pool._count);
                    _pool._current!.Execute(start, end);
                }
                catch (Exception e)
                {
                    _pool._failure = e;
                }
                Interlocked.Decrement(ref _pool._pending);
            }
        }

        private int WaitForNext(int seen)
        {
            for (int i = 0; i < SpinIterations; i++)
            {
                int g = Volatile.Read(ref _pool._generation);
                if (g != seen) return g;
                Thread.SpinWait(20);
            }
            while (true)
            {
                // Announce sleep, then look again: either this thread takes the flag back (a job arrived in between),
                // or the publisher took it and released the semaphore, which must then be consumed.
                Interlocked.Exchange(ref _sleeping, 1);
                int g = Volatile.Read(ref _pool._generation);
                if (g != seen)
                {
                    if (Interlocked.CompareExchange(ref _sleeping, 0, 1) != 1) Signal.Wait();
                    return g;
                }
                Signal.Wait();
                g = Volatile.Read(ref _pool._generation);
                if (g != seen) return g;
            }
        }
    }
}
