using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ClockLM.Tensors;

/// <summary>
/// Threads streaming memory together, timed, for the roofline's bandwidth: each thread allocates its own share and
/// touches it first (so its pages are placed for it, and stay its own), then all read their shares at once with
/// <see cref="StreamingRead"/>, once per read loop and run.
/// </summary>
internal static unsafe class ParallelRead
{
    /// <summary>
    /// Seconds of run r of loop l at [r, l], from the moment all <paramref name="threads"/> threads start reading to the
    /// moment the last one ends; every thread reads <paramref name="shareBytes"/> (a multiple of
    /// <see cref="StreamingRead.StepBytes"/>) prefetching <paramref name="prefetchAheads"/>[l] bytes ahead. Run 0 is a
    /// warm-up (the pages' first reads, the loops' compilation) and run 1.. the timed ones.
    /// </summary>
    public static double[,] Time(int threads, long shareBytes, IReadOnlyList<int> prefetchAheads, int runs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        if (shareBytes <= 0 || shareBytes % StreamingRead.StepBytes != 0)
            throw new ArgumentOutOfRangeException(nameof(shareBytes), shareBytes, $"expected a positive multiple of {StreamingRead.StepBytes}");
        var seconds = new double[runs + 1, prefetchAheads.Count];
        using var started = new Barrier(threads);
        using var finished = new Barrier(threads);
        Exception? failure = null;
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            bool timer = t == 0;
            workers[t] = new Thread(() =>
            {
                byte* mine = null;
                try
                {
                    mine = (byte*)NativeMemory.AlignedAlloc((nuint)shareBytes, 4096);
                    for (long i = 0; i < shareBytes; i += 4096) mine[i] = (byte)(i >> 12); // first touch: every page
                }
                catch (OutOfMemoryException e) { Volatile.Write(ref failure, e); }
                ulong sink = 0;
                // Every thread walks the same schedule, so the barriers pair up even when one could not allocate.
                for (int run = 0; run <= runs; run++)
                    for (int loop = 0; loop < prefetchAheads.Count; loop++)
                    {
                        started.SignalAndWait();
                        long start = Stopwatch.GetTimestamp();
                        if (Volatile.Read(ref failure) is null) sink ^= StreamingRead.Xor(mine, shareBytes, prefetchAheads[loop]);
                        finished.SignalAndWait();
                        if (timer) seconds[run, loop] = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    }
                Interlocked.Add(ref _sink, (long)sink);
                NativeMemory.AlignedFree(mine);
            }) { IsBackground = true };
        }
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        if (failure is not null)
            throw new InsufficientMemoryException($"measuring read bandwidth needs {shareBytes} bytes for each of {threads} threads", failure);
        return seconds;
    }

    private static long _sink; // the reads' results, kept so that no read can be left out
}
