using ClockLM.Nn;

namespace ClockLM.Tests.Nn;

/// <summary>Optimiser updates against their closed forms.</summary>
public class OptimizerTests
{
    [Fact]
    public void AdamFirstStepMatchesClosedForm()
    {
        double[] theta0 = [0.5, -1.2, 3.0, 0.0];
        double[] g = [0.1, -0.3, 2.0, 1e-4];
        var parameter = new Tensor<double>([4], (double[])theta0.Clone(), requiresGrad: true);
        SetGrad(parameter, g);
        var adam = new Adam(); // lr 0.001, β1 0.9, β2 0.999, ε 1e-7
        adam.Step([parameter]);

        for (int i = 0; i < 4; i++)
        {
            double m = (1 - 0.9) * g[i];            // m1 = (1 − β1)·g
            double v = (1 - 0.999) * g[i] * g[i];   // v1 = (1 − β2)·g²
            double mHat = m / (1 - 0.9);            // = g
            double vHat = v / (1 - 0.999);          // = g²
            double expected = theta0[i] - 0.001 * mHat / (Math.Sqrt(vHat) + 1e-7);
            Assert.Equal(g[i], mHat, 12);
            Assert.True(Math.Abs(parameter.Data[i] - expected) < 1e-7, $"θ[{i}] = {parameter.Data[i]}, closed form {expected}");
            // On the first step Adam moves every value by about lr against the sign of its gradient.
            Assert.Equal(theta0[i] - 0.001 * Math.Sign(g[i]), parameter.Data[i], 5);
        }
    }

    [Fact]
    public void AdamSecondStepUsesBiasCorrectedMoments()
    {
        var p = new Tensor<double>([1], [1.0], requiresGrad: true);
        var adam = new Adam(learningRate: 0.01, beta1: 0.8, beta2: 0.9, epsilon: 1e-8);
        double theta = 1.0, m = 0, v = 0;
        double[] grads = [0.5, -0.2];
        for (int t = 1; t <= 2; t++)
        {
            SetGrad(p, [grads[t - 1]]);
            adam.Step([p]);
            m = 0.8 * m + 0.2 * grads[t - 1];
            v = 0.9 * v + 0.1 * grads[t - 1] * grads[t - 1];
            theta -= 0.01 * (m / (1 - Math.Pow(0.8, t))) / (Math.Sqrt(v / (1 - Math.Pow(0.9, t))) + 1e-8);
            Assert.Equal(theta, p.Data[0], 12);
        }
        Assert.Equal(2, adam.Iterations);
    }

    [Fact]
    public void SgdWithMomentumAccumulatesVelocity()
    {
        var p = new Tensor<double>([2], [1.0, -1.0], requiresGrad: true);
        var sgd = new Sgd(learningRate: 0.1, momentum: 0.9);
        SetGrad(p, [1.0, 2.0]);
        sgd.Step([p]); // v = −0.1·g = [−0.1, −0.2]
        Assert.Equal([0.9, -1.2], p.Data, (a, b) => Math.Abs(a - b) < 1e-12);
        sgd.Step([p]); // v = 0.9·v − 0.1·g = [−0.19, −0.38]
        Assert.Equal([0.71, -1.58], p.Data, (a, b) => Math.Abs(a - b) < 1e-12);
    }

    [Fact]
    public void AdamWDecaysWeightsBeforeTheAdamUpdate()
    {
        var p = new Tensor<double>([1], [2.0], requiresGrad: true);
        SetGrad(p, [0.5]);
        new AdamW(learningRate: 0.01, weightDecay: 0.1).Step([p]);
        // θ ← θ·(1 − α·λ), then Adam's first step −α·g/(|g| + ε)
        double expected = 2.0 * (1 - 0.01 * 0.1) - 0.01 * 0.5 / (0.5 + 1e-7);
        Assert.Equal(expected, p.Data[0], 12);
    }

    [Fact]
    public void ParametersWithoutGradientAreLeftAlone()
    {
        var p = new Tensor<double>([1], [3.0], requiresGrad: true);
        new Adam().Step([p]);
        Assert.Equal(3.0, p.Data[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(learningRate: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(momentum: 1));
    }

    private static void SetGrad(Tensor<double> p, double[] g)
    {
        // Produce exactly g as the gradient: d/dp Σ p·g = g.
        p.ZeroGrad();
        (p * new Tensor<double>(p.Shape, g)).Sum().Backward();
    }
}
