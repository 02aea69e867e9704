using System.Runtime.CompilerServices;
using ClockLM.Models;
using ClockLM.Sampling;
using Microsoft.Extensions.AI;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Chat;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over the in-process engine: .NET apps (and Semantic Kernel) chat
/// with a local model without a server. Calls may run concurrently; they share a <see cref="SlotScheduler"/>.
/// Supported <see cref="ChatOptions"/>: Temperature, TopP, TopK, MaxOutputTokens, StopSequences, Seed; the others are ignored.
/// </summary>
public sealed class ClockLMChatClient : IChatClient
{
    private readonly SlotScheduler _scheduler;
    private readonly bool _ownsScheduler;
    private readonly ChatPrompt _prompt;
    private readonly ChatClientMetadata _metadata;

    /// <summary>A client with its own scheduler over <paramref name="model"/> (disposed with the client; the model is not).</summary>
    public ClockLMChatClient(Model model, SlotSchedulerOptions? options = null)
        : this(new SlotScheduler(model, options), ownsScheduler: true)
    {
    }

    /// <summary>A client sharing <paramref name="scheduler"/> (which the caller disposes).</summary>
    public ClockLMChatClient(SlotScheduler scheduler) : this(scheduler, ownsScheduler: false)
    {
    }

    private ClockLMChatClient(SlotScheduler scheduler, bool ownsScheduler)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        _scheduler = scheduler;
        _ownsScheduler = ownsScheduler;
        _prompt = new ChatPrompt(scheduler.Model);
        ModelId = Path.GetFileNameWithoutExtension(scheduler.Model.Path);
        _metadata = new ChatClientMetadata("clocklm", null, ModelId);
    }

    /// <summary>The model's name: its file name without extension.</summary>
    public string ModelId { get; }

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var job = Submit(messages, options, cancellationToken);
        var result = await job.Result.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, result.Text))
        {
            ModelId = ModelId,
            FinishReason = Finish(result.Finish),
            Usage = Usage(result),
            CreatedAt = DateTimeOffset.UtcNow,
        };
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var job = Submit(messages, options, cancellationToken);
        await foreach (var update in job.Updates.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            if (update.Text.Length == 0) continue;
            yield return new ChatResponseUpdate(ChatRole.Assistant, update.Text) { ModelId = ModelId, ResponseId = responseId };
        }
        var result = await job.Result.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(result))])
        {
            ModelId = ModelId,
            ResponseId = responseId,
            FinishReason = Finish(result.Finish),
        };
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType == typeof(SlotScheduler)) return _scheduler;
        if (serviceType == typeof(Model)) return _scheduler.Model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Stops the scheduler when this client created it.</summary>
    public void Dispose()
    {
        if (_ownsScheduler) _scheduler.Dispose();
    }

    private CompletionJob Submit(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var conversation = new List<TemplateMessage>();
        if (options?.Instructions is { Length: > 0 } instructions)
            conversation.Add(new TemplateMessage("system", instructions));
        foreach (var m in messages)
            conversation.Add(new TemplateMessage(m.Role.Value, m.Text));

        var sampler = new SamplerOptions();
        if (options?.Temperature is { } t) sampler = sampler with { Temperature = t };
        if (options?.TopP is { } p) sampler = sampler with { TopP = p };
        if (options?.TopK is { } k) sampler = sampler with { TopK = k };
        if (options?.Seed is { } seed) sampler = sampler with { Seed = unchecked((ulong)seed) };

        var request = new CompletionRequest
        {
            PromptIds = _prompt.Encode(conversation),
            MaxTokens = options?.MaxOutputTokens,
            Sampler = sampler,
            Stop = [.. _prompt.TemplateStops, .. options?.StopSequences ?? []],
        };
        return _scheduler.Submit(request, cancellation);
    }

    private static ChatFinishReason? Finish(FinishReason reason) => reason switch
    {
        FinishReason.Stop => ChatFinishReason.Stop,
        FinishReason.Length => ChatFinishReason.Length,
        _ => null,
    };

    private static UsageDetails Usage(CompletionResult result) => new()
    {
        InputTokenCount = result.PromptTokens,
        OutputTokenCount = result.CompletionTokens,
        TotalTokenCount = result.PromptTokens + result.CompletionTokens,
    };
}
