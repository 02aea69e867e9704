using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// Which kernels the products and the other kernels of a layer run: chosen once, passed in (a model's
/// <c>ModelOptions.Kernels</c>, carried by its weights to the forward pass and from there to every product), never read
/// from a static that changes or from the environment. Every choice gives the same results as
/// <see cref="KernelPath.Scalar"/> on quantized weights, and the same to float rounding on F32/F16/BF16 weights; the
/// choices differ in speed only. docs/kernels.md maps each choice to the kernels it runs.
/// </summary>
public sealed record KernelOptions
{
    /// <summary>The fastest path here: <see cref="KernelPath.Vector256"/> where AVX2 and FMA run, else
    /// <see cref="KernelPath.Vector128"/> where 128-bit vectors are accelerated, else <see cref="KernelPath.Scalar"/>.</summary>
    public static KernelPath BestPath { get; } =
        Avx2.IsSupported && Fma.IsSupported ? KernelPath.Vector256
        : Vector128.IsHardwareAccelerated ? KernelPath.Vector128
        : KernelPath.Scalar;

    // Declared after BestPath, which its path is initialised from.
    /// <summary>
    /// The fastest kernels this machine runs, decided from its instruction sets alone: <see cref="KernelPath.Vector256"/>
    /// wherever AVX2 and FMA run, also on AVX-512 machines, because the packed integer kernels, the matrix-matrix tiles
    /// and the streaming F32/F16 rows are 256-bit (on an AVX-512 EPYC the 512-bit path decodes tinyllama Q4_0 at 40
    /// tokens/s against 58, and reads prompts 2.9x slower); the packed Q4_0 kernel 512 bits wide where AVX-512BW runs.
    /// </summary>
    public static KernelOptions Best { get; } = new();

    /// <summary>The instruction set of every kernel (<see cref="KernelPath"/>); only <see cref="KernelPath.Vector256"/>
    /// runs the packed and multi-vector kernels. Default: <see cref="BestPath"/>. A path this machine cannot run is
    /// refused when set.</summary>
    public KernelPath Path
    {
        get;
        init => field = !Enum.IsDefined(value)
            ? throw new ArgumentOutOfRangeException(nameof(Path), value, "expected Scalar, Vector128, Vector256 or Vector512")
            : CanRun(value) ? value
            : throw new PlatformNotSupportedException($"kernel path {value} needs AVX2, which this machine lacks");
    } = BestPath;

    /// <summary>Register width in bits of the packed Q4_0 pair kernel (<see cref="Q4_0Pairs"/>), of the F16/BF16
    /// matrix-matrix tiles (eight rows by three vectors on 512-bit registers, about 1.2x faster prompts than pairs of
    /// rows on 256-bit ones) and of decoding's F16/BF16 row loop (<see cref="HalfMatVec"/>, pairs of accumulators in one
    /// register): 512 where AVX-512BW runs, else 256, which runs the same operations on two 256-bit halves and gives
    /// the same bits. Default: the widest
    /// this machine runs. 512 is refused on a machine without AVX-512BW.</summary>
    public int PackedWidth
    {
        get;
        init => field = value is not (256 or 512)
            ? throw new ArgumentOutOfRangeException(nameof(PackedWidth), value, "expected 256 or 512 (bits)")
            : value == 512 && !Avx512BW.IsSupported
            ? throw new PlatformNotSupportedException("packed kernels 512 bits wide need AVX-512BW, which this machine lacks")
            : value;
    } = Avx512BW.IsSupported ? 512 : 256;

    /// <summary>True when <paramref name="path"/> can run here (a vector path the hardware lacks runs only if its operations have a software fallback).</summary>
    public static bool CanRun(KernelPath path) => path switch
    {
        KernelPath.Vector256 or KernelPath.Vector512 => Avx2.IsSupported,
        _ => true,
    };

    /// <summary>True when products on these kernels read the packed copies of weights (<see cref="PackedRows"/>): only
    /// the 256-bit path runs the packed kernels, so packing for another one would only cost memory.</summary>
    public bool UsesPacked => Path == KernelPath.Vector256;

