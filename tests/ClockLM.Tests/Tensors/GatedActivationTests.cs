using System.Runtime.Intrinsics.X86;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>SwiGLU against the double-precision formula, and its vector path against the scalar one.</summary>
public class GatedActivationTests
{
    [Fact]
    public void SwiGluIsSiluOfTheGateTimesUp()
    {
        var gate = TestVectors.Gaussian(203, seed: 4, scale: 6f);
        gate[0] = -100f; // e^100 overflows to +inf: silu is then -0
        gate[1] = 100f;
        gate[2] = 0f;
        var up = TestVectors.Gaussian(203, seed: 5);
        foreach (var path in new[] { KernelPath.Scalar, KernelOptions.BestPath })
        {
            var y = (float[])gate.Clone();
            GatedActivation.SwiGlu(y, up, path);
            for (int i = 0; i < y.Length; i++)
            {
                double g = gate[i], exact = g / (1 + Math.Exp(-g)) * up[i];
                // e^-g within 2 ulp, then an add, a division and a multiplication, each within half an ulp.
                Assert.True(Math.Abs(y[i] - exact) <= 5e-7 * Math.Abs(exact) + 1e-37, $"{path} {i}: silu({g}) * {up[i]} = {y[i]}, exact {exact}");
            }
        }
    }

    [FactNeeds(Cpu.Avx2)]
    public void VectorPathEqualsScalarBitForBit()
    {
        var gate = TestVectors.Gaussian(77, seed: 8, scale: 30f);
        var up = TestVectors.Gaussian(77, seed: 9);
        float[] scalar = (float[])gate.Clone(), vector = (float[])gate.Clone();
        GatedActivation.SwiGlu(scalar, up, KernelPath.Scalar);
        GatedActivation.SwiGlu(vector, up, KernelPath.Vector256);
        Assert.Equal(scalar.Select(BitConverter.SingleToInt32Bits), vector.Select(BitConverter.SingleToInt32Bits));
    }
}
