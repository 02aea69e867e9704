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
    /// <paramref name="packed"/> (the packed tensor's start; octet o lands at its own place).</summary>
    public static void PackOctets(GgmlType type, int cols, byte* rows, int first, int octets, byte* packed)
    {
        int rowBytes = (int)GgmlTypeInfo.RowBytes(type, cols), blocks = cols / 32;
        long octetBytes = (long)blocks * BlockBytes(type);
        for (int o = 0; o < octets; o++)
        {
            byte* src = rows + (long)o * 8 * rowBytes;
            byte* dst = packed + (first + o) * octetBytes;
            if (type == GgmlType.Q4_0) Q4_0Packed.Pack(src, rowBytes, blocks, dst);
            else Q8_0Packed.Pack(src, rowBytes, blocks, dst);
        }
    }

    /// <summary>A packed copy of <paramref name="w"/> in pinned memory, and the view that uses it.</summary>
    public static (TensorView View, byte[] Storage) Pack(in TensorView w)
    {
        if (!CanPack(w)) throw new ArgumentException($"a {w.Rows}x{w.Cols} {w.Type} matrix cannot be packed");
        var storage = GC.AllocateUninitializedArray<byte>(checked((int)w.ByteCount), pinned: true);
        fixed (byte* p = storage) PackOctets(w.Type, w.Cols, w.Data, 0, w.Rows / 8, p);
        return (w.WithPacked((byte*)Unsafe.AsPointer(ref storage[0])), storage);
    }

    /// <summary>Y = X Wᵀ for <paramref name="count"/> vectors (already quantized into <paramref name="activations"/>)
    /// with packed weights, the octets split across <paramref name="pool"/>.</summary>
    public static void Multiply(in TensorView w, ActivationBlocks[] activations, float* y, int count, WorkerPool? pool)
    {
        var job = new PackedJob
        {
            Type = w.Type, Packed = w.Packed, Cols = w.Cols, Rows = w.Rows, Count = count, Y = y, Activations = activations,
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

        public readonly void Execute(int start, int end)
        {
            if (Type == GgmlType.Q4_0) Octets<Q4_0Packed, Q4_0Octets>(this, start, end);
            else Octets<Q8_0Packed, Q8_0Octets>(this, start, end);
        }
    }

    /// <summary>
    /// Octets [start, end). Up to <see cref="IPackedFormat.DirectUpTo"/> vectors read the packed octets directly; more
    /// vectors first widen each octet into <typeparamref name="TWide"/>'s layout (codes one per byte, float scales),
    /// which they then read.
    /// </summary>
    private static void Octets<TPacked, TWide>(in PackedJob job, int start, int end)
        where TPacked : struct, IPackedFormat where TWide : struct, RowOctets.IPair
    {
        int blocks = job.Cols / 32, count = job.Count;
        var acts = stackalloc RowDots.Act32[count];
        for (int t = 0; t < count; t++) acts[t] = new RowDots.Act32(job.Activations[t]);
        long octetBytes = (long)blocks * TPacked.BlockBytes;
        if (typeof(TPacked) == typeof(Q4_0Packed) && count >= 4)
        {
            for (int o = start; o < end; o++)
            {
                byte* octet = job.Packed + o * octetBytes;
                int t = 0;
                for (; t + 4 <= count; t += 4)
                    Q4_0Packed.Quad(octet, blocks, acts + t, job.Y + 8 * o + (long)t * job.Rows, job.Rows);
                if (t < count)
                    RowOctets.Vectors<TPacked>(octet, blocks, acts + t, count - t, job.Y + 8 * o + (long)t * job.Rows, job.Rows, prefetch: false);
            }
            return;
        }
        if (count <= TPacked.DirectUpTo)
        {
            for (int o = start; o < end; o++)
                RowOctets.Vectors<TPacked>(job.Packed + o * octetBytes, blocks, acts, count, job.Y + 8 * o, job.Rows, prefetch: count == 1);
            return;
        }
        byte* wide = RowOctets.Buffer(blocks * TWide.BlockBytes);
        for (int o = start; o < end; o++)
        {
            TPacked.Widen(job.Packed + o * octetBytes, blocks, wide);
            RowOctets.Vectors<TWide>(wide, blocks, acts, count, job.Y + 8 * o, job.Rows, prefetch: false);
        }
    }

    /// <summary>A packed block-octet format.</summary>
    public interface IPackedFormat : RowOctets.IPair
    {
        /// <summary>Packs eight rows at w, w + rowBytes, ... block by block into packed.</summary>
        static abstract void Pack(byte* w, int rowBytes, int blocks, byte* packed);

        /// <summary>Vectors up to which a product reads the packed octets directly; more vectors widen each octet first.</summary>
        static abstract int DirectUpTo { get; }

        /// <summary>Widens a packed octet of <paramref name="blocks"/> blocks into the per-product octet layout.</summary>
        static abstract void Widen(byte* packed, int blocks, byte* wide);
    }

    /// <summary>The eight f16 scales at p as floats (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scales(byte* p) =>
        HalfWidening.Widen(Avx2.ConvertToVector256Int32(Vector128.Load((ushort*)p)).AsUInt32());

    /// <summary>The f16 scales of the eight rows' blocks at w, w + rowBytes, ... into p.</summary>
    private static void PackScales(byte* w, int rowBytes, byte* p)
    {
        for (int j = 0; j < 8; j++) ((ushort*)p)[j] = *(ushort*)(w + (long)j * rowBytes);
    }

    /// <summary>Q4_0: four registers of packed nibbles (register m: word m of the 16 code bytes of rows 0..7), then the scales.</summary>
    public readonly struct Q4_0Packed : IPackedFormat
    {
        public static int BlockBytes => 128 + 16;

        /// <summary>Two vectors share the unpacking in registers; from three on, unpacking once into a buffer pays.</summary>
        public static int DirectUpTo => 2;

        public static void Pack(byte* w, int rowBytes, int blocks, byte* packed)
        {
            for (int b = 0; b < blocks; b++, w += 18, packed += BlockBytes)
            {
                Q4_0Octets.TransposeCodes(w, rowBytes, packed);
                PackScales(w, rowBytes, packed + 128);
            }
        }

        public static void Widen(byte* packed, int blocks, byte* wide)
        {
            for (int b = 0; b < blocks; b++, packed += BlockBytes, wide += Q4_0Octets.BlockBytes)
            {
                Q4_0Octets.WidenCodes(packed, wide);
                Scales(packed + 128).Store((float*)(wide + 256));
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
        /// One packed octet times four vectors, which share the unpacked codes and scales of each block; vector t's
        /// eight results into y + t * yStride. The sixteen accumulators (vector t, block b mod 4) live in memory, the
        /// eight code registers in registers; every (row, vector) is the float computation of <see cref="RowOctets.Octet"/>.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Quad(byte* octet, int blocks, RowDots.Act32* acts, float* y, int yStride)
        {
            var acc = stackalloc Vector256<float>[16];
            for (int i = 0; i < 16; i++) acc[i] = default;
            for (int b = 0; b < blocks; b++)
            {
                byte* p = octet + (long)b * BlockBytes;
                var (p0, p1, p2, p3) = (Vector256.Load(p), Vector256.Load(p + 32), Vector256.Load(p + 64), Vector256.Load(p + 96));
                var (l0, l1, l2, l3) = (Q4_0Octets.Low(p0), Q4_0Octets.Low(p1), Q4_0Octets.Low(p2), Q4_0Octets.Low(p3));
                var (h0, h1, h2, h3) = (Q4_0Octets.High(p0), Q4_0Octets.High(p1), Q4_0Octets.High(p2), Q4_0Octets.High(p3));
                var scales = Scales(p + 128);
                var slot = acc + (b & 3);
                slot[0] += Q4_0Octets.Term(RowOctets.CodeSums(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(acts[0].Qs + 32 * b)), scales, acts[0], b);
                slot[4] += Q4_0Octets.Term(RowOctets.CodeSums(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(acts[1].Qs + 32 * b)), scales, acts[1], b);
                slot[8] += Q4_0Octets.Term(RowOctets.CodeSums(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(acts[2].Qs + 32 * b)), scales, acts[2], b);
                slot[12] += Q4_0Octets.Term(RowOctets.CodeSums(l0, l1, l2, l3, h0, h1, h2, h3, (int*)(acts[3].Qs + 32 * b)), scales, acts[3], b);
            }
            for (int t = 0; t < 4; t++)
                ((acc[4 * t] + acc[4 * t + 1]) + (acc[4 * t + 2] + acc[4 * t + 3])).Store(y + (long)t * yStride);
        }

        /// <summary>Lane j: (dw_j * dx) * (Σ q x - 8 Σ x) of block b, as <see cref="Q4_0Octets.Term(byte*, in RowDots.Act32, int)"/> on the widened octet.</summary>
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

        /// <summary>Widening only converts the scales, which pays from about four vectors on.</summary>
        public static int DirectUpTo => 4;

        public static void Pack(byte* w, int rowBytes, int blocks, byte* packed)
        {
            for (int b = 0; b < blocks; b++, w += 34, packed += BlockBytes)
            {
                Q8_0Octets.TransposeWords(w + 2, rowBytes, packed);
                PackScales(w, rowBytes, packed + 256);
            }
        }

        public static void Widen(byte* packed, int blocks, byte* wide)
        {
            for (int b = 0; b < blocks; b++, packed += BlockBytes, wide += Q8_0Octets.BlockBytes)
            {
                for (int k = 0; k < 8; k++) Vector256.Load(packed + 32 * k).Store(wide + 32 * k);
                Scales(packed + 256).Store((float*)(wide + 256));
            }
        }

        /// <summary>The terms of block b for vectors a and c (the widened octet's pair terms with half-precision scales).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float>, Vector256<float>) Terms(byte* p, in RowDots.Act32 a, in RowDots.Act32 c, int b) =>
            Q8_0Octets.Terms(p, Scales(p + 256), a, c, b);

        /// <summary>Lane j: (dw_j * dx) * Σ q x of block b, as <see cref="Q8_0Octets.Term"/> on the widened octet.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Term(byte* p, in RowDots.Act32 a, int b) =>
            Scales(p + 256) * Vector256.Create(a.D[b]) * Vector256.ConvertToSingle(Q8_0Octets.Sum(p, (int*)(a.Qs + 32 * b)));
    }
}
