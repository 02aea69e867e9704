using ClockLM.Tensors;

namespace ClockLM.Nn;

/// <summary>
/// Where the float operations of a training graph run. An operation given a context takes its fast path: matrix
/// products by <see cref="Gemm"/>, fused attention, eight-lane row kernels, with rows shared out over the context's
/// worker pool. Work is split so that no sum depends on the split (each value is reduced by one thread in a fixed
/// order), so results are the same bits for any <see cref="Threads"/>. Without a context an operation runs its plain
/// generic code on the calling thread; the tests compare the two.
/// </summary>
/// <remarks>
/// The context also recycles the arrays of a graph's values and gradients: <see cref="Tensor{T}.ReleaseGraph"/> hands
/// them back once a step is done with its graph, and the next step's operations take them again instead of allocating
/// (a training step's graph holds hundreds of megabytes, which would otherwise cost the garbage collector and fresh
/// pages every step). Operations are built and their gradients run on one thread at a time per context.
/// </remarks>
public sealed class ComputeContext : IDisposable
{
    private readonly WorkerPool? _pool;
    private readonly Dictionary<(Type Type, int Length), Stack<Array>> _free = [];

    /// <summary>Creates a context running on <paramref name="threads"/> threads (the caller and threads − 1 workers).</summary>
    public ComputeContext(int threads)
    {
        if (threads < 1 || threads > 1024)
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "expected 1 to 1024 threads");
        Threads = threads;
        _pool = threads > 1 ? new WorkerPool(threads - 1) : null;
    }

    /// <summary>True where the fast path's products and row kernels run eight lanes with fused multiply-adds (AVX2 and
    /// FMA); elsewhere they run their scalar twins, with the same results, much more slowly.</summary>
    public static bool Vectorized => Gemm.Vectorized;

    /// <summary>Threads that share the work, the caller included.</summary>
    public int Threads { get; }

    /// <summary>The workers (null with one thread).</summary>
    internal WorkerPool? Pool => _pool;

    /// <summary>Runs <paramref name="body"/>(start, end) over disjoint ranges covering [0, <paramref name="count"/>), on the
    /// pool when <paramref name="work"/> (a rough count of operations) makes it worth waking the workers.</summary>
    internal void For(int count, long work, Action<int, int> body)
    {
        if (_pool is null || count < 2 || work < 1 << 15)
        {
            body(0, count);
            return;
        }
        _pool.Run(new RangeJob(body), count);
    }

    /// <summary>An array of <paramref name="length"/> values for an operation's result or gradient: one a released graph
    /// handed back, or a new one. With <paramref name="zeroed"/> it holds zeros (a gradient to add into); otherwise its
    /// values are left over, for a result that overwrites every value.</summary>
    internal T[] Rent<T>(int length, bool zeroed)
    {
        if (_free.TryGetValue((typeof(T), length), out var stack) && stack.Count > 0)
        {
            var array = (T[])stack.Pop();
            if (zeroed) Array.Clear(array);
            return array;
        }
        return zeroed ? new T[length] : GC.AllocateUninitializedArray<T>(length);
    }

    /// <summary>Takes back an array no tensor will use again.</summary>
    internal void Return<T>(T[] array)
    {
        if (!_free.TryGetValue((typeof(T), array.Length), out var stack))
            _free[(typeof(T), array.Length)] = stack = new Stack<Array>();
        stack.Push(array);
    }

    /// <summary>Stops the workers and drops the recycled arrays.</summary>
    public void Dispose()
    {
        _pool?.Dispose();
        _free.Clear();
    }

    private readonly struct RangeJob(Action<int, int> body) : IRowRangeJob
    {
        public void Execute(int start, int end) => body(start, end);
    }
}
