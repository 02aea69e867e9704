using System.Numerics;
using System.Runtime.InteropServices;

namespace ClockLM.Nn;

/// <summary>
/// Updates parameters from their gradients. An optimiser keeps per-parameter state (momentum, moments)
/// keyed by the parameter tensor, so one optimiser instance belongs to one model.
/// </summary>
public abstract class Optimizer
{
    private readonly Dictionary<(object Parameter, int Slot), Array> _slots = [];

    /// <summary>Creates an optimiser with step size <paramref name="learningRate"/>.</summary>
    protected Optimizer(double learningRate)
    {
        if (!(learningRate > 0) || double.IsInfinity(learningRate))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "the learning rate must be a positive number");
        LearningRate = learningRate;
    }

    /// <summary>The step size α.</summary>
    public double LearningRate { get; set; }

    /// <summary>The number of steps taken so far (Adam's t after a step).</summary>
    public long Iterations { get; private set; }

    /// <summary>Applies one update to every parameter that has a gradient. An optimiser whose update is elementwise
    /// (Adam, AdamW) shares each parameter's values out over <paramref name="compute"/>'s threads, with the same result.</summary>
    public void Step<T>(IReadOnlyList<Tensor<T>> parameters, ComputeContext? compute = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Iterations++;
        foreach (var parameter in parameters)
            if (parameter.Grad is { } grad)
                Update(parameter.Data, grad, Iterations, parameter, compute);
    }

    /// <summary>Updates one parameter in place. <paramref name="step"/> counts from 1.</summary>
    /// <param name="value">The parameter values to update.</param>
    /// <param name="grad">d(loss)/d(value).</param>
    /// <param name="step">The step number t, from 1.</param>
    /// <param name="key">Identifies the parameter for <see cref="Slot{T}"/>.</param>
    /// <param name="compute">Threads to share the values out over, or null for the calling thread.</param>
    protected abstract void Update<T>(T[] value, T[] grad, long step, object key, ComputeContext? compute) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>The per-parameter state number <paramref name="slot"/> of <paramref name="parameter"/> (e.g. Adam's m = 0,
    /// v = 1), or null before the first step; a checkpoint saves it.</summary>
    public T[]? GetState<T>(object parameter, int slot) =>
        _slots.TryGetValue((parameter, slot), out var state) ? (T[])state : null;

    /// <summary>Restores state saved by <see cref="GetState{T}"/> (a checkpoint being resumed); the array is kept, not copied.</summary>
    public void SetState<T>(object parameter, int slot, T[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _slots[(parameter, slot)] = values;
    }

    /// <summary>Sets the step count (a checkpoint being resumed), so that bias corrections continue where they stopped.</summary>
    public void RestoreIterations(long iterations)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(iterations);
        Iterations = iterations;
    }

    /// <summary>Per-parameter state number <paramref name="slot"/> (zeros at first), e.g. Adam's m (0) and v (1).</summary>
    protected T[] Slot<T>(object key, int slot, int length)
    {
        if (!_slots.TryGetValue((key, slot), out var state))
            _slots[(key, slot)] = state = new T[length];
        return (T[])state;
    }
}

/// <summary>Stochastic gradient descent with optional momentum (Keras form): v ← μ·v − α·g; θ ← θ + v.</summary>
/// <param name="learningRate">α (Keras default 0.01).</param>
/// <param name="momentum">μ in [0, 1) (default 0: plain θ ← θ − α·g).</param>
public sealed class Sgd(double learningRate = 0.01, double momentum = 0.0) : Optimizer(learningRate)
{
    /// <summary>The momentum μ.</summary>
    public double Momentum { get; } = momentum is >= 0 and < 1
        ? momentum
        : throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "momentum must be in [0, 1)");

    /// <inheritdoc/>
    protected override void Update<T>(T[] value, T[] grad, long step, object key, ComputeContext? compute)
    {
        T lr = T.CreateChecked(LearningRate);
        if (Momentum == 0)
        {
            for (int i = 0; i < value.Length; i++) value[i] -= lr * grad[i];
            return;
        }
        T mu = T.CreateChecked(Momentum);
        var velocity = Slot<T>(key, 0, value.Length);
        for (int i = 0; i < value.Length; i++)
        {
            velocity[i] = mu * velocity[i] - lr * grad[i];
            value[i] += velocity[i];
        }
    }
}

