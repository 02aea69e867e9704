using System.Numerics;

namespace ClockLM.Nn;

/// <summary>How <see cref="Metric.Accuracy"/> compares a prediction with its target.</summary>
internal enum AccuracyKind
{
    /// <summary>Per value: both on the same side of 0.5.</summary>
    Binary,
    /// <summary>Per row: the arg-max of prediction and target agree.</summary>
    Categorical,
    /// <summary>Per row: the arg-max of the prediction is the class index in the target.</summary>
    Sparse,
}

internal static class Accuracy
{
    /// <summary>(correct, total) for a batch of <paramref name="rows"/> predictions of width <paramref name="cols"/>.</summary>
    public static (long Correct, long Total) Count<T>(AccuracyKind kind, T[] predictions, T[] targets, int rows, int cols)
        where T : IFloatingPointIeee754<T>
    {
        T half = T.CreateChecked(0.5);
        long correct = 0;
        switch (kind)
        {
            case AccuracyKind.Binary:
                for (int i = 0; i < predictions.Length; i++)
                    if (predictions[i] > half == targets[i] > half) correct++;
                return (correct, predictions.Length);
            case AccuracyKind.Categorical:
                for (int r = 0; r < rows; r++)
                    if (ArgMax(predictions.AsSpan(r * cols, cols)) == ArgMax(targets.AsSpan(r * cols, cols))) correct++;
                return (correct, rows);
            default:
                for (int r = 0; r < rows; r++)
                    if (T.CreateChecked(ArgMax(predictions.AsSpan(r * cols, cols))) == targets[r]) correct++;
                return (correct, rows);
        }
    }

    private static int ArgMax<T>(ReadOnlySpan<T> values) where T : IFloatingPointIeee754<T>
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}
