using ClockLM.Clock;

namespace ClockLM.Probes;

/// <summary>Which token positions of a sentence give its feature vector.</summary>
public enum ProbePosition
{
    /// <summary>The last token's activation. In a causal model it is the only position that has attended to the
    /// whole sentence, and it does not contain the words' own embeddings, so it asks whether the cycles moved the
    /// property to where the next word is predicted.</summary>
    LastToken,
    /// <summary>The mean over every position (the BOS included). Keeps each word's own embedding, so a property
    /// carried by a single word is visible from the embedding on.</summary>
    Mean,
}

/// <summary>How <see cref="LayerProbe"/> captures features, splits the examples and trains each probe.</summary>
public sealed record ProbeOptions
{
    /// <summary>Layers to probe; null probes every layer. The embedding (<see cref="LayerProbe.EmbeddingLayer"/>) is always probed as a baseline.</summary>
    public IReadOnlyList<int>? Layers { get; init; }

    /// <summary>The activation read at each layer (default the residual stream leaving the cycle).</summary>
    public ActivationPoint Point { get; init; } = ActivationPoint.ResidPost;

    /// <summary>Which positions make a sentence's feature vector (default the last token).</summary>
    public ProbePosition Position { get; init; } = ProbePosition.LastToken;

    /// <summary>Seeds the shuffle before the split, the weight initialisation and the batch order.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Fraction of each class held out for testing.</summary>
    public double TestFraction { get; init; } = 0.3;

    /// <summary>Passes over the training split.</summary>
    public int Epochs { get; init; } = 100;

    /// <summary>Adam's step size.</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>Rows per gradient step.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first value out of range.</summary>
    public void Validate()
    {
        if (!(TestFraction > 0 && TestFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(TestFraction), TestFraction, "the test fraction must be between 0 and 1 (exclusive)");
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "epochs must be at least 1");
        if (!(LearningRate > 0)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "the learning rate must be positive");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "the batch size must be at least 1");
        if (Point == ActivationPoint.AttentionPattern)
            throw new ArgumentOutOfRangeException(nameof(Point), Point, "the attention pattern's width changes with the position; probe a residual-width point");
    }
}
