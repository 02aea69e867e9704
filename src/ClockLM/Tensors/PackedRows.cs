using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Q4_0 and Q8_0 weights stored eight rows at a time, laid out once when a model loads, so that matrix products read
/// them in the order the AVX2 kernels consume them (as <see cref="RowOctets"/> lays them out per product, but
/// persistently). A packed block octet holds, for one 32-value block of eight rows, the words of the rows' codes
/// interleaved (register k: word k of row 0, row 1, ..., row 7) followed by the eight f16 scales: 128 + 16 bytes for
/// Q4_0 (the nibbles stay packed; the low nibbles of word k are codes 4k..4k+3, the high ones codes 16+4k..16+4k+3)
/// and 256 + 16 for Q8_0, exactly the bytes of the eight rows. Octet o's blocks follow each other, octets follow
/// each other. Every (row, vector) result is the same float computation as <see cref="MatVec"/> on the unpacked rows.
/// </summary>
internal static unsafe class PackedRows
{
    /// <summary>True when <paramref name="w"/>'s type and shape can be packed and this machine runs the packed kernels.</summary>
    public static bool CanPack(in TensorView w) =>
        KernelPaths.CanRun(KernelPath.Vector256) && w.Type is GgmlType.Q4_0 or GgmlType.Q8_0
        && w.Rows % 8 == 0 && w.Rows > 0 && w.Cols >= 32;

    /// <summary>True when products of <paramref name="w"/> on <paramref name="path"/> use its packed rows.</summary>
    public static bool Used(in TensorView w, KernelPath path) => w.Packed != null && path == KernelPath.Vector256;

    /// <summary>Bytes one packed block octet takes for <paramref name="type"/>.</summary>
    public static int BlockBytes(GgmlType type) => type == GgmlType.Q4_0 ? Q4_0Packed.BlockBytes : Q8_0Packed.BlockBytes;

    /// <summary>Packs rows [8 first, 8 (first + octets)) given in their file layout at <paramref name="rows"/> into
    /// <paramref name="packed"/> (the packed tensor's start; octet o lands at its own place). False when some block
    /// scale is infinite or NaN: the packed kernels widen scales assuming finite ones, so such a matrix must stay in
    /// its file layout.</summary>
    public static bool PackOctets(GgmlType type, int cols, byte* rows, int first, int octets, byte* packed)
    {
        int rowBytes = (int)GgmlTypeInfo.RowBytes(type, cols), blocks = cols / 32;
        long octetBytes = (long)blocks * BlockBytes(type);
        int scaleAt = type == GgmlType.Q4_0 ? 128 : 256, blockBytes = BlockBytes(type);
        bool finite = true;
        for (int o = 0; o < octets; o++)
        {
            byte* src = rows + (long)o * 8 * rowBytes;
            byte* dst = packed + (first + o) * octetBytes;
            if (type == GgmlType.Q4_0) Q4_0Packed.Pack(src, rowBytes, blocks, dst);
            else Q8_0Packed.Pack(src, rowBytes, blocks, dst);
            for (int b = 0; b < blocks; b++)
            {
                ushort* scales = (ushort*)(dst + (long)b * blockBytes + scaleAt);
                for (int j = 0; j < 8; j++) finite &= (scales[j] & 0x7C00) != 0x7C00;
            }
        }
        return finite;
    }

    /// <summary>A packed copy of <paramref name="w"/> in pinned memory, and the view that uses it.</summary>
    public static (TensorView View, byte[] Storage) Pack(in TensorView w)
    {
        if (!CanPack(w)) throw new ArgumentException($"a {w.Rows}x{w.Cols} {w.Type} matrix cannot be packed");
        var storage = GC.AllocateUninitializedArray<byte>(checked((int)w.ByteCount), pinned: true);
        fixed (byte* p = storage)
            if (!PackOctets(w.Type, w.Cols, w.Data, 0, w.Rows / 8, p))
                throw new ArgumentException($"a {w.Rows}x{w.Cols} {w.Type} matrix with an infinite or NaN block scale cannot be packed");
        return (w.WithPacked((byte*)Unsafe.AsPointer(ref storage[0])), storage);
    }

    /// <summary>Y = X Wᵀ for <paramref name="count"/> vectors (already quantized into <paramref name="activations"/>)
    /// with packed weights, the octets split across <paramref name="pool"/>. With <paramref name="laidOut"/> the
    /// calling thread's four-vector layout already holds these activations (the previous product had the same input).</summary>
    public static void Multiply(in TensorView w, ActivationBlocks[] activations, float* y, int count, WorkerPool? pool, bool laidOut = false)
    {
        // Four vectors at a time read their activations laid out together, once per product for every thread's share.
        int quads = count / 4, blocks = w.Cols / 32;
        var job = new PackedJob
        {
            Type = w.Type, Packed = w.Packed, Cols = w.Cols, Rows = w.Rows, Count = count, Y = y, Activations = activations,
            QuadActs = quads == 0 ? null : laidOut ? QuadBuffer(quads * blocks * QuadBlockBytes) : QuadActivations(activations, quads, blocks),
        };
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
        public byte* QuadActs;

        public readonly void Execute(int start, int end)
        {
            if (Type == GgmlType.Q4_0) Octets<Q4_0Packed>(this, start, end);
            else Octets<Q8_0Packed>(this, start, end);
        }
    }

