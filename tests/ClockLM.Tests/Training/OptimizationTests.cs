using ClockLM.Nn;

namespace ClockLM.Tests.Training;

public class OptimizationTests
{
    [Fact]
    public void WarmupCosineRisesLinearlyThenDecaysToTheMinimum()
    {
        var schedule = new WarmupCosineSchedule(1e-3, 1e-4, warmupSteps: 10, totalSteps: 110);
        Assert.Equal(1e-4, schedule.At(0), 12);          // 1/10 of the peak after the first step
        Assert.Equal(5e-4, schedule.At(4), 12);
        Assert.Equal(1e-3, schedule.At(10), 12);          // the peak as decay starts
        Assert.Equal(1e-4 + 0.9e-3 * 0.5, schedule.At(60), 12); // half way: cos(π/2) = 0
        Assert.Equal(1e-4 + 0.9e-3 * 0.5 * (1 + Math.Cos(Math.PI * 0.25)), schedule.At(35), 12);
        Assert.Equal(1e-4, schedule.At(110), 12);
        Assert.Equal(1e-4, schedule.At(500), 12);
    }

    [Fact]
    public void ClippingScalesEveryGradientToTheGlobalNorm()
    {
        var a = new Tensor<float>([2], [0, 0], requiresGrad: true);
        var b = new Tensor<float>([1], [0], requiresGrad: true);
        (a * new Tensor<float>([2], [3, 4])).Sum().Add((b * new Tensor<float>([1], [12])).Sum()).Backward();
        // ‖(3, 4, 12)‖ = 13
        double norm = GradientClipping.ClipByGlobalNorm([a, b], 6.5);
        Assert.Equal(13, norm, 5);
        Assert.Equal(new[] { 1.5f, 2f }, a.Grad!);
        Assert.Equal(6f, b.Grad![0], 5);
        // Below the limit nothing changes.
        Assert.Equal(6.5, GradientClipping.ClipByGlobalNorm([a, b], 100), 5);
        Assert.Equal(new[] { 1.5f, 2f }, a.Grad!);
    }

    [Fact]
    public void OptimizerStateRoundTripsThroughGetAndSet()
    {
        // Two AdamW runs of 3 steps on the same gradients, the second restored from the first's state after step 1,
        // end on the same values.
        float[] grads = [0.5f, -1f, 2f];
        var p1 = new Tensor<float>([3], [1, 2, 3], requiresGrad: true);
        var o1 = new AdamW(0.1, 0.01);
        void StepWith(Optimizer o, Tensor<float> p) { p.ZeroGrad(); (p * new Tensor<float>([3], grads)).Sum().Backward(); o.Step([p]); }
        StepWith(o1, p1);
        var p2 = new Tensor<float>([3], (float[])p1.Data.Clone(), requiresGrad: true);
        var o2 = new AdamW(0.1, 0.01);
        o2.SetState(p2, 0, (float[])o1.GetState<float>(p1, 0)!.Clone());
        o2.SetState(p2, 1, (float[])o1.GetState<float>(p1, 1)!.Clone());
        o2.RestoreIterations(o1.Iterations);
        for (int i = 0; i < 2; i++) { StepWith(o1, p1); StepWith(o2, p2); }
        Assert.Equal(p1.Data, p2.Data);
        Assert.Equal(3, o2.Iterations);
    }
}
