using System.Runtime.CompilerServices;
using ClockLM.Models;
using ClockLM.Sampling;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Chat;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over the in-process engine: .NET apps (and Semantic Kernel) chat
/// with a local model without a server. Calls may run concurrently; they share a <see cref="SlotScheduler"/>.
/// Supported <see cref="ChatOptions"/>: Temperature, TopP, TopK, MaxOutputTokens, StopSequences, Seed; the others are ignored.
/// </summary>
/// <remarks>
/// The next turn of a conversation evaluates only its new messages: its prompt extends the previous one, whose keys and
/// values the scheduler's slot still holds (<see cref="ChatResponse.Usage"/>'s <c>CachedInputTokenCount</c>). When the
/// template renders earlier turns differently, the conversation is read again from where it differs; such turns are
/// counted in <see cref="Turns"/> and the first is logged to the scheduler's logger.
/// </remarks>
public sealed class ClockLMChatClient : IChatClient
{
    private readonly SlotScheduler _scheduler;
    private readonly bool _ownsScheduler;
    private readonly ChatPrompt _prompt;
    private readonly ChatClientMetadata _metadata;
    private int _rewriteLogged;

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
        Turns = new ConversationPrompts(Math.Max(16, 2 * scheduler.Slots));
    }

    /// <summary>How each call's prompt related to its conversation's previous one: extended it, or rewrote it (a re-read).</summary>
    public ConversationPrompts Turns { get; }

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

        int[] ids = _prompt.Encode(conversation);
        if (Turns.Add(conversation, ids) == TurnPrompt.Rewritten && Interlocked.Exchange(ref _rewriteLogged, 1) == 0)
            _scheduler.Logger?.LogWarning("the chat template rendered an earlier turn differently, so the conversation is read again " +
                "from where it changed; such turns are counted in ClockLMChatClient.Turns.Rewritten");
        var request = new CompletionRequest
        {
            PromptIds = ids,
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
        CachedInputTokenCount = result.CachedTokens,
    };
}
