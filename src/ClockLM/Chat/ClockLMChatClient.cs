using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Chat.Tools;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;
using Microsoft.Extensions.AI;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;
using TemplateToolCall = ClockLM.Tokenizers.ChatTemplates.ChatToolCall;

namespace ClockLM.Chat;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over the in-process engine: .NET apps (and Semantic Kernel) chat
/// with a local model without a server. Calls may run concurrently; they share a <see cref="SlotScheduler"/>.
/// Supported <see cref="ChatOptions"/>: Temperature, TopP, TopK, MaxOutputTokens, StopSequences, Seed, Instructions,
/// ResponseFormat (JSON, with or without a schema: the output is grammar-constrained, so <c>GetResponseAsync&lt;T&gt;</c>
/// parses), Tools (functions), ToolMode and AllowMultipleToolCalls. Calls come back as <see cref="FunctionCallContent"/>
/// and their results go in as <see cref="FunctionResultContent"/>, so <c>UseFunctionInvocation()</c> works.
/// FrequencyPenalty or PresencePenalty other than 0, tools that are not functions, and response formats or schemas
/// ClockLM cannot constrain are refused with an <see cref="ArgumentException"/> naming them.
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
        var (job, tools) = Submit(messages, options, cancellationToken);
        var parser = tools is null ? null : new ToolCallParser(_prompt.ToolFormat);
        await foreach (var update in job.Updates.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            parser?.Append(update, _scheduler.Model.Tokenizer);
        var result = await job.Result.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        parser?.Finish();
        var calls = Kept(parser, tools);
        var message = calls.Count == 0
            ? new ChatMessage(ChatRole.Assistant, result.Text)
            : new ChatMessage(ChatRole.Assistant, [.. Text(parser!.Content.Trim()), .. calls.Select(FunctionCall)]);
        return new ChatResponse(message)
        {
            ModelId = ModelId,
            FinishReason = calls.Count > 0 && result.Finish == FinishReason.Stop ? ChatFinishReason.ToolCalls : Finish(result.Finish),
            Usage = Usage(result),
            CreatedAt = DateTimeOffset.UtcNow,
        };
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var (job, tools) = Submit(messages, options, cancellationToken);
        var parser = tools is null ? null : new ToolCallParser(_prompt.ToolFormat);
        int calls = 0;
        ChatResponseUpdate? Convert(ToolStreamEvent e)
        {
            if (e is ContentEvent content)
                return new ChatResponseUpdate(ChatRole.Assistant, content.Text) { ModelId = ModelId, ResponseId = responseId };
            var call = (ToolCallEvent)e;
            if (!tools!.Parallel && call.Index > 0) return null;
            calls++;
            return new ChatResponseUpdate(ChatRole.Assistant, [FunctionCall(call.Call)]) { ModelId = ModelId, ResponseId = responseId };
        }
        await foreach (var update in job.Updates.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            if (parser is not null)
            {
                foreach (var e in parser.Append(update, _scheduler.Model.Tokenizer))
                    if (Convert(e) is { } converted) yield return converted;
                continue;
            }
            if (update.Text.Length == 0) continue;
            yield return new ChatResponseUpdate(ChatRole.Assistant, update.Text) { ModelId = ModelId, ResponseId = responseId };
        }
        var result = await job.Result.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        if (parser is not null)
            foreach (var e in parser.Finish())
                if (Convert(e) is { } converted) yield return converted;
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(result))])
        {
            ModelId = ModelId,
            ResponseId = responseId,
            FinishReason = calls > 0 && result.Finish == FinishReason.Stop ? ChatFinishReason.ToolCalls : Finish(result.Finish),
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

    private (CompletionJob Job, ToolOptions? Tools) Submit(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var conversation = new List<TemplateMessage>();
        if (options?.Instructions is { Length: > 0 } instructions)
            conversation.Add(new TemplateMessage("system", instructions));
        var callNames = new Dictionary<string, string>();
        foreach (var m in messages)
        {
            var calls = m.Contents.OfType<FunctionCallContent>().ToList();
            var results = m.Contents.OfType<FunctionResultContent>().ToList();
            foreach (var call in calls) callNames[call.CallId] = call.Name;
            if (calls.Count > 0)
                conversation.Add(new TemplateMessage("assistant", m.Text)
                {
                    ToolCalls = calls.Select(c => new TemplateToolCall(c.Name, JsonSerializer.SerializeToNode(c.Arguments ?? new Dictionary<string, object?>(), ArgumentsJson), c.CallId)).ToList(),
                });
            else if (results.Count > 0)
                foreach (var r in results)
                    conversation.Add(new TemplateMessage("tool", ResultText(r.Result))
                    {
                        ToolCallId = r.CallId,
                        Name = callNames.GetValueOrDefault(r.CallId),
                    });
            else
                conversation.Add(new TemplateMessage(m.Role.Value, m.Text));
        }

        var sampler = new SamplerOptions();
        if (options?.Temperature is { } t) sampler = sampler with { Temperature = t };
        if (options?.TopP is { } p) sampler = sampler with { TopP = p };
        if (options?.TopK is { } k) sampler = sampler with { TopK = k };
        if (options?.Seed is { } seed) sampler = sampler with { Seed = unchecked((ulong)seed) };
        if (options?.FrequencyPenalty is { } frequency && frequency != 0)
            throw new ArgumentException($"ChatOptions.FrequencyPenalty is {frequency}; ClockLM supports none (0)", nameof(options));
        if (options?.PresencePenalty is { } presence && presence != 0)
            throw new ArgumentException($"ChatOptions.PresencePenalty is {presence}; ClockLM supports none (0)", nameof(options));

        var tools = Tools(options);
        var offered = tools is { Mode: not ToolChoiceMode.None } ? tools : null;
        var request = new CompletionRequest
        {
            PromptIds = _prompt.Encode(conversation, offered?.Tools),
            MaxTokens = options?.MaxOutputTokens,
            Sampler = sampler,
            Stop = [.. _prompt.TemplateStops, .. options?.StopSequences ?? []],
            Grammar = Constraint(options?.ResponseFormat, offered),
        };
        return (_scheduler.Submit(request, cancellation), offered);
    }

    /// <summary>The functions offered (declarations with a JSON schema) and the tool mode; null without tools.</summary>
    private static ToolOptions? Tools(ChatOptions? options)
    {
        if (options?.Tools is not { Count: > 0 } list) return null;
        var tools = new List<ToolDefinition>();
        foreach (var tool in list)
        {
            if (tool is not AIFunctionDeclaration function)
                throw new ArgumentException($"ChatOptions.Tools holds '{tool.Name}' ({tool.GetType().Name}); ClockLM calls functions only", nameof(options));
            tools.Add(new ToolDefinition(function.Name, function.Description, function.JsonSchema.ValueKind == JsonValueKind.Object ? function.JsonSchema : null));
        }
        var result = new ToolOptions(tools, Parallel: options.AllowMultipleToolCalls ?? true);
        return options.ToolMode switch
        {
            null or AutoChatToolMode => result,
            NoneChatToolMode => result with { Mode = ToolChoiceMode.None },
            RequiredChatToolMode { RequiredFunctionName: null } => result with { Mode = ToolChoiceMode.Required },
            RequiredChatToolMode required when tools.Any(t => t.Name == required.RequiredFunctionName) =>
                result with { Mode = ToolChoiceMode.Named, FunctionName = required.RequiredFunctionName },
            RequiredChatToolMode required => throw new ArgumentException($"ChatOptions.ToolMode requires '{required.RequiredFunctionName}', which is not among the tools", nameof(options)),
            var other => throw new ArgumentException($"ChatOptions.ToolMode {other.GetType().Name} is not supported", nameof(options)),
        };
    }

    /// <summary>The grammar for a JSON response format, or for a call the tool mode forces; null for free text.</summary>
    private Grammar? Constraint(ChatResponseFormat? format, ToolOptions? tools)
    {
        string? gbnf = format switch
        {
            null or ChatResponseFormatText => null,
            ChatResponseFormatJson { Schema: { } schema } => JsonSchemaGrammar.ToGbnf(schema),
            ChatResponseFormatJson => JsonGrammar.AnyObjectGbnf,
            _ => throw new ArgumentException($"ChatOptions.ResponseFormat {format.GetType().Name} is not supported", "options"),
        };
        if (tools is { Mode: ToolChoiceMode.Required or ToolChoiceMode.Named })
        {
            if (gbnf is not null) throw new ArgumentException("ChatOptions.ResponseFormat cannot be combined with a ToolMode that requires a call", "options");
            gbnf = _prompt.ToolFormat.Gbnf(tools.Callable, tools.Parallel);
        }
        else if (tools is { Mode: ToolChoiceMode.Auto } && gbnf is not null)
            throw new ArgumentException("ChatOptions.ResponseFormat together with tools is supported only with ToolMode None", "options");
        return gbnf is null ? null : GrammarCache.Get(gbnf);
    }

    private static IReadOnlyList<ParsedToolCall> Kept(ToolCallParser? parser, ToolOptions? tools) =>
        parser is null || tools is null ? [] : tools.Parallel ? parser.Calls : parser.Calls.Take(1).ToList();

    private static IEnumerable<AIContent> Text(string text) => text.Length == 0 ? [] : [new TextContent(text)];

    /// <summary>How function-call arguments are written, with Microsoft.Extensions.AI's own (source-generated) contracts.</summary>
    private static readonly System.Text.Json.Serialization.Metadata.JsonTypeInfo<IDictionary<string, object?>> ArgumentsJson =
        (System.Text.Json.Serialization.Metadata.JsonTypeInfo<IDictionary<string, object?>>)AIJsonUtilities.DefaultOptions.GetTypeInfo(typeof(IDictionary<string, object?>));

    private static FunctionCallContent FunctionCall(ParsedToolCall call)
    {
        Dictionary<string, object?>? arguments;
        try
        {
            arguments = (Dictionary<string, object?>?)JsonSerializer.Deserialize(call.Arguments, AIJsonUtilities.DefaultOptions.GetTypeInfo(typeof(Dictionary<string, object?>)));
        }
        catch (JsonException e)
        {
            return new FunctionCallContent(call.Id, call.Name) { Exception = e };
        }
        return new FunctionCallContent(call.Id, call.Name, arguments);
    }

    /// <summary>A function's result as the text a tool message carries: strings as they are, anything else as JSON.</summary>
    private static string ResultText(object? result) => result switch
    {
        null => "",
        string text => text,
        JsonElement element => element.ValueKind == JsonValueKind.String ? element.GetString()! : element.GetRawText(),
        _ => JsonSerializer.Serialize(result, AIJsonUtilities.DefaultOptions.GetTypeInfo(result.GetType())),
    };

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
