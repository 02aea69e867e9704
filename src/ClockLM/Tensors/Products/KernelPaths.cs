using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>The fastest <see cref="KernelPath"/> this machine accelerates.</summary>
public static class KernelPaths
{
    /// <summary>
    /// Chosen once at startup: <see cref="KernelPath.Vector256"/> wherever AVX2 and FMA run, also on AVX-512 machines,
    /// because the packed integer kernels, the matrix-matrix tiles and the streaming F32/F16 rows are 256-bit (on an
    /// AVX-512 EPYC the 512-bit path decodes tinyllama Q4_0 at 40 tokens/s against 58, and reads prompts 2.9× slower).
    /// The environment variable <c>CLOCKLM_KERNELS</c> (Scalar, Vector128, Vector256 or Vector512) overrides it, for
    /// comparisons.
    /// </summary>
    public static KernelPath Best { get; } =
        Enum.TryParse<KernelPath>(Environment.GetEnvironmentVariable("CLOCKLM_KERNELS"), ignoreCase: true, out var forced)
            && Enum.IsDefined(forced) && CanRun(forced) ? forced :
        Avx2.IsSupported && Fma.IsSupported ? KernelPath.Vector256
        : Vector128.IsHardwareAccelerated ? KernelPath.Vector128
        : KernelPath.Scalar;

    /// <summary>True when <paramref name="path"/> can run here (a vector path the hardware lacks runs only if its operations have a software fallback).</summary>
    public static bool CanRun(KernelPath path) => path switch
    {
        KernelPath.Vector256 or KernelPath.Vector512 => Avx2.IsSupported,
        _ => true,
    };
}
