using System.Text.Json.Serialization;
using ClockLM.Models;

namespace ClockLM.Training;

/// <summary>The model shape and the optimisation settings of a training run (saved in every checkpoint).</summary>
public sealed record TrainingOptions
{
    /// <summary>Width of the residual stream.</summary>
    public int Dim { get; init; } = 128;

    /// <summary>Transformer layers.</summary>
    public int Layers { get; init; } = 4;

    /// <summary>Query heads.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>Key/value heads (grouped-query attention when fewer than <see cref="Heads"/>).</summary>
    public int KvHeads { get; init; } = 2;

    /// <summary>Width of the feed-forward layer.</summary>
    public int HiddenDim { get; init; } = 384;

    /// <summary>Vocabulary size of the BPE tokenizer trained on the data.</summary>
    public int VocabSize { get; init; } = 1024;

    /// <summary>Tokens per training sequence (the model's context length); the first is always BOS.</summary>
    public int ContextLength { get; init; } = 128;

    /// <summary>Sequences per step.</summary>
    public int Batch { get; init; } = 16;

    /// <summary>Optimisation steps.</summary>
    public int Steps { get; init; } = 1000;

    /// <summary>Peak learning rate (reached after warm-up).</summary>
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Learning rate at the end of the cosine decay.</summary>
    public double MinLearningRate { get; init; } = 3e-4;

    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; init; } = 50;

    /// <summary>AdamW's decoupled weight decay λ, applied to matrices (not to norms).</summary>
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>Gradients are scaled down to this global norm when larger.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>Seed for the initial weights and the order of the batches.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Steps between checkpoints (0: none).</summary>
    public int CheckpointEvery { get; init; } = 100;

    /// <summary>Steps between validation-loss evaluations (0: only at the end).</summary>
    public int EvalEvery { get; init; } = 100;

    /// <summary>Batches of held-out text per validation-loss evaluation.</summary>
    public int EvalBatches { get; init; } = 4;

    /// <summary>Threads the training steps run on (0: one per processor). Not saved in checkpoints: the result is the
    /// same bits for any thread count, so a run may resume on another.</summary>
    [JsonIgnore]
    public int Threads { get; init; }

    /// <summary>The thread count <see cref="Threads"/> stands for.</summary>
    [JsonIgnore]
    public int ThreadCount => Threads > 0 ? Threads : Environment.ProcessorCount;

    /// <summary>The model shape these options describe.</summary>
    public LlamaConfig ModelConfig => new(Dim, HiddenDim, Layers, Heads, KvHeads, VocabSize, ContextLength);

    /// <summary>Returns a description of the first invalid setting, or null.</summary>
    public string? Validate()
    {
        if (ModelConfig.Validate() is { } shape) return shape;
        if (VocabSize < BpeTrainer.MinimumVocabSize) return $"--vocab {VocabSize} is below {BpeTrainer.MinimumVocabSize} (3 special and 256 byte tokens)";
        if (ContextLength < 2) return $"--context {ContextLength} must be at least 2";
        if (Batch <= 0) return $"--batch {Batch} must be positive";
        if (Steps <= 0) return $"--steps {Steps} must be positive";
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) return $"--lr {LearningRate} must be a positive number";
        if (!(MinLearningRate >= 0) || MinLearningRate > LearningRate) return $"the minimum learning rate {MinLearningRate} must be in [0, {LearningRate}]";
        if (WarmupSteps < 0) return $"warm-up steps {WarmupSteps} must not be negative";
        if (WeightDecay < 0) return $"weight decay {WeightDecay} must not be negative";
        if (!(ClipNorm > 0)) return $"clip norm {ClipNorm} must be positive";
        if (CheckpointEvery < 0) return $"--checkpoint-every {CheckpointEvery} must not be negative";
        if (EvalEvery < 0) return $"--eval-every {EvalEvery} must not be negative";
        if (EvalBatches <= 0) return $"eval batches {EvalBatches} must be positive";
        if (Threads is < 0 or > 1024) return $"--threads {Threads} must be 0 (one per processor) to 1024";
        return null;
    }
}
