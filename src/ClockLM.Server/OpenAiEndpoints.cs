using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Chat.Tools;
using ClockLM.Sampling;
using Microsoft.AspNetCore.Http;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Server;

/// <summary>The request handlers of one model: OpenAI's request fields in, OpenAI's response shapes out.
/// <paramref name="answers"/> tells the names (and aliases) that mean this model; <paramref name="steering"/> reads a
/// request's <c>clocklm.steer</c>.</summary>
internal sealed class OpenAiEndpoints(SlotScheduler scheduler, string modelId, Func<string, bool> answers, SteeringRequest steering)
{
    private readonly ChatPrompt _chatPrompt = new(scheduler.Model);

    private enum Kind { Chat, Text }

    public async Task ChatCompletionsAsync(HttpContext context)
    {
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        RequestFields.Chat.Check(body);
        CheckModel(body);
        var structured = StructuredRequest.Read(body, chat: true, _chatPrompt.ToolFormat);
        var tools = structured.Tools is { Mode: not ToolChoiceMode.None } offered ? offered : null;
        var messages = ReadMessages(body);
        int[] prompt = _chatPrompt.Encode(messages, tools?.Tools);
        // OpenAI's chat logprobs: a bool, and top_logprobs beside it.
        bool logprobs = body.Bool("logprobs") ?? false;
        int top = (int)(body.Integer("top_logprobs", 0, CompletionRequest.MaxTopLogprobs) ?? 0);
        if (top > 0 && !logprobs) throw ApiException.BadRequest("top_logprobs needs logprobs set to true", "top_logprobs");
        var request = ReadCompletion(body, prompt, logprobs, top) with
        {
            Stop = [.. _chatPrompt.TemplateStops, .. body.Stops("stop")],
            Grammar = structured.Grammar,
        };
        // A context shift keeps the system prompt unless n_keep says otherwise.
        if (request.KeepTokens is null) request = request with { KeepTokens = _chatPrompt.SystemPromptTokens(messages, prompt) };
        await RunAsync(context, body, request, Kind.Chat, tools);
    }

    public async Task CompletionsAsync(HttpContext context)
    {
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        RequestFields.Completions.Check(body);
        CheckModel(body);
        var structured = StructuredRequest.Read(body, chat: false, _chatPrompt.ToolFormat);
        int[] prompt = ReadPrompt(body);
        // The legacy completions API: logprobs is the number of alternatives (0 to 5).
        int? logprobs = (int?)body.Integer("logprobs", 0, 5);
        var request = ReadCompletion(body, prompt, logprobs is not null, logprobs ?? 0) with { Stop = body.Stops("stop"), Grammar = structured.Grammar };
        await RunAsync(context, body, request, Kind.Text, tools: null);
    }

