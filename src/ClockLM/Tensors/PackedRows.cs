using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Q4_0 and Q8_0 weights stored eight rows at a time, laid out once when a model loads, so that matrix products read
/// them in the order their kernels consume them (as <see cref="RowOctets"/> lays them out per product, but
/// persistently). Q4_0 is packed in block pairs (<see cref="Q4_0Pairs"/>). A packed Q8_0 block octet holds, for one
/// 32-value block of eight rows, the words of the rows' codes interleaved (register k: word k of row 0, row 1, ...,
/// row 7) followed by the eight f16 scales: 256 + 16 bytes, exactly the bytes of the eight rows. Octet o's blocks
/// follow each other, octets follow each other. Every (row, vector) result is the same float computation as
/// <see cref="MatVec"/> on the unpacked rows.
/// </summary>
internal static unsafe class PackedRows
{
    /// <summary>True when <paramref name="w"/>'s type and shape can be packed and this machine runs the packed kernels.</summary>
    public static bool CanPack(in TensorView w) =>
        KernelPaths.CanRun(KernelPath.Vector256) && w.Type is GgmlType.Q4_0 or GgmlType.Q8_0
        && w.Rows % 8 == 0 && w.Rows > 0 && w.Cols >= 32;

    /// <summary>True when products of <paramref name="w"/> on <paramref name="path"/> use its packed rows.</summary>
    public static bool Used(in TensorView w, KernelPath path) => w.Packed != null && path == KernelPath.Vector256;

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
    /// thread's share: for Q4_0 all of them, in block pairs; for Q8_0 every four vectors together.</summary>
    public static void Multiply(in TensorView w, ProductInput input, float* y, WorkerPool? pool)
    {
        int count = input.Count;
        var activations = input.Blocks(32, pool, avx2: true);
        byte* laid = w.Type == GgmlType.Q4_0 ? input.LaidOut(ActivationLayout.Q4_0Pairs)
            : count >= 4 ? input.LaidOut(ActivationLayout.Quads) : null;
        var job = new PackedJob { Type = w.Type, Packed = w.Packed, Cols = w.Cols, Rows = w.Rows, Count = count, Y = y, Activations = activations, LaidOut = laid };
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

        public readonly void Execute(int start, int end)
        {
            if (Type == GgmlType.Q4_0) Q4_0Rows(this, start, end);
            else Q8_0Rows(this, start, end);
        }
    }

    /// <summary>Octets taken together through the column panels of a Q4_0 product: their weights of one panel stream
    /// past while the panel's activations stay cached.</summary>
    private const int Q4_0Tile = 16;

    /// <summary>Octets [start, end) of a Q4_0 product: tiles of <see cref="Q4_0Tile"/> octets, each panel by panel,
    /// each octet times every group of up to four vectors, the accumulators carried in the calling thread's buffer.</summary>
    private static void Q4_0Rows(in PackedJob job, int start, int end)
    {
        int pairs = Q4_0Pairs.Pairs(job.Cols), panels = Q4_0Pairs.Panels(job.Cols), octets = job.Rows / 8, groups = (job.Count + 3) / 4;
        long groupBytes = (long)pairs * 4 * Q4_0Pairs.ActBytes;
        byte* state = StateBuffer(Q4_0Tile * groups * Q4_0Pairs.StateBytes);
        for (int tile = start; tile < end; tile += Q4_0Tile)
            for (int panel = 0; panel < panels; panel++)
                for (int o = tile; o < Math.Min(end, tile + Q4_0Tile); o++)
                    for (int g = 0; g < groups; g++)
                    {
                        int n = Math.Min(4, job.Count - 4 * g);
                        byte* acts = job.LaidOut + g * groupBytes + (long)panel * Q4_0Pairs.PanelPairs * n * Q4_0Pairs.ActBytes;
                        Q4_0Pairs.Panel(Q4_0Pairs.At(job.Packed, job.Cols, octets, panel, o), Q4_0Pairs.PairsIn(job.Cols, panel), acts, n,
                            state + ((o - tile) * groups + g) * Q4_0Pairs.StateBytes, panel == 0, panel == panels - 1,
                            job.Y + 8 * o + 4L * g * job.Rows, job.Rows);
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
    /// activations <see cref="Multiply"/> laid out), the last one to three in pairs and alone
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
                Q8_0Packed.Quad(octet, blocks, job.LaidOut + (long)q * blocks * QuadBlockBytes, y + 4L * q * job.Rows, job.Rows);
            if (rest < count)
                RowOctets.Vectors<Q8_0Packed>(octet, blocks, acts + rest, count - rest, y + (long)rest * job.Rows, job.Rows, prefetch: count == 1);
        }
    }