    /// <summary>
    /// Octets [start, end): every four vectors together (<see cref="IPackedFormat.Quad"/>, on the activations
    /// <see cref="Multiply"/> laid out), the last one to three in pairs and alone (<see cref="RowOctets.Vectors"/>),
    /// all reading the packed octets directly.
    /// </summary>
    private static void Octets<TPacked>(in PackedJob job, int start, int end) where TPacked : struct, IPackedFormat
    {
        int blocks = job.Cols / 32, count = job.Count, quads = count / 4, rest = 4 * quads;
        var acts = stackalloc RowDots.Act32[count];
        for (int t = 0; t < count; t++) acts[t] = new RowDots.Act32(job.Activations[t], scaledUp: true);
        long octetBytes = (long)blocks * TPacked.BlockBytes;
        for (int o = start; o < end; o++)
        {
            byte* octet = job.Packed + o * octetBytes;
            float* y = job.Y + 8 * o;
            for (int q = 0; q < quads; q++)
                TPacked.Quad(octet, blocks, job.QuadActs + (long)q * blocks * QuadBlockBytes, y + 4L * q * job.Rows, job.Rows);
            if (rest < count)
                RowOctets.Vectors<TPacked>(octet, blocks, acts + rest, count - rest, y + (long)rest * job.Rows, job.Rows, prefetch: count == 1);
        }
    }

    /// <summary>Bytes of one block of four vectors' activations as <see cref="Q4_0Packed.Quad"/> reads them: the four
    /// vectors' 32 codes, then their four scales (times 2^112, <see cref="ActivationBlocks.DUp"/>), then their four code
    /// sums times 8.</summary>
    private const int QuadBlockBytes = 4 * 32 + 16 + 16;

    [ThreadStatic] private static byte[]? _quadActs;

    /// <summary>Vectors 4q..4q+3 for each of <paramref name="quads"/> groups, block by block, in the layout of
    /// <see cref="QuadBlockBytes"/>, in the calling thread's buffer: one pointer then reaches everything a block needs.</summary>
    private static byte* QuadActivations(ActivationBlocks[] activations, int quads, int blocks)
    {
        byte* start = QuadBuffer(quads * blocks * QuadBlockBytes), p = start;
        for (int q = 0; q < quads; q++)
            for (int b = 0; b < blocks; b++, p += QuadBlockBytes)
                for (int v = 0; v < 4; v++)
                {
                    var a = new RowDots.Act32(activations[4 * q + v], scaledUp: true);
                    Vector256.Load(a.Qs + 32 * b).Store((sbyte*)p + 32 * v);
                    ((float*)(p + 128))[v] = a.D[b];
                    ((int*)(p + 144))[v] = a.Sum[b] << 3;
                }
        return start;
    }

    /// <summary>The calling thread's buffer for four-vector activations, at least <paramref name="bytes"/> long.</summary>
    private static byte* QuadBuffer(int bytes)
    {
        var buffer = _quadActs;
        if (buffer is null || buffer.Length < bytes)
            _quadActs = buffer = GC.AllocateUninitializedArray<byte>(bytes, pinned: true);
        return (byte*)Unsafe.AsPointer(ref buffer[0]);
    }

    /// <summary>A packed block-octet format.</summary>
    public interface IPackedFormat : RowOctets.IPair
    {
        /// <summary>Packs eight rows at w, w + rowBytes, ... block by block into packed.</summary>
        static abstract void Pack(byte* w, int rowBytes, int blocks, byte* packed);

        /// <summary>One packed octet times four vectors (their activations at quadActs, see <see cref="QuadActivations"/>);
        /// vector t's eight results into y + t * yStride, each the float computation of <see cref="RowOctets.Octet"/>.</summary>
        static abstract void Quad(byte* octet, int blocks, byte* quadActs, float* y, int yStride);
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

