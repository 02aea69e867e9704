using System.Numerics;

namespace ClockLM.Nn;

/// <summary>The loss a <see cref="Sequential{T}"/> minimises.</summary>
public enum Loss
{
    /// <summary>−mean(y·log p + (1 − y)·log(1 − p)), p clipped to [1e-7, 1 − 1e-7]; targets in [0, 1].</summary>
    BinaryCrossEntropy,
    /// <summary>−(1/B)·Σ_rows Σ_c y_c·log p_c, p clipped to [1e-7, 1 − 1e-7]; targets one-hot (or distributions), predictions probabilities.</summary>
    CategoricalCrossEntropy,
    /// <summary>−(1/B)·Σ_rows log p[label], p clipped to [1e-7, 1 − 1e-7]; each target row holds one class index.</summary>
    SparseCategoricalCrossEntropy,
    /// <summary>mean((p − y)²).</summary>
    MeanSquaredError,
}

/// <summary>Differentiable losses: each returns a one-value tensor whose <see cref="Tensor{T}.Backward"/> reaches the predictions.</summary>
public static class Losses
{
    /// <summary>Keras's fuzz factor: probabilities are clipped to [Epsilon, 1 − Epsilon] before taking logarithms.</summary>
    public const double Epsilon = 1e-7;

    /// <summary>The name Keras prints for a loss (e.g. <c>binary_crossentropy</c>).</summary>
    public static string Name(Loss loss) => loss switch
    {
        Loss.BinaryCrossEntropy => "binary_crossentropy",
        Loss.CategoricalCrossEntropy => "categorical_crossentropy",
        Loss.SparseCategoricalCrossEntropy => "sparse_categorical_crossentropy",
        Loss.MeanSquaredError => "mean_squared_error",
        _ => throw new ArgumentOutOfRangeException(nameof(loss), loss, "unknown loss"),
    };

    /// <summary>Computes <paramref name="loss"/> of <paramref name="predictions"/> against <paramref name="targets"/>.</summary>
    public static Tensor<T> Compute<T>(Loss loss, Tensor<T> predictions, Tensor<T> targets) where T : unmanaged, IFloatingPointIeee754<T> =>
        loss switch
        {
            Loss.BinaryCrossEntropy => BinaryCrossEntropy(predictions, targets),
            Loss.CategoricalCrossEntropy => CategoricalCrossEntropy(predictions, targets),
            Loss.SparseCategoricalCrossEntropy => SparseCategoricalCrossEntropy(predictions, targets),
            Loss.MeanSquaredError => MeanSquaredError(predictions, targets),
            _ => throw new ArgumentOutOfRangeException(nameof(loss), loss, "unknown loss"),
        };

    /// <summary>Binary cross-entropy, mean over all values. The gradient is zero where p was clipped.</summary>
    public static Tensor<T> BinaryCrossEntropy<T>(Tensor<T> p, Tensor<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        RequireSameShape("BinaryCrossEntropy", p, y);
        T eps = T.CreateChecked(Epsilon), hi = T.One - eps, n = T.CreateChecked(p.Length);
        T sum = T.Zero;
        for (int i = 0; i < p.Length; i++)
        {
            T pc = T.Clamp(p.Data[i], eps, hi);
            sum += y.Data[i] * T.Log(pc) + (T.One - y.Data[i]) * T.Log(T.One - pc);
        }
        var output = Tensor<T>.Result([], [-sum / n], p, y);
        output.SetBackward(() =>
        {
            if (!p.RequiresGrad) return;
            T g = output.Grad![0] / n;
            var gp = p.EnsureGrad();
            for (int i = 0; i < p.Length; i++)
            {
                T pi = p.Data[i];
                if (pi < eps || pi > hi) continue;
                // d/dp of −(y·log p + (1 − y)·log(1 − p)) = −y/p + (1 − y)/(1 − p)
                gp[i] += g * ((T.One - y.Data[i]) / (T.One - pi) - y.Data[i] / pi);
            }
        });
        return output;
    }

