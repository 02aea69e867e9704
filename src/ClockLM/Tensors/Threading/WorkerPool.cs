using System.Runtime.InteropServices;

namespace ClockLM.Tensors;

/// <summary>
/// A fixed set of threads that share out row ranges, for the matrix-vector products of one token. The calling thread
/// works too, so a pool of N threads keeps N+1 cores busy.
/// </summary>
/// <remarks>
/// Each participant claims the next chunk of rows with one compare-and-swap until none are left, and chunks shrink as
/// the rows run out: a claim takes half of one participant's fair share of the rows still left (remaining / (2 ×
/// participants)), but no fewer than 1/16 of a participant's share of the whole. The first chunks are large (few
/// claims) and the last ones small, so the participants finish close together; a thread the OS has descheduled simply
/// claims fewer chunks instead of holding up the product with a fixed share. The claim counter carries the run number
/// in its top 32 bits, so a worker that wakes late can never claim a chunk of a later run with a stale view of it.
/// Workers spin briefly between runs (a token's matmuls follow each other within microseconds), then sleep on a
/// semaphore. Each worker adds the rows it ran to the done count once, when it finds none left (the caller only waits
/// for the others' rows), and the claim counter, the
/// done count and the run number workers poll sit on cache lines of their own, so a run moves few lines between cores.
/// A run allocates nothing: the job struct is copied into a holder created once per job type.
/// </remarks>
public sealed class WorkerPool : IDisposable
{
    private const int SmallestChunkPerShare = 16;
    private readonly Worker[] _workers;
    private readonly Dictionary<Type, JobHolder> _holders = new();
    private JobHolder? _current;
    private int _count;
    private int _smallest;
    private Counters _hot;
    private int _running;
    private Exception? _failure;
    private volatile bool _disposed;

    /// <summary>The fields every participant writes or polls during a run, 128 bytes apart (two lines, as the adjacent-line prefetcher pairs them).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 512)]
    private struct Counters
    {
        [FieldOffset(128)] public int Run;      // also the wake-up generation; polled by idle workers
        [FieldOffset(256)] public long Claims;  // (run << 32) | rows not yet claimed
        [FieldOffset(384)] public int Done;     // rows the workers finished, added once per worker per run
    }

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
            _smallest = Math.Max(1, count / (Participants * SmallestChunkPerShare));
            _hot.Done = 0;
            int run = _hot.Run + 1;
            Interlocked.Exchange(ref _hot.Claims, ((long)run << 32) | (uint)count);
            Interlocked.Exchange(ref _hot.Run, run); // publishes the run; workers polling or asleep pick it up
            foreach (var w in _workers) w.WakeIfSleeping();

            int ran = 0;
            while (TryClaim(run, out int start, out int end)) { Execute(start, end); ran += end - start; }

            // The workers count the rest; the caller's own rows need no shared write.
            var spin = new SpinWait();
            while (Volatile.Read(ref _hot.Done) != count - ran) spin.SpinOnce(sleep1Threshold: -1);
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
    /// Claims the next chunk [start, end) of run <paramref name="run"/>, or returns false once that run has no rows
    /// left. The counter holds the rows still unclaimed, so a stale claimer sees 0 (or another run) and can never
    /// overshoot; and while a claimed chunk is not yet counted done its run cannot end, so the run's fields read after
    /// the claim are still its own.
    /// </summary>
    private bool TryClaim(int run, out int start, out int end)
    {
        while (true)
        {
            long claims = Volatile.Read(ref _hot.Claims);
            int remaining = (int)claims;
            (start, end) = (0, 0);
            if ((int)(claims >> 32) != run || remaining == 0) return false;
            int size = ChunkSize(remaining, Participants, _smallest);
            if (Interlocked.CompareExchange(ref _hot.Claims, claims - size, claims) == claims)
            {
                start = _count - remaining;
                end = start + size;
                return true;
            }
        }
    }

    /// <summary>Rows the next claim takes when <paramref name="remaining"/> are left: remaining / (2 participants),
    /// at least <paramref name="smallest"/>, at most all of them.</summary>
    internal static int ChunkSize(int remaining, int participants, int smallest) =>
        Math.Min(remaining, Math.Max(smallest, remaining / (2 * participants)));

    /// <summary>Runs a claimed chunk. The run cannot finish before this chunk is counted done, so its state is still current.</summary>
    /// <remarks>The claimer counts the chunk's rows done afterwards (all its rows of the run at once, with <see cref="RunClaims"/>).</remarks>
    private void Execute(int start, int end)
    {
        try
        {
            _current!.Execute(start, end);
        }
        catch (Exception e)
        {
            _failure ??= e;
        }
    }

    /// <summary>A worker's part of run <paramref name="run"/>: claims and runs chunks until none are left, then counts their rows done.</summary>
    private void RunClaims(int run)
    {
        int ran = 0;
        while (TryClaim(run, out int start, out int end)) { Execute(start, end); ran += end - start; }
        if (ran > 0) Interlocked.Add(ref _hot.Done, ran);
    }

    /// <summary>Stops the worker threads.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Interlocked.Increment(ref _hot.Run);
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
            // The publisher's Interlocked write of the run precedes this read and the worker's Interlocked write of the
            // flag precedes its read of the run, so a 0 here means the worker will see the new run itself.
            if (Volatile.Read(ref _sleeping) == 1 && Interlocked.CompareExchange(ref _sleeping, 0, 1) == 1) Signal.Release();
        }

        private void Loop()
        {
            // Run 0 is the pool's state at construction: a thread that starts late still takes part in run 1.
            int seen = 0;
            while (true)
            {
                seen = WaitForNext(seen);
                if (_pool._disposed) return;
                _pool.RunClaims(seen);
            }
        }

        private int WaitForNext(int seen)
        {
            for (int i = 0; i < SpinIterations; i++)
            {
                int run = Volatile.Read(ref _pool._hot.Run);
                if (run != seen) return run;
                Thread.SpinWait(20);
            }
            while (true)
            {
                // Announce sleep, then look again: either this thread takes the flag back (a run arrived in between),
                // or the publisher took it and released the semaphore, which must then be consumed.
                Interlocked.Exchange(ref _sleeping, 1);
                int run = Volatile.Read(ref _pool._hot.Run);
                if (run != seen)
                {
                    if (Interlocked.CompareExchange(ref _sleeping, 0, 1) != 1) Signal.Wait();
                    return run;
                }
                Signal.Wait();
                run = Volatile.Read(ref _pool._hot.Run);
                if (run != seen) return run;
            }
        }
    }
}
