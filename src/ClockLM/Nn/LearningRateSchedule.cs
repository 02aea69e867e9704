namespace ClockLM.Nn;

/// <summary>
/// Linear warm-up followed by a cosine decay: the learning rate rises from peak/warmup to the peak over the first
/// <see cref="WarmupSteps"/> steps, then follows lr = min + (peak − min)·(1 + cos(π·progress))/2 down to
/// <see cref="MinLearningRate"/> at <see cref="TotalSteps"/>, and stays there.
/// </summary>
public sealed class WarmupCosineSchedule
{
    /// <summary>Creates the schedule.</summary>
    public WarmupCosineSchedule(double peakLearningRate, double minLearningRate, int warmupSteps, int totalSteps)
    {
        if (!(peakLearningRate > 0) || double.IsInfinity(peakLearningRate))
            throw new ArgumentOutOfRangeException(nameof(peakLearningRate), peakLearningRate, "the peak learning rate must be a positive number");
        if (!(minLearningRate >= 0) || minLearningRate > peakLearningRate)
            throw new ArgumentOutOfRangeException(nameof(minLearningRate), minLearningRate, "the minimum learning rate must be in [0, peak]");
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalSteps);
        PeakLearningRate = peakLearningRate;
        MinLearningRate = minLearningRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    /// <summary>The learning rate at the end of warm-up.</summary>
    public double PeakLearningRate { get; }

    /// <summary>The learning rate at the end of the decay.</summary>
    public double MinLearningRate { get; }

    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; }

    /// <summary>The step at which the decay reaches <see cref="MinLearningRate"/>.</summary>
    public int TotalSteps { get; }

    /// <summary>The learning rate for step <paramref name="step"/>, counted from 0.</summary>
    public double At(int step)
    {
        if (step < WarmupSteps) return PeakLearningRate * (step + 1) / WarmupSteps;
        if (step >= TotalSteps) return MinLearningRate;
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return MinLearningRate + (PeakLearningRate - MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