    /// <summary>Bytes of one block of four vectors' activations as <see cref="Q8_0Packed.Quad"/> reads them: the four
    /// vectors' 32 codes, then their four scales (times 2^112, <see cref="ActivationBlocks.DUp"/>), then their four code
    /// sums times 8.</summary>
    private const int QuadBlockBytes = 4 * 32 + 16 + 16;

    /// <summary>Bytes <see cref="LayOutQuads"/> writes for <paramref name="count"/> vectors of <paramref name="cols"/> values.</summary>
    public static long QuadBytes(int count, int cols) => (long)(count / 4) * (cols / 32) * QuadBlockBytes;

    /// <summary>Vectors 4q..4q+3 of every whole group of four, block by block, in the layout of
    /// <see cref="QuadBlockBytes"/> at <paramref name="dst"/>: one pointer then reaches everything a block needs.</summary>
    public static void LayOutQuads(ActivationBlocks[] activations, int count, int cols, byte* dst)
    {
        int quads = count / 4, blocks = cols / 32;
        byte* p = dst;
        for (int q = 0; q < quads; q++)
            for (int b = 0; b < blocks; b++, p += QuadBlockBytes)
                for (int v = 0; v < 4; v++)
                {
                    var a = new RowDots.Act32(activations[4 * q + v], scaledUp: true);
                    Vector256.Load(a.Qs + 32 * b).Store((sbyte*)p + 32 * v);
                    ((float*)(p + 128))[v] = a.D[b];
                    ((int*)(p + 144))[v] = a.Sum[b] << 3;
                }
    }

    /// <summary>The sixteen accumulators of a four-vector product (vector t, block b mod 4 at 4 t + b mod 4), zeroed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ClearAccumulators(Vector256<float>* acc)
    {
        for (int i = 0; i < 16; i++) acc[i] = default;
    }

    /// <summary>Vector t's eight results of a four-vector product: (a0 + a1) + (a2 + a3), as <see cref="RowOctets.Octet"/> ends.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreAccumulators(Vector256<float>* acc, float* y, int yStride)
    {
        for (int t = 0; t < 4; t++)
            ((acc[4 * t] + acc[4 * t + 1]) + (acc[4 * t + 2] + acc[4 * t + 3])).Store(y + (long)t * yStride);
    }

    /// <summary>
    /// The eight f16 scales at p as floats times 2^-112 (<see cref="HalfWidening.WidenFiniteUnscaled"/>, three
    /// operations). The activations' scales come times 2^112 (<see cref="ActivationBlocks.DUp"/>), so every product of
    /// the two is the exact product of the true scales, rounded once, as in <see cref="MatVec"/>. Infinite and NaN scales
    /// would come out finite: matrices with such scales are not packed (<see cref="PackOctets"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scales(byte* p) => HalfWidening.WidenFiniteUnscaled((ushort*)p, HalfWidening.FiniteMask);

    /// <summary>The f16 scales of the eight rows' blocks at w, w + rowBytes, ... into p.</summary>
    private static void PackScales(byte* w, int rowBytes, byte* p)
    {
        for (int j = 0; j < 8; j++) ((ushort*)p)[j] = *(ushort*)(w + (long)j * rowBytes);
    }