    /// <summary>Categorical cross-entropy over rows of probabilities, mean over rows.</summary>
    public static Tensor<T> CategoricalCrossEntropy<T>(Tensor<T> p, Tensor<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        RequireSameShape("CategoricalCrossEntropy", p, y);
        T eps = T.CreateChecked(Epsilon), hi = T.One - eps, rows = T.CreateChecked(p.Rows);
        T sum = T.Zero;
        for (int i = 0; i < p.Length; i++)
            if (y.Data[i] != T.Zero) sum += y.Data[i] * T.Log(T.Clamp(p.Data[i], eps, hi));
        var output = Tensor<T>.Result([], [-sum / rows], p, y);
        output.SetBackward(() =>
        {
            if (!p.RequiresGrad) return;
            T g = output.Grad![0] / rows;
            var gp = p.EnsureGrad();
            for (int i = 0; i < p.Length; i++)
            {
                T pi = p.Data[i];
                if (pi < eps || pi > hi) continue;
                gp[i] -= g * y.Data[i] / pi;
            }
        });
        return output;
    }

    /// <summary>Sparse categorical cross-entropy: <paramref name="labels"/> has one class index per row of <paramref name="p"/>.</summary>
    public static Tensor<T> SparseCategoricalCrossEntropy<T>(Tensor<T> p, Tensor<T> labels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (labels.Length != p.Rows)
            throw new ShapeMismatchException("SparseCategoricalCrossEntropy", p.Shape, labels.Shape, $"expected one class index per row ({p.Rows})");
        int rows = p.Rows, cols = p.Columns;
        var index = new int[rows];
        for (int r = 0; r < rows; r++)
        {
            T label = labels.Data[r];
            if (T.IsNaN(label) || label < T.Zero || label >= T.CreateChecked(cols) || label != T.Floor(label))
                throw new ArgumentException($"SparseCategoricalCrossEntropy: row {r} has label {label}, expected a class index in [0, {cols - 1}]", nameof(labels));
            index[r] = int.CreateChecked(label);
        }
        T eps = T.CreateChecked(Epsilon), hi = T.One - eps, n = T.CreateChecked(rows);
        T sum = T.Zero;
        for (int r = 0; r < rows; r++) sum += T.Log(T.Clamp(p.Data[r * cols + index[r]], eps, hi));
        var output = Tensor<T>.Result([], [-sum / n], p, labels);
        output.SetBackward(() =>
        {
            if (!p.RequiresGrad) return;
            T g = output.Grad![0] / n;
            var gp = p.EnsureGrad();
            for (int r = 0; r < rows; r++)
            {
                int i = r * cols + index[r];
                T pi = p.Data[i];
                if (pi < eps || pi > hi) continue;
                gp[i] -= g / pi;
            }
        });
        return output;
    }

    /// <summary>Mean squared error over all values.</summary>
    public static Tensor<T> MeanSquaredError<T>(Tensor<T> p, Tensor<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        RequireSameShape("MeanSquaredError", p, y);
        T n = T.CreateChecked(p.Length);
        T sum = T.Zero;
        for (int i = 0; i < p.Length; i++)
        {
            T d = p.Data[i] - y.Data[i];
            sum += d * d;
        }
        var output = Tensor<T>.Result([], [sum / n], p, y);
        output.SetBackward(() =>
        {
            T g = T.CreateChecked(2) * output.Grad![0] / n;
            if (p.RequiresGrad)
            {
                var gp = p.EnsureGrad();
                for (int i = 0; i < p.Length; i++) gp[i] += g * (p.Data[i] - y.Data[i]);
            }
            if (y.RequiresGrad)
            {
                var gy = y.EnsureGrad();
                for (int i = 0; i < y.Length; i++) gy[i] -= g * (p.Data[i] - y.Data[i]);
            }
        });
        return output;
    }

    private static void RequireSameShape<T>(string operation, Tensor<T> p, Tensor<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!Tensor<T>.SameShape(p.Shape, y.Shape))
            throw new ShapeMismatchException(operation, p.Shape, y.Shape, "predictions and targets must have the same shape");
    }
}