    /// <summary>Q4_0: four registers of packed nibbles (register m: word m of the 16 code bytes of rows 0..7), then the scales.</summary>
    public readonly struct Q4_0Packed : IPackedFormat
    {
        public static int BlockBytes => 128 + 16;

        public static void Pack(byte* w, int rowBytes, int blocks, byte* packed)
        {
            for (int b = 0; b < blocks; b++, w += 18, packed += BlockBytes)
            {
                Q4_0Octets.TransposeCodes(w, rowBytes, packed);
                PackScales(w, rowBytes, packed + 128);
            }
        }

        /// <summary>The terms of block b for vectors a and c, which share the unpacked codes.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b)
        {
            var (p0, p1, p2, p3) = (Vector256.Load(p), Vector256.Load(p + 32), Vector256.Load(p + 64), Vector256.Load(p + 96));
            return Q4_0Octets.Terms(Q4_0Octets.Low(p0), Q4_0Octets.Low(p1), Q4_0Octets.Low(p2), Q4_0Octets.Low(p3),
                Q4_0Octets.High(p0), Q4_0Octets.High(p1), Q4_0Octets.High(p2), Q4_0Octets.High(p3), Scales(p + 128), a, c, b);
        }

        /// <summary>
        /// One packed octet times four vectors (their activations at quadActs, see <see cref="QuadActivations"/>), which
        /// share the unpacked codes and scales of each block; vector t's eight results into y + t * yStride. The sixteen
        /// accumulators (vector t, block b mod 4) live in memory, the eight code registers in registers; every
        /// (row, vector) is the float computation of <see cref="RowOctets.Octet"/>.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Quad(byte* octet, int blocks, byte* quadActs, float* y, int yStride)
        {
            var acc = stackalloc Vector256<float>[16];
            ClearAccumulators(acc);
            for (int b = 0; b < blocks; b++)
            {
                byte* p = octet + (long)b * BlockBytes, a = quadActs + (long)b * QuadBlockBytes;
                Sse.Prefetch0(p + 4096);
                Sse.Prefetch0(p + 4096 + 64);
                Sse.Prefetch0(p + 4096 + 128);
                var (p0, p1, p2, p3) = (Vector256.Load(p), Vector256.Load(p + 32), Vector256.Load(p + 64), Vector256.Load(p + 96));
                var (l0, l1, l2, l3) = (Q4_0Octets.Low(p0), Q4_0Octets.Low(p1), Q4_0Octets.Low(p2), Q4_0Octets.Low(p3));
                var (h0, h1, h2, h3) = (Q4_0Octets.High(p0), Q4_0Octets.High(p1), Q4_0Octets.High(p2), Q4_0Octets.High(p3));
                var scales = Scales(p + 128);
                var slot = acc + (b & 3);
                slot[0] += QuadTerm(l0, l1, l2, l3, h0, h1, h2, h3, scales, a, 0);
                slot[4] += QuadTerm(l0, l1, l2, l3, h0, h1, h2, h3, scales, a, 1);
                slot[8] += QuadTerm(l0, l1, l2, l3, h0, h1, h2, h3, scales, a, 2);
                slot[12] += QuadTerm(l0, l1, l2, l3, h0, h1, h2, h3, scales, a, 3);
            }
            StoreAccumulators(acc, y, yStride);
        }

        /// <summary>Vector v's term of a block (its activations at a, laid out as <see cref="QuadBlockBytes"/> says):
        /// the integers and float operations of <see cref="Q4_0Octets.Term(Vector256{short}, Vector256{float}, in RowDots.Act32, int)"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> QuadTerm(Vector256<byte> l0, Vector256<byte> l1, Vector256<byte> l2, Vector256<byte> l3,
            Vector256<byte> h0, Vector256<byte> h1, Vector256<byte> h2, Vector256<byte> h3, Vector256<float> scales, byte* a, int v)
        {
            var sums = RowOctets.CodeSums(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(a + 32 * v));
            var isum = Avx2.MultiplyAddAdjacent(sums, Vector256.Create((short)1)) - Vector256.Create(((int*)(a + 144))[v]);
            return scales * Vector256.Create(((float*)(a + 128))[v]) * Vector256.ConvertToSingle(isum);
        }

        /// <summary>Lane j: (dw_j * dx) * (Σ q x - 8 Σ x) of block b, as <see cref="Q4_0Octets.Term(byte*, in RowDots.Act32, int)"/> on the per-product octet.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Term(byte* p, in RowDots.Act32 a, int b)
        {
            var (p0, p1, p2, p3) = (Vector256.Load(p), Vector256.Load(p + 32), Vector256.Load(p + 64), Vector256.Load(p + 96));
            var sums = RowOctets.CodeSums(Q4_0Octets.Low(p0), Q4_0Octets.Low(p1), Q4_0Octets.Low(p2), Q4_0Octets.Low(p3),
                Q4_0Octets.High(p0), Q4_0Octets.High(p1), Q4_0Octets.High(p2), Q4_0Octets.High(p3), (int*)(a.Qs + 32 * b));
            return Q4_0Octets.Term(sums, Scales(p + 128), a, b);
        }
    }

    /// <summary>Q8_0: eight registers of bytes (register k: word k of the 32 code bytes of rows 0..7), then the scales.</summary>
    public readonly struct Q8_0Packed : IPackedFormat
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