    /// <summary>Q8_0: eight registers of bytes (register k: word k of the 32 code bytes of rows 0..7), then the scales.</summary>
    public readonly struct Q8_0Packed : RowOctets.IPair
    {
        public static int BlockBytes => 256 + 16;

        public static void Pack(byte* w, int rowBytes, int blocks, byte* packed)
        {
            for (int b = 0; b < blocks; b++, w += 34, packed += BlockBytes)
            {
                Q8_0Octets.TransposeWords(w + 2, rowBytes, packed);
                PackScales(w, rowBytes, packed + 256);
            }
        }

        /// <summary>The terms of block b for vectors a and c (the per-product octet's pair terms with half-precision scales).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b) =>
            Q8_0Octets.Terms(p, Scales(p + 256), a, c, b);

        /// <summary>
        /// One packed octet times four vectors, which share each block's weight magnitudes (eight registers) and scales;
        /// the weights' signs go onto each vector's activations (vpsignb reads the codes from memory), and every
        /// vpmaddubsw is widened by its own vpmaddwd, as <see cref="Q8_0Octets.Sum(byte*, int*)"/> does.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Quad(byte* octet, int blocks, byte* quadActs, float* y, int yStride)
        {
            var acc = stackalloc Vector256<float>[16];
            ClearAccumulators(acc);
            for (int b = 0; b < blocks; b++)
            {
                byte* p = octet + (long)b * BlockBytes, a = quadActs + (long)b * QuadBlockBytes;
                for (int line = 0; line < BlockBytes; line += 64) Sse.Prefetch0(p + 4096 + line);
                var m0 = Avx2.Abs(Vector256.Load((sbyte*)p)); var m1 = Avx2.Abs(Vector256.Load((sbyte*)p + 32));
                var m2 = Avx2.Abs(Vector256.Load((sbyte*)p + 64)); var m3 = Avx2.Abs(Vector256.Load((sbyte*)p + 96));
                var m4 = Avx2.Abs(Vector256.Load((sbyte*)p + 128)); var m5 = Avx2.Abs(Vector256.Load((sbyte*)p + 160));
                var m6 = Avx2.Abs(Vector256.Load((sbyte*)p + 192)); var m7 = Avx2.Abs(Vector256.Load((sbyte*)p + 224));
                var scales = Scales(p + 256);
                var slot = acc + (b & 3);
                slot[0] += QuadTerm(m0, m1, m2, m3, m4, m5, m6, m7, (sbyte*)p, scales, a, 0);
                slot[4] += QuadTerm(m0, m1, m2, m3, m4, m5, m6, m7, (sbyte*)p, scales, a, 1);
                slot[8] += QuadTerm(m0, m1, m2, m3, m4, m5, m6, m7, (sbyte*)p, scales, a, 2);
                slot[12] += QuadTerm(m0, m1, m2, m3, m4, m5, m6, m7, (sbyte*)p, scales, a, 3);
            }
            StoreAccumulators(acc, y, yStride);
        }

        /// <summary>Vector v's term of a block: the integer sum of <see cref="Q8_0Octets.Sum(byte*, int*)"/> and the float
        /// operations of <see cref="Term"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> QuadTerm(Vector256<byte> m0, Vector256<byte> m1, Vector256<byte> m2, Vector256<byte> m3,
            Vector256<byte> m4, Vector256<byte> m5, Vector256<byte> m6, Vector256<byte> m7, sbyte* w, Vector256<float> scales, byte* a, int v)
        {
            var isum = Q8_0Octets.Sum(m0, m1, m2, m3, m4, m5, m6, m7, w, (int*)(a + 32 * v));
            return scales * Vector256.Create(((float*)(a + 128))[v]) * Vector256.ConvertToSingle(isum);
        }

        /// <summary>Lane j: (dw_j * dx) * Σ q x of block b, as <see cref="Q8_0Octets.Term"/> on the per-product octet.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Term(byte* p, in RowDots.Act32 a, int b) =>
            Scales(p + 256) * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(Q8_0Octets.Sum(p, (int*)(a.Qs + 32 * b)));
    }
}
