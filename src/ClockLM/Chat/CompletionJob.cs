using System.Threading.Channels;
using ClockLM.Models;

namespace ClockLM.Chat;

/// <summary>A request accepted by a <see cref="SlotScheduler"/>: its updates as they are generated, then its result.</summary>
public sealed class CompletionJob
{
    private readonly Channel<CompletionUpdate> _updates = Channel.CreateUnbounded<CompletionUpdate>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource<CompletionResult> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal CompletionJob(CompletionRequest request, int maxTokens, LoraAdapters? lora, CancellationToken cancellation)
    {
        Request = request;
        MaxTokens = maxTokens;
        Lora = lora;
        Cancellation = cancellation;
    }

    /// <summary>The request as submitted.</summary>
    public CompletionRequest Request { get; }

    /// <summary>Tokens this job may generate (the request's MaxTokens, or what is left of the context).</summary>
    public int MaxTokens { get; }

    /// <summary>The LoRA adapters the job runs with, resolved when it was submitted (its own scales, or the scheduler's
    /// at that moment); null when the scheduler has none of its own (the model's apply).</summary>
    internal LoraAdapters? Lora { get; }

    internal CancellationToken Cancellation { get; }

    /// <summary>Removes the job from the queue when cancelled there; released when the job ends.</summary>
    internal CancellationTokenRegistration QueueRegistration { get; set; }
    internal long EnqueuedAt { get; } = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>One update per generated token, in order; completes when the generation ends.</summary>
    public ChannelReader<CompletionUpdate> Updates => _updates.Reader;

    /// <summary>The finished generation (Cancelled when the token passed to Submit fired). Faults only on an engine error.</summary>
    public Task<CompletionResult> Result => _result.Task;

    internal void Publish(CompletionUpdate update) => _updates.Writer.TryWrite(update);

    internal void Complete(CompletionResult result)
    {
        QueueRegistration.Dispose();
        _updates.Writer.TryComplete();
        _result.TrySetResult(result);
    }

    internal void Fail(Exception error)
    {
        QueueRegistration.Dispose();
        _updates.Writer.TryComplete(error);
        _result.TrySetException(error);
    }
}

/// <summary>The scheduler's wait queue is full; try again later.</summary>
public sealed class QueueFullException(int capacity)
    : Exception($"the server is busy: all slots are generating and the queue holds its limit of {capacity} requests")
{
    /// <summary>The queue's capacity.</summary>
    public int Capacity { get; } = capacity;
}

/// <summary>A request the scheduler cannot run (too long for the context, bad settings); names the field and the limit.</summary>
public sealed class CompletionRequestException(string parameter, string message) : ArgumentException(message, parameter)
{
    /// <summary>What is wrong, without the parameter suffix ArgumentException adds.</summary>
    public override string Message { get; } = message;

    /// <summary>The request field at fault (OpenAI's <c>param</c>), e.g. <c>max_tokens</c> or <c>messages</c>.</summary>
    public string Parameter { get; } = parameter;
}
