using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tests.Nn;

/// <summary>A fact about an eight-lane FMA kernel: reported as skipped, not passed, on a machine without FMA (there the
/// kernel runs its scalar twin, and comparing it with itself would prove nothing).</summary>
public sealed class FmaFactAttribute : FactAttribute
{
    public FmaFactAttribute()
    {
        if (!Fma.IsSupported) Skip = "this machine has no FMA: the vector path does not run here";
    }
}

/// <summary>A theory about an eight-lane FMA kernel; see <see cref="FmaFactAttribute"/>.</summary>
public sealed class FmaTheoryAttribute : TheoryAttribute
{
    public FmaTheoryAttribute()
    {
        if (!Fma.IsSupported) Skip = "this machine has no FMA: the vector path does not run here";
    }
}
