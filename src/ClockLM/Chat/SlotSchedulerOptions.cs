using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Tensors;
using Microsoft.Extensions.Logging;

namespace ClockLM.Chat;

/// <summary>Settings of a <see cref="SlotScheduler"/>.</summary>
public sealed record SlotSchedulerOptions
{
    /// <summary>Sequences generated at once; each slot owns one KV cache.</summary>
    public int Slots { get; init; } = 4;

    /// <summary>Positions each slot's KV cache holds; the model's context length when null.</summary>
    public int? ContextLength { get; init; }

    /// <summary>Requests that may wait for a slot; beyond that <see cref="SlotScheduler.Submit"/> throws <see cref="QueueFullException"/>.</summary>
    public int QueueCapacity { get; init; } = 64;

    /// <summary>Most prompt tokens evaluated per round, in all (the earliest request's first), so a long prompt does not
    /// stall the slots that are decoding.</summary>
    public int PrefillChunk { get; init; } = 64;

    /// <summary>LoRA adapters requests may name by id (their index here), each at its starting scale: llama-server's
    /// <c>--lora</c> files. When there are some, every slot runs with adapters of its own (its request's scales, or the
    /// scheduler's current ones, <see cref="SlotScheduler.SetLoraScales"/>) in place of the model's
    /// <see cref="Model.Lora"/>. Empty (the default): requests run with the model's and may not name any.</summary>
    public IReadOnlyList<ScaledLora> Lora { get; init; } = [];

    /// <summary>Steering of every request that brings none (<see cref="CompletionRequest.Steering"/>): a server's or a
    /// chat's control vectors; none when null.</summary>
    public ResidualSteering? Steering { get; init; }

    /// <summary>Threads for the matrix-vector products (used by the single scheduler thread only); none when null.</summary>
    public WorkerPool? Pool { get; init; }

    /// <summary>Speculative decoding in every slot: each drafts tokens after its last one, verified in the round's pass
    /// (the same output, more tokens per pass); null for none.</summary>
    public SpeculativeOptions? Speculative { get; init; }

    /// <summary>How each slot's KV cache stores keys and values (F16 when null).</summary>
    public KvCacheOptions? KvCache { get; init; }

    /// <summary>When a generation fills its slot's context, keep the first tokens (<see cref="CompletionRequest.KeepTokens"/>),
    /// drop half of the rest and go on (<see cref="Transformer.ShiftContext"/>), as llama.cpp's <c>--context-shift</c>;
    /// otherwise the generation ends there with <see cref="FinishReason.Length"/>. Default false.</summary>
    public bool ContextShift { get; init; }

    /// <summary>Where the scheduler reports what it falls back from (a batched step that failed); nowhere when null.
    /// Every fallback is counted in <see cref="SchedulerStats"/> too.</summary>
    public ILogger? Logger { get; init; }
}
