using System.Runtime.CompilerServices;

namespace ClockLM.Tensors;

/// <summary>
/// Q4_0 and Q8_0 weights stored eight rows at a time, laid out once when a model loads, so that matrix products read
/// them in the order their kernels consume them (as <see cref="RowOctets"/> lays them out per product, but
/// persistently): Q4_0 in block pairs (<see cref="Q4_0Pairs"/>), Q8_0 in block octets (<see cref="Q8_0Packed"/>).
/// This class decides which matrices are packed, packs them, and runs their products. Every (row, vector) result is
/// the same float computation as <see cref="MatVec"/> on the unpacked rows.
/// </summary>
internal static unsafe class PackedRows
{
    /// <summary>True when <paramref name="w"/>'s type and shape can be packed and this machine runs the packed kernels.</summary>
    public static bool CanPack(in TensorView w) =>
        KernelOptions.CanRun(KernelPath.Vector256) && w.Type is GgmlType.Q4_0 or GgmlType.Q8_0
        && w.Rows % 8 == 0 && w.Rows > 0 && w.Cols >= 32;

    /// <summary>True when products of <paramref name="w"/> on <paramref name="kernels"/> use its packed rows.</summary>
    public static bool Used(in TensorView w, KernelOptions kernels) =>
        w.Packed != null && w.Type is GgmlType.Q4_0 or GgmlType.Q8_0 && kernels.UsesPacked;

    /// <summary>Bytes of one packed octet of rows of <paramref name="cols"/> values.</summary>
    public static long OctetBytes(GgmlType type, int cols) =>
        type == GgmlType.Q4_0 ? Q4_0Pairs.OctetBytes(cols) : (long)(cols / 32) * Q8_0Packed.BlockBytes;

    /// <summary>Bytes of the packed copy of <paramref name="w"/> (Q4_0 rows of an odd number of blocks take one more
    /// block per octet than the file).</summary>
    public static long PackedBytes(in TensorView w) => w.Rows / 8 * OctetBytes(w.Type, w.Cols);

    /// <summary>Packs rows [8 first, 8 (first + octets)) given in their file layout at <paramref name="rows"/> into
    /// <paramref name="packed"/> (the packed tensor's start; octet o lands at its own place). False when some block
    /// scale is infinite or NaN: the packed kernels widen scales assuming finite ones, so such a matrix must stay in
    /// its file layout.</summary>
    public static bool PackOctets(GgmlType type, int cols, byte* rows, int first, int octets, int totalOctets, byte* packed)
    {
        int rowBytes = (int)GgmlTypeInfo.RowBytes(type, cols), blocks = cols / 32;
        long octetBytes = OctetBytes(type, cols);
        bool finite = true;
        for (int o = 0; o < octets; o++)
        {
            byte* src = rows + (long)o * 8 * rowBytes;
            finite &= ScalesFinite(src, rowBytes, blocks, (int)GgmlTypeInfo.RowBytes(type, 32));
            if (type == GgmlType.Q4_0) Q4_0Pairs.Pack(src, rowBytes, cols, packed, first + o, totalOctets);
            else Q8_0Packed.Pack(src, rowBytes, blocks, packed + (first + o) * octetBytes);
        }
        return finite;
    }

    /// <summary>True when no block scale (the f16 value that starts each block of <paramref name="blockBytes"/>) of the
    /// eight rows at w, w + rowBytes, ... is infinite or NaN.</summary>
    private static bool ScalesFinite(byte* w, int rowBytes, int blocks, int blockBytes)
    {
        bool finite = true;
        for (int j = 0; j < 8; j++)
            for (int b = 0; b < blocks; b++)
                finite &= (*(ushort*)(w + (long)j * rowBytes + (long)b * blockBytes) & 0x7C00) != 0x7C00;
        return finite;
    }

    /// <summary>A packed copy of <paramref name="w"/> in pinned memory, and the view that uses it.</summary>
    public static (TensorView View, byte[] Storage) Pack(in TensorView w)
    {
        if (!CanPack(w)) throw new ArgumentException($"a {w.Rows}x{w.Cols} {w.Type} matrix cannot be packed");
        var storage = Allocate(PackedBytes(w), out byte* p);
        if (!PackOctets(w.Type, w.Cols, w.Data, 0, w.Rows / 8, w.Rows / 8, p))
            throw new ArgumentException($"a {w.Rows}x{w.Cols} {w.Type} matrix with an infinite or NaN block scale cannot be packed");
        return (w.WithPacked(p), storage);
    }

    /// <summary>Pinned storage for a packed matrix of <paramref name="bytes"/> bytes, and where in it the matrix starts
    /// at a multiple of 64, so that no 64-byte load of the 512-bit kernels spans two cache lines.</summary>
    public static byte[] Allocate(long bytes, out byte* start)
    {
        var storage = GC.AllocateUninitializedArray<byte>(checked((int)(bytes + 63)), pinned: true);
        start = (byte*)(((nint)Unsafe.AsPointer(ref storage[0]) + 63) & ~(nint)63);
        return storage;
    }

