using ClockLM.Models;

namespace ClockLM.Training;

/// <summary>The LoRA shape and optimisation settings of a fine-tuning run (saved in every checkpoint).</summary>
public sealed record FinetuneOptions
{
    /// <summary>Rows of every A (columns of every B).</summary>
    public int Rank { get; init; } = 8;

    /// <summary>PEFT's lora_alpha: the update is scaled by alpha / rank (written as <c>adapter.lora.alpha</c>).</summary>
    public float Alpha { get; init; } = 16;

    /// <summary>The products adapted in every layer, by llama.cpp's names (attn_q, attn_k, attn_v, attn_output,
    /// ffn_gate, ffn_up, ffn_down), and "output" for the output head.</summary>
    public string[] Targets { get; init; } = ["attn_q", "attn_v"];

    /// <summary>Tokens per training sequence (at most the base model's context length).</summary>
    public int ContextLength { get; init; } = 64;

    /// <summary>Sequences per step.</summary>
    public int Batch { get; init; } = 8;

    /// <summary>Optimisation steps.</summary>
    public int Steps { get; init; } = 200;

    /// <summary>Peak learning rate (reached after warm-up, then cosine decay to a tenth).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; init; } = 10;

    /// <summary>AdamW's decoupled weight decay of A and B (PEFT's default trainer uses 0).</summary>
    public double WeightDecay { get; init; }

    /// <summary>Gradients are scaled down to this global norm when larger.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>Seed for A's initial values and the order of the batches.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Steps between checkpoints (0: none).</summary>
    public int CheckpointEvery { get; init; } = 50;

    /// <summary>Steps between validation-loss evaluations (0: only at the end).</summary>
    public int EvalEvery { get; init; } = 50;

    /// <summary>Batches of held-out text per validation-loss evaluation.</summary>
    public int EvalBatches { get; init; } = 4;

    /// <summary>The layer products named in <see cref="Targets"/>.</summary>
    public List<LoraTarget> LayerTargets() => Targets.Where(t => t != "output").Select(t => LoraAdapters.ParseTarget(t)!.Value).ToList();

    /// <summary>True when <see cref="Targets"/> names the output head.</summary>
    public bool AdaptsOutput => Targets.Contains("output");

    /// <summary>Returns a description of the first invalid setting, or null.</summary>
    public string? Validate()
    {
        if (Rank <= 0) return $"--lora-rank {Rank} must be positive";
        if (!(Alpha > 0) || !float.IsFinite(Alpha)) return $"--lora-alpha {Alpha} must be a positive number";
        if (Targets.Length == 0) return "--targets names no product";
        foreach (string t in Targets)
            if (t != "output" && LoraAdapters.ParseTarget(t) is null)
                return $"--targets names '{t}'; expected some of {string.Join(", ", Enum.GetValues<LoraTarget>().Select(LoraAdapters.TargetName))}, output";
        if (Targets.Distinct().Count() != Targets.Length) return $"--targets names a product twice ({string.Join(",", Targets)})";
        if (ContextLength < 2) return $"--context {ContextLength} must be at least 2";
        if (Batch <= 0) return $"--batch {Batch} must be positive";
        if (Steps <= 0) return $"--steps {Steps} must be positive";
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) return $"--lr {LearningRate} must be a positive number";
        if (WarmupSteps < 0) return $"--warmup {WarmupSteps} must not be negative";
        if (!(WeightDecay >= 0)) return $"weight decay {WeightDecay} must not be negative";
        if (!(ClipNorm > 0)) return $"clip norm {ClipNorm} must be positive";
        if (CheckpointEvery < 0) return $"--checkpoint-every {CheckpointEvery} must not be negative";
        if (EvalEvery < 0) return $"--eval-every {EvalEvery} must not be negative";
        if (EvalBatches <= 0) return $"eval batches {EvalBatches} must be positive";
        return null;
    }
}
