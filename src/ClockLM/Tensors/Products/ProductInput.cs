using System.Runtime.CompilerServices;

namespace ClockLM.Tensors;

/// <summary>
/// X of matrix products: <see cref="Count"/> vectors of <see cref="Cols"/> values one after another, together with the
/// forms of it the quantized kernels read, each made on first use and kept until the next <c>Load</c>: 8-bit
/// blocks of 32 or 256 values per vector (<see cref="ActivationBlocks"/>) and the packed kernels' layouts of the
/// 32-value blocks. Products that read one input (q, k and v read the normalized residual; gate and up the normalized
/// mid-layer residual) are given the same ProductInput, so it is quantized once for all of them. What the forms were
/// made from is this object's state alone: whoever writes X calls <c>Load</c> again, and nothing carries over
/// from one input to the next.
/// </summary>
internal sealed unsafe class ProductInput
{
    private ActivationBlocks[] _blocks32 = [], _blocks256 = [];
    private bool _quantized32, _quantized256;
    private byte[]? _laidOut;
    private byte* _laidOutStart;
    private ActivationLayout _layout;
    private ProductInput[] _slices = [];
    private long _loads, _loadedFor = -1; // Load calls so far; for a slice, its parent's count when it was loaded

    /// <summary>The first value of X (Count × Cols floats, pinned or on the stack for as long as products read it).</summary>
    public float* X { get; private set; }

    /// <summary>Vectors in X.</summary>
    public int Count { get; private set; }

    /// <summary>Values per vector.</summary>
    public int Cols { get; private set; }

    /// <summary>Makes this the input <paramref name="x"/> (<paramref name="count"/> vectors of <paramref name="cols"/>
    /// values), forgetting every form made from the previous one. Returns this, for use in a call's argument.</summary>
    public ProductInput Load(float* x, int count, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        X = x;
        Count = count;
        Cols = cols;
        _quantized32 = _quantized256 = false;
        _layout = ActivationLayout.None;
        _loads++;
        return this;
    }

    /// <summary>Loads rows [first, first + rows) of <paramref name="pinned"/>, a pinned (rows, cols) buffer.</summary>
    public ProductInput Load(float[] pinned, int first, int rows, int cols)
    {
        if ((long)(first + rows) * cols > pinned.Length)
            throw new ArgumentOutOfRangeException(nameof(rows), $"rows [{first}, {first + rows}) of {cols} values lie outside a buffer of {pinned.Length}");
        fixed (float* p = pinned) return Load(p + (long)first * cols, rows, cols); // pinned: the pointer stays valid
    }

    /// <summary>
    /// The 8-bit blocks of every vector for weights of <paramref name="blockSize"/>-value blocks (32 or 256), quantized
    /// now unless this input already was. Many vectors are quantized on <paramref name="pool"/>, each on its own.
    /// </summary>
    public ActivationBlocks[] Blocks(int blockSize, WorkerPool? pool, bool avx2)
    {
        if (blockSize == 32 ? _quantized32 : _quantized256) return blockSize == 32 ? _blocks32 : _blocks256;
        ref var sets = ref blockSize == 32 ? ref _blocks32 : ref _blocks256;
        if (sets.Length < Count)
        {
            int old = sets.Length;
            Array.Resize(ref sets, Math.Max(Count, 2 * old));
            for (int i = old; i < sets.Length; i++) sets[i] = new ActivationBlocks();
        }
        var quantize = new QuantizeJob { X = X, Cols = Cols, BlockSize = blockSize, Avx2 = avx2, Activations = sets };
        if (pool != null && Count >= 8) pool.Run(quantize, Count);
        else quantize.Execute(0, Count);
        if (blockSize == 32) _quantized32 = true;
        else _quantized256 = true;
        return sets;
    }

    /// <summary>
    /// The 32-value blocks laid out as the packed kernels read them (<see cref="Q4_0Pairs.LayOut"/> for Q4_0, four
    /// vectors per block for Q8_0: <see cref="Q8_0Packed.LayOutQuads"/>), made now unless this input already is in
    /// <paramref name="layout"/>. The blocks must have been made (<see cref="Blocks"/>).
    /// </summary>
    public byte* LaidOut(ActivationLayout layout)
    {
        if (_layout == layout) return _laidOutStart;
        long bytes = layout == ActivationLayout.Q4_0Pairs ? Q4_0Pairs.LaidOutBytes(Count, Cols) : Q8_0Packed.QuadBytes(Count, Cols);
        if (_laidOut is null || _laidOut.Length < bytes + 63)
            _laidOut = PackedRows.Allocate(bytes, out _laidOutStart);
        if (layout == ActivationLayout.Q4_0Pairs) Q4_0Pairs.LayOut(_blocks32, Count, Cols, _laidOutStart);
        else Q8_0Packed.LayOutQuads(_blocks32, Count, Cols, _laidOutStart);
        _layout = layout;
        return _laidOutStart;
    }

    /// <summary>Slice <paramref name="index"/> of a product taken in slices: vectors [first, first + count) as an input
    /// of their own, loaded once per <c>Load</c>, so products sharing this input share the slices' forms too.</summary>
    public ProductInput Slice(int index, int first, int count)
    {
        if (_slices.Length <= index) Array.Resize(ref _slices, index + 1);
        var slice = _slices[index] ??= new ProductInput();
        if (slice._loadedFor != _loads) slice.Load(X + (long)first * Cols, count, Cols);
        slice._loadedFor = _loads;
        return slice;
    }

    [ThreadStatic] private static ProductInput? _scratch;

    /// <summary>The calling thread's input for a single product whose caller has no input of its own to share; it is
    /// loaded again by every such product, so nothing in it outlives one.</summary>
    public static ProductInput Scratch => _scratch ??= new ProductInput();
}