    /// <summary>Y = X Wᵀ for the vectors of <paramref name="input"/> (their 32-value blocks already made) with packed
    /// weights, the octets split across <paramref name="pool"/>. The activations are laid out once per input for every
    /// thread's share: for Q4_0 all of them, in block pairs; for Q8_0 every four vectors together. The Q4_0 kernel runs
    /// as wide as <paramref name="kernels"/> say.</summary>
    public static void Multiply(in TensorView w, ProductInput input, float* y, WorkerPool? pool, KernelOptions kernels)
    {
        int count = input.Count;
        var activations = input.Blocks(32, pool, avx2: true);
        byte* laid = w.Type == GgmlType.Q4_0 ? input.LaidOut(ActivationLayout.Q4_0Pairs)
            : count >= 4 ? input.LaidOut(ActivationLayout.Quads) : null;
        var job = new PackedJob { Type = w.Type, Packed = w.Packed, Cols = w.Cols, Rows = w.Rows, Count = count, Y = y, Activations = activations, LaidOut = laid,
            Wide = kernels.PackedWidth == 512 };
        if (pool != null && w.ByteCount * count >= 256 * 1024)
            pool.Run(job, w.Rows / 8);
        else
            job.Execute(0, w.Rows / 8);
    }

    /// <summary>The octets of one product with packed weights, as a job a <see cref="WorkerPool"/> can split (its
    /// range counts octets, not rows).</summary>
    private struct PackedJob : IRowRangeJob
    {
        public GgmlType Type;
        public byte* Packed;
        public int Cols;
        public int Rows;
        public int Count;
        public float* Y;
        public ActivationBlocks[] Activations;
        public byte* LaidOut;
        public bool Wide; // the Q4_0 kernel on 512-bit registers

        public readonly void Execute(int start, int end)
        {
            if (Type == GgmlType.Q4_0) Q4_0Rows(this, start, end);
            else Q8_0Rows(this, start, end);
        }
    }

    /// <summary>Octets taken together through the column panels of a Q4_0 product: their weights of one panel stream
    /// past while the panel's activations stay cached.</summary>
    private const int Q4_0OctetsPerTile = 16;

    /// <summary>Octets [start, end) of a Q4_0 product: tiles of <see cref="Q4_0OctetsPerTile"/> octets, each panel by panel,
    /// each octet times every group of up to four vectors, the accumulators carried in the calling thread's buffer.</summary>
    private static void Q4_0Rows(in PackedJob job, int start, int end)
    {
        int pairs = Q4_0Pairs.Pairs(job.Cols), panels = Q4_0Pairs.Panels(job.Cols), octets = job.Rows / 8, groups = (job.Count + 3) / 4;
        long groupBytes = (long)pairs * 4 * Q4_0Pairs.ActBytes;
        byte* state = StateBuffer(Q4_0OctetsPerTile * groups * Q4_0Pairs.StateBytes);
        for (int tile = start; tile < end; tile += Q4_0OctetsPerTile)
            for (int panel = 0; panel < panels; panel++)
                for (int o = tile; o < Math.Min(end, tile + Q4_0OctetsPerTile); o++)
                    for (int g = 0; g < groups; g++)
                    {
                        int n = Math.Min(4, job.Count - 4 * g);
                        byte* acts = job.LaidOut + g * groupBytes + (long)panel * Q4_0Pairs.PanelPairs * n * Q4_0Pairs.ActBytes;
                        Q4_0Pairs.Panel(Q4_0Pairs.At(job.Packed, job.Cols, octets, panel, o), Q4_0Pairs.PairsIn(job.Cols, panel), acts, n,
                            state + ((o - tile) * groups + g) * Q4_0Pairs.StateBytes, panel == 0, panel == panels - 1,
                            job.Y + 8 * o + 4L * g * job.Rows, job.Rows, job.Wide);
                    }
    }

    [ThreadStatic] private static byte[]? _state;
    [ThreadStatic] private static byte* _stateStart;

    /// <summary>The calling thread's buffer for carried accumulators, at least <paramref name="bytes"/> long (aligned to 64).</summary>
    private static byte* StateBuffer(int bytes)
    {
        if (_state is null || _state.Length < bytes + 63)
            _state = Allocate(bytes, out _stateStart);
        return _stateStart;
    }

    /// <summary>
    /// Octets [start, end) of a Q8_0 product: every four vectors together (<see cref="Q8_0Packed.Quad"/>, on the
    /// activations <see cref="Multiply"/> laid out), the last one to three two at a time and alone
    /// (<see cref="RowOctets.Vectors"/>), all reading the packed octets directly.
    /// </summary>
    private static void Q8_0Rows(in PackedJob job, int start, int end)
    {
        int blocks = job.Cols / 32, count = job.Count, quads = count / 4, rest = 4 * quads;
        var acts = stackalloc RowDots.Act32[count];
        for (int t = 0; t < count; t++) acts[t] = new RowDots.Act32(job.Activations[t], scaledUp: true);
        long octetBytes = (long)blocks * Q8_0Packed.BlockBytes;
        for (int o = start; o < end; o++)
        {
            byte* octet = job.Packed + o * octetBytes;
            float* y = job.Y + 8 * o;
            for (int q = 0; q < quads; q++)
                Q8_0Packed.Quad(octet, blocks, job.LaidOut + (long)q * blocks * Q8_0Packed.QuadBlockBytes, y + 4L * q * job.Rows, job.Rows);
            if (rest < count)
                RowOctets.Vectors<Q8_0Packed>(octet, blocks, acts + rest, count - rest, y + (long)rest * job.Rows, job.Rows, prefetch: count == 1);
        }
    }
}
