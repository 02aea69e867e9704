using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// The fetch unit: brings a layer's weights from the model file into memory ahead of the cycle that needs them, the way
/// a processor fetches instructions ahead of the one it executes. A background thread reads one byte of every page of
/// the layer's mapped tensors (the operating system reads the file ahead around each), so on a cold start reading the
/// file overlaps computing the layers before. Only weights still in the file's pages are fetched (packed and split
/// copies are in memory already), and each layer once: asking for a fetched layer again costs one array read.
/// Dispose stops the thread before the file is unmapped.
/// </summary>
internal sealed class WeightFetch : IDisposable
{
    private readonly TensorView[][] _regions; // per layer, then the output head: the matrices read from the file's pages
    private readonly int _depth;
    private readonly bool[] _asked;
    private int _unasked;             // layers not asked for yet: once none are left and the queue is empty, the thread ends
    private readonly Queue<int> _queue = new();
    private Thread? _thread;
    private bool _stopped;
    private int _touched; // keeps the page reads from being optimised away

    /// <param name="regions">Per layer (and last, the output head), the memory-mapped matrices its products read.</param>
    /// <param name="depth">Layers fetched ahead of the one computing.</param>
    public WeightFetch(TensorView[][] regions, int depth)
    {
        _regions = regions;
        _depth = depth;
        _asked = new bool[regions.Length];
        _unasked = regions.Length;
    }

    /// <summary>Bytes of layer (or output head, at index layers) <paramref name="index"/> in mapped pages.</summary>
    public long Bytes(int index) => _regions[index].Sum(r => r.ByteCount);

    /// <summary>Asks for <paramref name="layer"/> and the <c>depth</c> after it (the output head after the last layer),
    /// those not asked for before; returns the bytes asked for now.</summary>
    public long Ahead(int layer)
    {
        long bytes = 0;
        for (int i = layer; i <= Math.Min(layer + _depth, _regions.Length - 1); i++)
        {
            if (_asked[i]) continue;
            lock (_queue)
            {
                if (_stopped) return bytes;
                if (_asked[i]) continue;
                _asked[i] = true;
                _unasked--;
                _queue.Enqueue(i);
                Monitor.Pulse(_queue);
                _thread ??= StartThread();
            }
            bytes += Bytes(i);
        }
        return bytes;
    }

    private Thread StartThread()
    {
        var thread = new Thread(Loop) { IsBackground = true, Name = "clocklm fetch", Priority = ThreadPriority.BelowNormal };
        thread.Start();
        return thread;
    }

    private void Loop()
    {
        while (true)
        {
            int index;
            lock (_queue)
            {
                while (_queue.Count == 0 && !_stopped && _unasked > 0) Monitor.Wait(_queue);
                if (_stopped || _queue.Count == 0) return; // stopped, or every layer fetched
                index = _queue.Dequeue();
            }
            foreach (var matrix in _regions[index]) _touched += matrix.TouchPages(ref _stopped);
        }
    }

    /// <summary>Stops fetching and waits for the thread, so no read of the mapping outlives it.</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_queue)
        {
            _stopped = true;
            Monitor.Pulse(_queue);
            thread = _thread;
        }
        thread?.Join();
    }
}