/// <summary>
/// Adam (Kingma and Ba, Algorithm 1), with Keras's defaults:
/// m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;  m̂ = m / (1 − β1^t);  v̂ = v / (1 − β2^t);  θ ← θ − α·m̂ / (√v̂ + ε).
/// </summary>
public class Adam : Optimizer
{
    /// <summary>Creates Adam; the defaults are Keras's.</summary>
    public Adam(double learningRate = 0.001, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-7)
        : base(learningRate)
    {
        if (beta1 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "β1 must be in [0, 1)");
        if (beta2 is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "β2 must be in [0, 1)");
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "ε must be positive");
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
    }

    /// <summary>Decay of the first moment.</summary>
    public double Beta1 { get; }

    /// <summary>Decay of the second moment.</summary>
    public double Beta2 { get; }

    /// <summary>Added to √v̂ so that the step stays finite.</summary>
    public double Epsilon { get; }

    /// <summary>α·λ of decoupled weight decay: every value is first multiplied by 1 − α·λ (0 for Adam; see <see cref="AdamW"/>).</summary>
    protected virtual double Decay => 0.0;

    /// <inheritdoc/>
    protected override void Update<T>(T[] value, T[] grad, long step, object key, ComputeContext? compute)
    {
        var m = Slot<T>(key, 0, value.Length);
        var v = Slot<T>(key, 1, value.Length);
        T b1 = T.CreateChecked(Beta1), b2 = T.CreateChecked(Beta2), eps = T.CreateChecked(Epsilon);
        T lr = T.CreateChecked(LearningRate), shrink = T.One - T.CreateChecked(Decay);
        // Bias corrections in double: β^t underflows gracefully and stays exact for small t.
        T correct1 = T.CreateChecked(1 / (1 - Math.Pow(Beta1, step)));
        T correct2 = T.CreateChecked(1 / (1 - Math.Pow(Beta2, step)));
        // Every value's update is the same operations whichever chunk, lane or thread runs it.
        const int chunk = 1 << 14;
        int chunks = (value.Length + chunk - 1) / chunk;
        if (compute is null) Range(0, value.Length);
        else compute.For(chunks, 8L * value.Length, (first, end) => Range(first * chunk, Math.Min(value.Length, end * chunk)));

        void Range(int start, int end)
        {
            int i = start;
            if (Vector.IsHardwareAccelerated)
            {
                // The same update, Vector<T>.Count values at a time; the scalar loop below finishes the tail.
                var vm = MemoryMarshal.Cast<T, Vector<T>>(m.AsSpan(start, end - start));
                var vv = MemoryMarshal.Cast<T, Vector<T>>(v.AsSpan(start, end - start));
                var vx = MemoryMarshal.Cast<T, Vector<T>>(value.AsSpan(start, end - start));
                var vg = MemoryMarshal.Cast<T, Vector<T>>(grad.AsSpan(start, end - start));
                Vector<T> vb1 = new(b1), vb2 = new(b2), va1 = new(T.One - b1), va2 = new(T.One - b2);
                Vector<T> vc1 = new(correct1), vc2 = new(correct2), vlr = new(lr), veps = new(eps), vshrink = new(shrink);
                for (int j = 0; j < vm.Length; j++)
                {
                    var g = vg[j];
                    vm[j] = vb1 * vm[j] + va1 * g;
                    vv[j] = vb2 * vv[j] + va2 * g * g;
                    vx[j] = vx[j] * vshrink - vlr * (vm[j] * vc1) / (Vector.SquareRoot(vv[j] * vc2) + veps);
                }
                i += vm.Length * Vector<T>.Count;
            }
            for (; i < end; i++)
            {
                T g = grad[i];
                m[i] = b1 * m[i] + (T.One - b1) * g;
                v[i] = b2 * v[i] + (T.One - b2) * g * g;
                T mHat = m[i] * correct1, vHat = v[i] * correct2;
                value[i] = value[i] * shrink - lr * mHat / (T.Sqrt(vHat) + eps);
            }
        }
    }
}

/// <summary>
/// AdamW: Adam with decoupled weight decay (Loshchilov and Hutter). Before the Adam update every value
/// shrinks by θ ← θ − α·λ·θ, independent of the gradient. Keras's default λ is 0.004.
/// </summary>
public sealed class AdamW(double learningRate = 0.001, double weightDecay = 0.004, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-7)
    : Adam(learningRate, beta1, beta2, epsilon)
{
    /// <summary>λ, the decay per unit of learning rate.</summary>
    public double WeightDecay { get; } = weightDecay >= 0
        ? weightDecay
        : throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must not be negative");

    /// <summary>α·λ: θ ← θ·(1 − α·λ) before the Adam update, in the same pass.</summary>
    protected override double Decay => LearningRate * WeightDecay;
}
