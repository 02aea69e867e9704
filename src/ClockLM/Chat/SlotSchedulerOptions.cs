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

    /// <summary>Most prompt tokens one slot evaluates per round, so a long prompt does not stall the others.</summary>
    public int PrefillChunk { get; init; } = 64;

    /// <summary>Threads for the matrix-vector products (used by the single scheduler thread only); none when null.</summary>
    public WorkerPool? Pool { get; init; }

    /// <summary>Where the scheduler reports what it falls back from (a batched step that failed); nowhere when null.
    /// Every fallback is counted in <see cref="SchedulerStats"/> too.</summary>
    public ILogger? Logger { get; init; }
}
