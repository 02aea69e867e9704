namespace ClockLM.Sampling;

/// <summary>How the next token is chosen from the logits. The defaults match llama.cpp's command-line defaults,
/// except that a temperature of 0 (or below) means greedy.</summary>
public sealed record SamplerOptions
{
    /// <summary>Softmax temperature; 0 or below picks the most likely token (greedy).</summary>
    public float Temperature { get; init; } = 0.8f;

    /// <summary>Keep only the K most likely tokens; 0 disables.</summary>
    public int TopK { get; init; } = 40;

    /// <summary>Keep the smallest set of tokens whose probabilities sum to at least P; 1 disables.</summary>
    public float TopP { get; init; } = 0.95f;

    /// <summary>Drop tokens whose probability is below MinP times the top token's; 0 disables.</summary>
    public float MinP { get; init; } = 0.05f;

    /// <summary>Divide positive logits (multiply negative ones) of recently seen tokens by this; 1 disables.</summary>
    public float RepeatPenalty { get; init; } = 1.0f;

    /// <summary>How many recent tokens the repetition penalty looks at.</summary>
    public int RepeatLastN { get; init; } = 64;

    /// <summary>Random seed: the same seed and settings give the same tokens.</summary>
    public ulong Seed { get; init; } = 0x5EED;

    /// <summary>Greedy decoding: always the most likely token.</summary>
    public static SamplerOptions Greedy { get; } = new() { Temperature = 0 };

    /// <summary>Checks the values; returns a description of the first bad one or null.</summary>
    public string? Validate()
    {
        if (!(Temperature >= 0 && float.IsFinite(Temperature))) return $"temperature is {Temperature}, expected 0 (greedy) or more";
        if (TopK < 0) return $"top-k is {TopK}, expected 0 (off) or more";
        if (!(TopP > 0 && TopP <= 1)) return $"top-p is {TopP}, expected a value in (0, 1]";
        if (!(MinP >= 0 && MinP <= 1)) return $"min-p is {MinP}, expected a value in [0, 1]";
        if (!(RepeatPenalty > 0)) return $"repeat penalty is {RepeatPenalty}, expected a positive value";
        if (RepeatLastN < 0) return $"repeat-last-n is {RepeatLastN}, expected 0 or more";
        return null;
    }
}