    public async Task EmbeddingsAsync(HttpContext context)
    {
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        RequestFields.Embeddings.Check(body);
        CheckModel(body);
        string format = body.String("encoding_format") ?? "float";
        if (format is not ("float" or "base64"))
            throw ApiException.BadRequest($"encoding_format is '{format}'; expected 'float' or 'base64'", "encoding_format");
        if (body.Get("dimensions") is not null)
            throw ApiException.BadRequest($"dimensions is not supported: embeddings have the model's width, {scheduler.Model.Config.Dim}", "dimensions");
        var inputs = ReadInputs(body, "input");
        // An empty string would be embedded as its BOS alone; OpenAI refuses it.
        var raw = body.Get("input")!.Value;
        bool[] emptyText = raw.ValueKind == JsonValueKind.String
            ? [raw.GetString()!.Length == 0]
            : raw.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String && e.GetString()!.Length == 0).ToArray();
        if (emptyText.Length != inputs.Count) emptyText = new bool[inputs.Count]; // an array of token ids is one input
        var data = new JsonArray();
        int tokens = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            int[] ids = inputs[i];
            if (ids.Length == 0 || emptyText[i]) throw ApiException.BadRequest($"input {i} is empty; expected text or token ids to embed", "input");
            if (ids.Length > scheduler.ContextLength)
                throw ApiException.BadRequest($"input {i} is {ids.Length} tokens but the context holds {scheduler.ContextLength}", "input", "context_length_exceeded");
            // A slot of the scheduler reads the input a chunk per round, beside the generations: the queue limit holds,
            // and a client that goes away frees the slot within one chunk.
            var job = scheduler.Submit(new CompletionRequest { PromptIds = ids, Embed = true }, context.RequestAborted);
            var result = await job.Result;
            context.RequestAborted.ThrowIfCancellationRequested();
            float[] vector = result.Embedding!;
            tokens += ids.Length;
            JsonNode embedding = format == "base64"
                ? Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan()))
                : new JsonArray(vector.Select(v => (JsonNode)JsonValue.Create(v)).ToArray());
            data.Add((JsonNode)new JsonObject { ["object"] = "embedding", ["index"] = i, ["embedding"] = embedding });
        }
        await context.Response.WriteJsonAsync(new JsonObject
        {
            ["object"] = "list",
            ["data"] = data,
            ["model"] = modelId,
            ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
        }, context.RequestAborted);
    }

    /// <summary>/tokenize and /detokenize on this model's vocabulary.</summary>
    public TokenizerEndpoints Tokens { get; } = new(scheduler.Model.Tokenizer);

    private bool IsThisModel(string? id) => string.IsNullOrEmpty(id) || answers(id);

    private void CheckModel(JsonRequest body)
    {
        string? model = body.String("model");
        if (!IsThisModel(model)) throw ModelNotFound(model!);
    }

    private ApiException ModelNotFound(string id) =>
        new(404, $"the model '{id}' does not exist; this server runs '{modelId}'", "invalid_request_error", "model", "model_not_found");

    private static List<TemplateMessage> ReadMessages(JsonRequest body)
    {
        if (body.Get("messages") is not { } list) throw ApiException.BadRequest("messages is required: an array of {role, content}", "messages");
        if (list.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType("messages", "an array", list);
        var messages = new List<TemplateMessage>();
        int i = 0;
        foreach (var item in list.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType(at, "an object", item);
            var m = new JsonRequest(item);
            RequestFields.Message.Check(m, at + ".");
            string role = m.String("role") ?? throw ApiException.BadRequest($"{at}.role is required", $"{at}.role");
            if (role is not ("system" or "developer" or "user" or "assistant" or "tool"))
                throw ApiException.BadRequest($"{at}.role is '{role}'; expected system, developer, user, assistant or tool", $"{at}.role");
            messages.Add(new TemplateMessage(role == "developer" ? "system" : role, ReadContent(m, at))
            {
                Name = m.String("name"),
                ToolCallId = m.String("tool_call_id"),
                ToolCalls = StructuredRequest.ReadToolCalls(m, at),
                ReasoningContent = m.String("reasoning_content"),
            });
        }
        if (messages.Count == 0) throw ApiException.BadRequest("messages is empty; expected at least one message", "messages");
        return messages;
    }

    /// <summary>Content as a string, or an array of parts of which the text ones are joined.</summary>
    private static string ReadContent(JsonRequest m, string at)
    {
        if (m.Get("content") is not { } content) return "";
        if (content.ValueKind == JsonValueKind.String) return JsonRequest.Text(content, $"{at}.content");
        if (content.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType($"{at}.content", "a string or an array of parts", content);
        var text = new StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType($"{at}.content", "an array of parts", part);
            var p = new JsonRequest(part);
            string type = p.String("type") ?? "text";
            if (type != "text") throw ApiException.BadRequest($"{at}.content has a part of type '{type}'; this model reads text only", $"{at}.content");
            text.Append(p.String("text"));
        }
        return text.ToString();
    }

    private int[] ReadPrompt(JsonRequest body)
    {
        var inputs = ReadInputs(body, "prompt");
        if (inputs.Count != 1) throw ApiException.BadRequest($"prompt holds {inputs.Count} prompts; this server completes one prompt per request", "prompt");
        return inputs[0];
    }

    /// <summary>A string, an array of strings, an array of token ids, or an array of such arrays.</summary>
    private List<int[]> ReadInputs(JsonRequest body, string name)
    {
        if (body.Get(name) is not { } v) throw ApiException.BadRequest($"{name} is required", name);
        var tokenizer = scheduler.Model.Tokenizer;
        int[] Encode(string text) => tokenizer.Encode(text, addSpecial: true).ToArray();
        if (v.ValueKind == JsonValueKind.String) return [Encode(JsonRequest.Text(v, name))];
        if (v.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType(name, "a string or an array", v);
        if (v.GetArrayLength() == 0) throw ApiException.BadRequest($"{name} is an empty array; expected at least one input", name);
        if (v[0].ValueKind == JsonValueKind.Number) return [ReadIds(v, name)];
        var inputs = new List<int[]>();
        foreach (var item in v.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String) inputs.Add(Encode(JsonRequest.Text(item, name)));
            else if (item.ValueKind == JsonValueKind.Array) inputs.Add(ReadIds(item, name));
            else throw JsonRequest.WrongType(name, "an array of strings or of token arrays", item);
        }
        if (inputs.Count > 256) throw ApiException.BadRequest($"{name} holds {inputs.Count} inputs; at most 256 are accepted", name);
        return inputs;
    }

    private int[] ReadIds(JsonElement array, string name) => JsonRequest.TokenIds(array, name, scheduler.Model.Config.VocabSize);

    /// <summary>The fields chat and text completions share.</summary>
    private static CompletionRequest ReadCompletion(JsonRequest body, int[] prompt, bool logprobs, int topLogprobs)
    {
        if (body.Integer("n", 1, 1) is null && body.Get("n") is not null) throw ApiException.BadRequest("n must be 1", "n");
        var defaults = new SamplerOptions();
        var sampler = new SamplerOptions
        {
            Temperature = (float)(body.Number("temperature", 0, 2) ?? defaults.Temperature),
            TopP = (float)(body.Number("top_p", 1e-6, 1) ?? defaults.TopP),
            TopK = (int)(body.Integer("top_k", 0, int.MaxValue) ?? defaults.TopK),
            MinP = (float)(body.Number("min_p", 0, 1) ?? defaults.MinP),
            RepeatPenalty = (float)(body.Number("repeat_penalty", 1e-3, 100) ?? defaults.RepeatPenalty),
            Seed = body.Integer("seed", long.MinValue, long.MaxValue) is { } seed ? unchecked((ulong)seed) : defaults.Seed,
        };
        long? maxTokens = body.Integer("max_completion_tokens", 1, int.MaxValue) ?? body.Integer("max_tokens", 1, int.MaxValue);
        _ = body.String("user"); // OpenAI's end-user id: a balancer's routing key (docs/deploy.md); answers do not depend on it
        var extension = body.Object("clocklm");
        if (extension is not null) RequestFields.Extension.Check(extension, "clocklm.");
        return new CompletionRequest
        {
            PromptIds = prompt,
            MaxTokens = (int?)maxTokens,
            Sampler = sampler,
            Logprobs = logprobs,
            TopLogprobs = topLogprobs,
            ClockSummary = extension?.Bool("clock_summary") ?? false,
            ClockSummaryTopK = (int)(extension?.Integer("top_k", 1, 100) ?? 10),
            IgnoreEndOfGeneration = extension?.Bool("ignore_eos") ?? false,
            CachePrompt = body.Bool("cache_prompt") ?? true,
            KeepTokens = (int?)body.Integer("n_keep", -1, int.MaxValue),
            Lora = LoraEndpoints.Read(body),
        };
    }

    private async Task RunAsync(HttpContext context, JsonRequest body, CompletionRequest request, Kind kind, ToolOptions? tools)
    {
        request = request with { Steering = steering.Read(body) };
        bool stream = body.Bool("stream") ?? false;
        var streamOptions = body.Object("stream_options");
        if (streamOptions is not null) RequestFields.StreamOptions.Check(streamOptions, "stream_options.");
        bool includeUsage = streamOptions?.Bool("include_usage") ?? false;
        if (request.MaxTokens is null && body.Get("max_tokens") is null && body.Get("max_completion_tokens") is null)
            request = request with { MaxTokens = null };
        // Submit before any byte is written, so a full queue or a bad length is still a plain error answer.
        CompletionJob job;
        try
        {
            job = scheduler.Submit(request, context.RequestAborted);
        }
        catch (CompletionRequestException e) when (kind == Kind.Chat && e.Parameter == "prompt")
        {
            throw new CompletionRequestException("messages", e.Message); // a chat request's prompt is its messages
        }
        string id = (kind == Kind.Chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var parser = tools is null ? null : new ToolCallParser(_chatPrompt.ToolFormat);
        if (stream) await StreamAsync(context, job, kind, id, created, includeUsage, parser, tools);
        else await AnswerAsync(context, job, kind, id, created, parser, tools);
    }

    private async Task AnswerAsync(HttpContext context, CompletionJob job, Kind kind, string id, long created, ToolCallParser? parser, ToolOptions? tools)
    {
        var logprobs = new List<TokenLogprob>();
        await foreach (var update in job.Updates.ReadAllAsync(CancellationToken.None))
        {
            if (update.Logprob is { } lp) logprobs.Add(lp);
            parser?.Append(update, scheduler.Model.Tokenizer);
        }
        var result = await job.Result;
        context.RequestAborted.ThrowIfCancellationRequested();
        parser?.Finish();
        var choice = new JsonObject { ["index"] = 0 };
        var calls = ToolCallJson.Kept(parser, tools);
        if (kind == Kind.Chat) choice["message"] = calls.Count == 0
            ? new JsonObject { ["role"] = "assistant", ["content"] = result.Text }
            : ToolCallJson.Message(parser!.Content, calls);
        else choice["text"] = result.Text;
        choice["logprobs"] = job.Request.Logprobs ? LogprobsJson(kind, logprobs) : null;
        choice["finish_reason"] = calls.Count > 0 && result.Finish == FinishReason.Stop ? "tool_calls" : FinishName(result.Finish);
        var answer = new JsonObject
        {
            ["id"] = id,
            ["object"] = kind == Kind.Chat ? "chat.completion" : "text_completion",
            ["created"] = created,
            ["model"] = modelId,
            ["choices"] = new JsonArray(choice),
            ["usage"] = UsageJson(result),
        };
        if (result.Clock is { } clock) answer["clocklm"] = ClockJson(clock);
        await context.Response.WriteJsonAsync(answer, context.RequestAborted);
    }

    private async Task StreamAsync(HttpContext context, CompletionJob job, Kind kind, string id, long created, bool includeUsage,
        ToolCallParser? parser, ToolOptions? tools)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var cancel = context.RequestAborted;
        JsonObject Chunk(JsonObject? choice) => new()
        {
            ["id"] = id,
            ["object"] = kind == Kind.Chat ? "chat.completion.chunk" : "text_completion",
            ["created"] = created,
            ["model"] = modelId,
            ["choices"] = choice is null ? new JsonArray() : new JsonArray(choice),
        };
        JsonObject Choice(string? text, List<TokenLogprob>? logprobs, string? finish)
        {
            var choice = new JsonObject { ["index"] = 0 };
            if (kind == Kind.Chat)
            {
                var delta = new JsonObject();
                if (text is not null) delta["content"] = text;
                choice["delta"] = delta;
            }
            else choice["text"] = text ?? "";
            choice["logprobs"] = logprobs is { Count: > 0 } ? LogprobsJson(kind, logprobs) : null;
            choice["finish_reason"] = finish;
            return choice;
        }

        if (kind == Kind.Chat)
        {
            var first = Choice("", null, null);
            first["delta"]!["role"] = "assistant";
            await SendAsync(response, Chunk(first), cancel);
        }
        var pending = new List<TokenLogprob>();
        int callsSent = 0;
        async Task SendEventsAsync(List<ToolStreamEvent> events)
        {
            foreach (var e in events)
            {
                if (e is ContentEvent content)
                {
                    await SendAsync(response, Chunk(Choice(content.Text, pending, null)), cancel);
                    pending = [];
                }
                else if (e is ToolCallEvent call && (tools!.Parallel || call.Index == 0))
                {
                    // As OpenAI streams a call: its id, type and name with empty arguments, then the arguments.
                    foreach (var delta in ToolCallJson.Deltas(call.Index, call.Call))
                    {
                        var choice = Choice(null, pending, null);
                        choice["delta"] = delta;
                        await SendAsync(response, Chunk(choice), cancel);
                        pending = [];
                    }
                    callsSent++;
                }
            }
        }
        CompletionResult result;
        try
        {
            await foreach (var update in job.Updates.ReadAllAsync(CancellationToken.None))
            {
                if (update.Logprob is { } lp) pending.Add(lp);
                if (parser is not null)
                {
                    await SendEventsAsync(parser.Append(update, scheduler.Model.Tokenizer));
                    continue;
                }
                if (update.Text.Length == 0) continue;
                await SendAsync(response, Chunk(Choice(update.Text, pending, null)), cancel);
                pending = [];
            }
            result = await job.Result;
        }
        catch (NonFiniteOutputException e)
        {
            // The headers are sent: the error goes in the stream, as OpenAI streams errors, and the stream ends.
            await SendAsync(response, new ApiException(500, e.Message, "server_error", code: "non_finite_output").ToJson(), cancel);
            return;
        }
        cancel.ThrowIfCancellationRequested();
        if (parser is not null) await SendEventsAsync(parser.Finish());
        string? finish = callsSent > 0 && result.Finish == FinishReason.Stop ? "tool_calls" : FinishName(result.Finish);
        var last = Chunk(Choice(kind == Kind.Chat ? null : "", pending, finish));
        if (result.Clock is { } clock) last["clocklm"] = ClockJson(clock);
        await SendAsync(response, last, cancel);
        if (includeUsage)
        {
            var usage = Chunk(null);
            usage["usage"] = UsageJson(result);
            await SendAsync(response, usage, cancel);
        }
        await response.WriteAsync("data: [DONE]\n\n", cancel);
        await response.Body.FlushAsync(cancel);
    }

    private static async Task SendAsync(HttpResponse response, JsonObject chunk, CancellationToken cancel)
    {
        await response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n", cancel);
        await response.Body.FlushAsync(cancel);
    }

    private static string? FinishName(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        _ => null,
    };

    private static JsonObject UsageJson(CompletionResult r) => new()
    {
        ["prompt_tokens"] = r.PromptTokens,
        ["completion_tokens"] = r.CompletionTokens,
        ["total_tokens"] = r.PromptTokens + r.CompletionTokens,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = r.CachedTokens },
    };

    private static JsonNode LogprobsJson(Kind kind, List<TokenLogprob> tokens)
    {
        if (kind == Kind.Chat)
        {
            static JsonObject Entry(TokenLogprob t) => new()
            {
                ["token"] = t.Text,
                ["logprob"] = t.Logprob,
                ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(t.Text).Select(b => (JsonNode)JsonValue.Create((int)b)).ToArray()),
            };
            var content = new JsonArray();
            foreach (var t in tokens)
            {
                var entry = Entry(t);
                entry["top_logprobs"] = new JsonArray(t.Top.Select(a => (JsonNode)Entry(a)).ToArray());
                content.Add((JsonNode)entry);
            }
            return new JsonObject { ["content"] = content };
        }
        // Legacy completions: parallel arrays, and a {token: logprob} map per position.
        return new JsonObject
        {
            ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)JsonValue.Create(t.Text)).ToArray()),
            ["token_logprobs"] = new JsonArray(tokens.Select(t => (JsonNode)JsonValue.Create(t.Logprob)).ToArray()),
            ["top_logprobs"] = new JsonArray(tokens.Select(t =>
            {
                var map = new JsonObject();
                foreach (var a in t.Top) map[a.Text] = a.Logprob;
                return (JsonNode)map;
            }).ToArray()),
        };
    }

    private static JsonObject ClockJson(ClockSummary clock) => new()
    {
        ["layers"] = clock.Layers,
        ["prompt_ms"] = clock.PromptTime.TotalMilliseconds,
        ["decode_ms"] = clock.DecodeTime.TotalMilliseconds,
        ["cycle_us"] = clock.TimePerCycle.TotalMicroseconds,
        ["per_cycle"] = new JsonArray(clock.Cycles.Select(c => (JsonNode)new JsonObject
        {
            ["layer"] = c.Layer,
            ["us_per_token"] = c.PerToken.TotalMicroseconds,
            ["stages_us"] = new JsonObject(c.Stages.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value.TotalMicroseconds))),
            ["logit_lens"] = new JsonArray(c.Lens.Select(t => (JsonNode)new JsonObject
            {
                ["id"] = t.Id,
                ["token"] = t.Text,
                ["prob"] = MathF.Exp(t.Logprob),
            }).ToArray()),
        }).ToArray()),
        ["final_top_k"] = new JsonArray(clock.FinalTopK.Select(t => (JsonNode)new JsonObject
        {
            ["id"] = t.Id,
            ["token"] = t.Text,
            ["logprob"] = t.Logprob,
            ["prob"] = MathF.Exp(t.Logprob),
        }).ToArray()),
    };
}
