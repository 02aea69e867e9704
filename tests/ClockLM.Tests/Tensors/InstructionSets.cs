using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tests.Tensors;

/// <summary>Instruction sets a kernel test needs from the machine it runs on.</summary>
public enum Cpu
{
    /// <summary>AVX2 and FMA: the 256-bit path, the packed and multi-vector kernels.</summary>
    Avx2,
    /// <summary>AVX-512BW: the 512-bit packed Q4_0 kernel.</summary>
    Avx512BW,
}

/// <summary>Whether this machine has an instruction set, and the skip reason when it has not.</summary>
internal static class CpuSupport
{
    public static bool Has(Cpu cpu) => cpu switch
    {
        Cpu.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        _ => Avx512BW.IsSupported,
    };

    public static string? SkipUnless(Cpu cpu) => Has(cpu) ? null : $"this machine lacks {cpu}";
}

/// <summary>A fact that runs where the machine has <see cref="Cpu"/> and is reported skipped elsewhere (never as passed).</summary>
public sealed class FactNeedsAttribute : FactAttribute
{
    public FactNeedsAttribute(Cpu cpu) => Skip = CpuSupport.SkipUnless(cpu);
}

/// <summary>A theory that runs where the machine has <see cref="Cpu"/> and is reported skipped elsewhere (never as passed).</summary>
public sealed class TheoryNeedsAttribute : TheoryAttribute
{
    public TheoryNeedsAttribute(Cpu cpu) => Skip = CpuSupport.SkipUnless(cpu);
}