    /// <summary>Why these kernels are slower than the fast path: this machine lacks what the fast path needs (AVX2 and
    /// FMA), or its processor has AVX-512BW that this build cannot use (<see cref="Avx512CompiledOut"/>); null otherwise,
    /// and for a slower path chosen on purpose.</summary>
    public string? Shortfall => this != Best ? null
        : Path < KernelPath.Vector256
        ? $"this machine lacks AVX2 or FMA: kernels run on the {Path} path, without the packed and multi-vector kernels"
        : Avx512CompiledOut
        ? "the processor has AVX-512BW but this process cannot use it (a native build for x86-64-v3, or the runtime told "
          + "DOTNET_EnableAVX512=0): the packed kernels run 256 bits wide; the JIT build, or a native build with "
          + "-p:IlcInstructionSet=x86-64-v4, runs them 512 bits wide (docs/native.md)"
        : null;

    /// <summary>
    /// True when the processor reports AVX-512F and AVX-512BW (CPUID leaf 7) but <see cref="Avx512BW.IsSupported"/> is
    /// false: a native (AOT) build compiled for a baseline below AVX-512, where that check is compiled to the constant
    /// false because AVX-512 is never among the instruction sets Native AOT tests at run time (docs/native.md). Under the
    /// JIT the check is the machine's answer, so this is false unless the runtime was told not to use AVX-512.
    /// </summary>
    public static bool Avx512CompiledOut { get; } = X86Base.IsSupported && !Avx512BW.IsSupported && ProcessorReportsAvx512BW();

    // CPUID leaf 7, sub-leaf 0: EBX bit 16 is AVX-512F, bit 30 AVX-512BW.
    internal static bool ProcessorReportsAvx512BW()
    {
        if (X86Base.CpuId(0, 0).Eax < 7) return false;
        int ebx = X86Base.CpuId(7, 0).Ebx;
        return (ebx & (1 << 16)) != 0 && (ebx & (1 << 30)) != 0;
    }

    /// <summary>
    /// Options from text such as a command line's <c>--kernels</c>: <c>best</c>, or a path (<c>scalar</c>,
    /// <c>vector128</c>, <c>vector256</c>, <c>vector512</c>, any case) optionally followed by <c>/256</c> or <c>/512</c>,
    /// the packed kernels' width; what is not given stays as in <see cref="Best"/>. Throws
    /// <see cref="FormatException"/> for text it cannot read and <see cref="PlatformNotSupportedException"/> for kernels
    /// this machine cannot run, each naming the text.
    /// </summary>
    public static KernelOptions Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Trim().Split('/');
        if (parts.Length == 1 && parts[0].Equals("best", StringComparison.OrdinalIgnoreCase)) return Best;
        if (parts.Length > 2 || !Enum.TryParse(parts[0], ignoreCase: true, out KernelPath path) || !Enum.IsDefined(path)
            || int.TryParse(parts[0], out _))
            throw new FormatException($"kernels '{text}': expected best, scalar, vector128, vector256 or vector512, optionally followed by /256 or /512 (the packed kernels' width)");
        int width = Best.PackedWidth;
        if (parts.Length == 2 && (!int.TryParse(parts[1], out width) || width is not (256 or 512)))
            throw new FormatException($"kernels '{text}': the packed kernels' width after '/' is 256 or 512, not '{parts[1]}'");
        try
        {
            return new KernelOptions { Path = path, PackedWidth = width };
        }
        catch (PlatformNotSupportedException e)
        {
            throw new PlatformNotSupportedException($"kernels '{text}': {e.Message}", e);
        }
    }

    /// <summary>The options as <see cref="Parse"/> reads them: path and packed width, e.g. <c>Vector256/512</c>.</summary>
    public override string ToString() => $"{Path}/{PackedWidth}";

    /// <summary>The options and the instruction sets behind them, for a person: e.g. <c>Vector256/512 (AVX2, FMA,
    /// AVX-512BW, GFNI)</c>.</summary>
    public string Describe()
    {
        var sets = new List<string>();
        if (Path >= KernelPath.Vector256) sets.AddRange(Fma.IsSupported ? ["AVX2", "FMA"] : ["AVX2"]);
        else if (Path == KernelPath.Vector128) sets.Add(Vector128.IsHardwareAccelerated ? "128-bit vectors" : "128-bit vectors in software");
        else sets.Add("plain C#");
        if (UsesPacked && PackedWidth == 512) sets.Add(Gfni.V512.IsSupported ? "AVX-512BW, GFNI" : "AVX-512BW");
        return $"{this} ({string.Join(", ", sets)})";
    }
}
