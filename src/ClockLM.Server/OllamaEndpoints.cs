using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Chat;
using ClockLM.Chat.Tools;
using ClockLM.Models;
using ClockLM.Sampling;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Server;

/// <summary>
/// Ollama's API over a <see cref="ModelRegistry"/>, for the clients that speak it (OllamaSharp, Open WebUI, Continue,
/// LangChain's Ollama classes): chat and generate (NDJSON streams by default, one object with <c>stream: false</c>),
/// embed, tags, show, ps and version, with Ollama's field names and units (durations in nanoseconds), and tool calls
/// on chat (<c>tools</c> in, <c>message.tool_calls</c> out, through the same parser as the OpenAI endpoint). Errors are
/// <c>{"error": "..."}</c>. A field of Ollama's API that ClockLM cannot honour (images, suffix, a field of a tool, an
/// option such as mirostat) is a 400 naming it. Fields outside Ollama's API are ignored, as Ollama ignores them:
/// clients send their own (OllamaSharp 5.5 sends <c>CustomHeaders</c> in every body).
/// </summary>
internal sealed class OllamaEndpoints(ModelRegistry registry)
{
    /// <summary>The paths served, for the request metrics.</summary>
    public static readonly HashSet<string> Paths =
        ["/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/api/tags", "/api/show", "/api/ps", "/api/version"];

    /// <summary>True for requests to Ollama's API, whose errors take Ollama's shape.</summary>
    public static bool Serves(HttpContext context) => context.Request.Path.StartsWithSegments("/api");

    /// <summary>The sampling options ClockLM reads from <c>options</c>; any other option is a 400.</summary>
    private static readonly string[] KnownOptions =
        ["temperature", "top_k", "top_p", "min_p", "num_predict", "seed", "stop", "repeat_penalty", "repeat_last_n", "num_ctx", "num_keep"];

    /// <summary>Maps Ollama's routes, each added to <paramref name="routes"/> (method, path) so that a wrong method is
    /// answered 405 with the right ones.</summary>
    public void Map(WebApplication app, List<(string Method, string Path)> routes)
    {
        void Post(string path, RequestDelegate handler)
        {
            app.MapPost(path, handler);
            routes.Add(("POST", path));
        }
        void Get(string path, RequestDelegate handler)
        {
            app.MapMethods(path, ["GET", "HEAD"], handler);
            routes.Add(("GET", path));
            routes.Add(("HEAD", path));
        }
        Post("/api/chat", ChatAsync);
        Post("/api/generate", GenerateAsync);
        Post("/api/embed", EmbedAsync);
        Post("/api/embeddings", EmbeddingsAsync);
        Get("/api/tags", TagsAsync);
        Post("/api/show", ShowAsync);
        Get("/api/ps", RunningAsync);
        Get("/api/version", context => WriteAsync(context, new JsonObject { ["version"] = Version }));
        // Clients check that the server is up with GET / (and HEAD /), as Ollama answers it.
        Get("/", context => context.Response.WriteAsync("ClockLM is running (Ollama-compatible API under /api)"));
    }

    /// <summary>ClockLM's version (three parts), answered as Ollama's.</summary>
    private static string Version => typeof(OllamaEndpoints).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "0.0.0";

    // ---- POST /api/chat ----

    private async Task ChatAsync(HttpContext context)
    {
        long start = Stopwatch.GetTimestamp();
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        var entry = registry.Find(RequiredModel(body));
        var keepAlive = ReadKeepAlive(body);
        if (body.String("template") is { Length: > 0 }) throw ApiException.BadRequest("template is not supported: the model's own chat template is used", "template");
        RejectThinking(body);
        // As in Ollama, format constrains the sampling and the tools' parser reads what comes out.
        var tools = StructuredRequest.OllamaTools(body);
        var format = StructuredRequest.OllamaFormat(body);
        var messages = ReadMessages(body);
        if (messages.Count == 0)
        {
            await LoadOrUnloadAsync(context, entry, keepAlive, start, generate: false);
            return;
        }
        using var lease = await AcquireAsync(entry, keepAlive, context);
        var model = lease.Model;
        int[] prompt = model.Prompt.Encode(messages, tools?.Tools);
        var request = ReadOptions(body, prompt, model) with { Grammar = format };
        // A context shift keeps the system prompt unless num_keep says otherwise.
        if (request.KeepTokens is null) request = request with { KeepTokens = model.Prompt.SystemPromptTokens(messages, prompt) };
        request = request with { Stop = [.. model.Prompt.TemplateStops, .. request.Stop] };
        await RunAsync(context, body, entry.Name, lease, request, start, chat: true, tools);
    }

    // ---- POST /api/generate ----

    private async Task GenerateAsync(HttpContext context)
    {
        long start = Stopwatch.GetTimestamp();
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        var entry = registry.Find(RequiredModel(body));
        var keepAlive = ReadKeepAlive(body);
        if (body.String("suffix") is { Length: > 0 }) throw ApiException.BadRequest("suffix is not supported: ClockLM does not fill in the middle", "suffix");
        if (body.String("template") is { Length: > 0 }) throw ApiException.BadRequest("template is not supported: the model's own chat template is used (or raw: true for none)", "template");
        if (body.Get("images") is { ValueKind: JsonValueKind.Array } images && images.GetArrayLength() > 0)
            throw ApiException.BadRequest("images is not supported: ClockLM's models read text only", "images");
        if (body.Bool("logprobs") == true || body.Integer("top_logprobs", 0, int.MaxValue) > 0)
            throw ApiException.BadRequest("logprobs is not supported on /api/generate; /v1/completions reports them", "logprobs");
        foreach (string image in new[] { "width", "height", "steps" })
            if (body.Get(image) is not null) throw ApiException.BadRequest($"{image} is not supported: ClockLM does not generate images", image);
        RejectThinking(body);
        var format = StructuredRequest.OllamaFormat(body);
        string text = body.String("prompt") ?? "";
        string? system = body.String("system");
        bool raw = body.Bool("raw") ?? false;
        int[] context0 = body.Get("context") is { } c ? ReadIds(c, "context") : [];
        if (text.Length == 0 && context0.Length == 0)
        {
            await LoadOrUnloadAsync(context, entry, keepAlive, start, generate: true);
            return;
        }
        using var lease = await AcquireAsync(entry, keepAlive, context);
        var model = lease.Model;
        var tokenizer = model.Model.Tokenizer;
        foreach (int id in context0)
            if ((uint)id >= (uint)model.Model.Config.VocabSize)
                throw ApiException.BadRequest($"context holds token id {id}; expected 0 to {model.Model.Config.VocabSize - 1}", "context");
        int[] added;
        if (raw)
        {
            if (system is { Length: > 0 }) throw ApiException.BadRequest("system needs the chat template; with raw: true write it into the prompt", "system");
            added = tokenizer.Encode(text, addSpecial: context0.Length == 0).ToArray();
        }
        else
        {
            var messages = new List<TemplateMessage>();
            if (system is { Length: > 0 }) messages.Add(new TemplateMessage("system", system));
            messages.Add(new TemplateMessage("user", text));
            added = model.Prompt.Encode(messages);
            // A continued conversation already starts with BOS.
            if (context0.Length > 0 && added.Length > 0 && added[0] == tokenizer.BosId) added = added[1..];
        }
        int[] prompt = [.. context0, .. added];
        var request = ReadOptions(body, prompt, model) with { Grammar = format };
        if (!raw) request = request with { Stop = [.. model.Prompt.TemplateStops, .. request.Stop] };
        await RunAsync(context, body, entry.Name, lease, request, start, chat: false, tools: null);
    }

    /// <summary>
    /// Runs the generation and answers it: NDJSON lines as tokens come (the default), or one object. With
    /// <paramref name="tools"/>, the output goes through the tool-call parser: text is answered as it is decided, and
    /// each call whole, in a line of its own whose <c>message.tool_calls</c> holds it (as Ollama streams calls).
    /// </summary>
    private static async Task RunAsync(HttpContext context, JsonRequest body, string name, ModelLease lease, CompletionRequest request, long start, bool chat,
        ToolOptions? tools)
    {
        bool stream = body.Bool("stream") ?? true;
        var model = lease.Model;
        var job = model.Scheduler.Submit(request, context.RequestAborted);
        var parser = tools is null ? null : new ToolCallParser(model.Prompt.ToolFormat);
        JsonObject Piece(string text, JsonArray? calls = null)
        {
            var piece = new JsonObject { ["model"] = name, ["created_at"] = Now() };
            if (chat)
            {
                var message = new JsonObject { ["role"] = "assistant", ["content"] = text };
                if (calls is { Count: > 0 }) message["tool_calls"] = calls;
                piece["message"] = message;
            }
            else piece["response"] = text;
            piece["done"] = false;
            return piece;
        }
        var response = context.Response;
        var cancel = context.RequestAborted;
        // What the parser has decided: text, and calls in Ollama's shape (one whose arguments are not an object is text).
        var content = new StringBuilder();
        var calls = new JsonArray();
        async Task TakeAsync(List<ToolStreamEvent> events)
        {
            foreach (var e in events)
            {
                string text;
                if (e is ToolCallEvent { Index: var index, Call: var parsed })
                {
                    if (ToolCallJson.Ollama(index, parsed) is { } shaped)
                    {
                        calls.Add((JsonNode)shaped);
                        if (stream) await WriteLineAsync(response, Piece("", new JsonArray(shaped.DeepClone())), cancel);
                        continue;
                    }
                    text = ToolCallJson.Text(parsed);
                }
                else text = ((ContentEvent)e).Text;
                content.Append(text);
                if (stream) await WriteLineAsync(response, Piece(text), cancel);
            }
        }
        if (stream) response.ContentType = "application/x-ndjson";
        await foreach (var update in job.Updates.ReadAllAsync(CancellationToken.None))
        {
            if (parser is not null) await TakeAsync(parser.Append(update, model.Model.Tokenizer));
            else if (update.Text.Length > 0)
            {
                content.Append(update.Text);
                if (stream) await WriteLineAsync(response, Piece(update.Text), cancel);
            }
        }
        var result = await job.Result;
        cancel.ThrowIfCancellationRequested();
        if (parser is not null) await TakeAsync(parser.Finish());
        // Beside calls, the text around them is trimmed (often only the blank between calls).
        var done = stream ? Piece("") : Piece(parser is null ? result.Text : calls.Count > 0 ? content.ToString().Trim() : content.ToString(), calls);
        done["done"] = true;
        done["done_reason"] = result.Finish == FinishReason.Length ? "length" : "stop";
        if (!chat) done["context"] = new JsonArray([.. request.PromptIds.Concat(result.GeneratedIds).Select(id => (JsonNode)id)]);
        done["total_duration"] = Nanoseconds(Stopwatch.GetElapsedTime(start));
        done["load_duration"] = Nanoseconds(lease.LoadDuration);
        done["prompt_eval_count"] = result.PromptTokens;
        done["prompt_eval_duration"] = Nanoseconds(result.PromptTime);
        done["eval_count"] = result.CompletionTokens;
        done["eval_duration"] = Nanoseconds(result.DecodeTime);
        if (stream) await WriteLineAsync(response, done, cancel);
        else await WriteAsync(context, done);
    }

    /// <summary>A chat or generate request with nothing to run: loads the model (done_reason "load"), or with
    /// <c>keep_alive: 0</c> unloads it ("unload"), as Ollama does.</summary>
    private async Task LoadOrUnloadAsync(HttpContext context, ModelEntry entry, TimeSpan? keepAlive, long start, bool generate)
    {
        string reason;
        if (keepAlive == TimeSpan.Zero)
        {
            registry.Unload(entry);
            reason = "unload";
        }
        else
        {
            using var lease = await AcquireAsync(entry, keepAlive, context);
            reason = "load";
        }
        var answer = new JsonObject { ["model"] = entry.Name, ["created_at"] = Now() };
        if (generate) answer["response"] = "";
        else answer["message"] = new JsonObject { ["role"] = "assistant", ["content"] = "" };
        answer["done"] = true;
        answer["done_reason"] = reason;
        answer["total_duration"] = Nanoseconds(Stopwatch.GetElapsedTime(start));
        await WriteAsync(context, answer);
    }

    // ---- POST /api/embed and the older /api/embeddings ----

    private async Task EmbedAsync(HttpContext context)
    {
        long start = Stopwatch.GetTimestamp();
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        var entry = registry.Find(RequiredModel(body));
        var keepAlive = ReadKeepAlive(body);
        CheckOptionsForEmbedding(body);
        var inputs = new List<string>();
        if (body.Get("input") is not { } input) throw ApiException.BadRequest("input is required: a string or an array of strings", "input");
        if (input.ValueKind == JsonValueKind.String) inputs.Add(input.GetString()!);
        else if (input.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in input.EnumerateArray())
                inputs.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : throw JsonRequest.WrongType("input", "an array of strings", item));
        }
        else throw JsonRequest.WrongType("input", "a string or an array of strings", input);
        bool truncate = body.Bool("truncate") ?? true;
        using var lease = await AcquireAsync(entry, keepAlive, context);
        if (body.Integer("dimensions", 1, int.MaxValue) is { } dimensions && dimensions != lease.Model.Model.Config.Dim)
            throw ApiException.BadRequest($"dimensions is {dimensions}; this model's embeddings have {lease.Model.Model.Config.Dim}", "dimensions");
        var embeddings = new JsonArray();
        int tokens = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            float[] vector = await EmbedOneAsync(lease.Model, inputs[i], truncate, $"input {i}", context.RequestAborted, n => tokens += n);
            embeddings.Add((JsonNode)new JsonArray([.. vector.Select(v => (JsonNode)v)]));
        }
        await WriteAsync(context, new JsonObject
        {
            ["model"] = entry.Name,
            ["embeddings"] = embeddings,
            ["total_duration"] = Nanoseconds(Stopwatch.GetElapsedTime(start)),
            ["load_duration"] = Nanoseconds(lease.LoadDuration),
            ["prompt_eval_count"] = tokens,
        });
    }

    private async Task EmbeddingsAsync(HttpContext context)
    {
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        var entry = registry.Find(RequiredModel(body));
        var keepAlive = ReadKeepAlive(body);
        CheckOptionsForEmbedding(body);
        string prompt = body.String("prompt") ?? throw ApiException.BadRequest("prompt is required: the text to embed", "prompt");
        using var lease = await AcquireAsync(entry, keepAlive, context);
        int tokens = 0;
        float[] vector = await EmbedOneAsync(lease.Model, prompt, truncate: false, "prompt", context.RequestAborted, n => tokens += n);
        await WriteAsync(context, new JsonObject { ["embedding"] = new JsonArray([.. vector.Select(v => (JsonNode)v)]) });
    }

    // A slot of the model's scheduler reads the text a chunk per round, beside the generations (as /v1/embeddings does).
    private static async Task<float[]> EmbedOneAsync(LoadedModel model, string text, bool truncate, string what, CancellationToken cancel, Action<int> count)
    {
        int[] ids = model.Model.Tokenizer.Encode(text, addSpecial: true).ToArray();
        if (ids.Length == 0) throw ApiException.BadRequest($"{what} is empty and the tokenizer adds no BOS: nothing to embed", "input");
        int room = model.Scheduler.ContextLength;
        if (ids.Length > room)
        {
            if (!truncate) throw ApiException.BadRequest($"{what} is {ids.Length} tokens but the context holds {room}; send truncate: true to cut it", "input");
            ids = ids[..room];
        }
        count(ids.Length);
        var result = await model.Scheduler.Submit(new CompletionRequest { PromptIds = ids, Embed = true }, cancel).Result;
        cancel.ThrowIfCancellationRequested();
        return result.Embedding!;
    }

    private static void CheckOptionsForEmbedding(JsonRequest body)
    {
        if (body.Object("options") is not { } options) return;
        CheckFields(options, "options.", ["num_ctx"]);
    }

    // ---- GET /api/tags, POST /api/show, GET /api/ps ----

    private Task TagsAsync(HttpContext context)
    {
        var models = new JsonArray();
        foreach (var entry in registry.Models)
        {
            var summary = registry.Summary(entry);
            models.Add((JsonNode)new JsonObject
            {
                ["name"] = entry.Name,
                ["model"] = entry.Name,
                ["modified_at"] = Time(summary.Modified),
                ["size"] = summary.FileBytes,
                ["digest"] = Digest(summary),
                ["details"] = Details(summary),
            });
        }
        return WriteAsync(context, new JsonObject { ["models"] = models });
    }

    private async Task ShowAsync(HttpContext context)
    {
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        var entry = registry.Find(body.String("model") ?? body.String("name") ?? throw ApiException.BadRequest("model is required", "model"));
        var summary = registry.Summary(entry);
        var c = summary.Config;
        string arch = summary.Architecture;
        var info = new JsonObject
        {
            ["general.architecture"] = arch,
            ["general.parameter_count"] = summary.Parameters,
            [$"{arch}.context_length"] = c.ContextLength,
            [$"{arch}.embedding_length"] = c.Dim,
            [$"{arch}.block_count"] = c.Layers,
            [$"{arch}.feed_forward_length"] = c.HiddenDim,
            [$"{arch}.attention.head_count"] = c.Heads,
            [$"{arch}.attention.head_count_kv"] = c.KvHeads,
            [$"{arch}.vocab_size"] = c.VocabSize,
        };
        string template = summary.ChatTemplate ?? Tokenizers.ChatTemplates.ChatTemplate.ChatMLSource;
        await WriteAsync(context, new JsonObject
        {
            ["modelfile"] = $"# ClockLM serves this model from its GGUF file\nFROM {summary.Path}\n",
            ["parameters"] = "",
            ["template"] = template,
            ["details"] = Details(summary),
            ["model_info"] = info,
            // Tools are offered to every model: through its template, or described in a system message.
            ["capabilities"] = new JsonArray("completion", "tools"),
            ["modified_at"] = Time(summary.Modified),
        });
    }

    private Task RunningAsync(HttpContext context)
    {
        var models = new JsonArray();
        foreach (var (loaded, expiresAt) in registry.Expiries)
        {
            var summary = loaded.Summary;
            // A model in use starts its keep-alive when its requests end: shown from now.
            var expires = expiresAt ?? (registry.KeepAlive < TimeSpan.Zero ? DateTime.MaxValue : DateTime.UtcNow + registry.KeepAlive);
            models.Add((JsonNode)new JsonObject
            {
                ["name"] = loaded.Entry.Name,
                ["model"] = loaded.Entry.Name,
                ["size"] = loaded.Bytes,
                ["digest"] = Digest(summary),
                ["details"] = Details(summary),
                ["expires_at"] = Time(expires),
                ["size_vram"] = 0,
                ["context_length"] = loaded.Scheduler.ContextLength,
            });
        }
        return WriteAsync(context, new JsonObject { ["models"] = models });
    }

    private static JsonObject Details(ModelSummary summary) => new()
    {
        ["parent_model"] = "",
        ["format"] = Path.GetExtension(summary.Path).Equals(".gguf", StringComparison.OrdinalIgnoreCase) ? "gguf" : "llama2.c",
        ["family"] = summary.Architecture,
        ["families"] = new JsonArray(summary.Architecture),
        ["parameter_size"] = summary.ParameterSize,
        ["quantization_level"] = summary.Type,
    };

    /// <summary>
    /// An identifier of the file's version: sha256 of its path, length and modification time (Ollama's is its manifest's
    /// hash). Hashing the bytes of a multi-GB file on every listing would take seconds; this changes whenever the file does.
    /// </summary>
    private static string Digest(ModelSummary summary) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        $"{summary.Path}\n{summary.FileBytes}\n{summary.Modified.Ticks}")));

    // ---- request fields ----

    private static string RequiredModel(JsonRequest body) =>
        body.String("model") is { Length: > 0 } model ? model : throw ApiException.BadRequest("model is required", "model");

    /// <summary>Every field of <paramref name="body"/> must be one of <paramref name="known"/> (for <c>options</c>, whose
    /// names Ollama defines: one ClockLM does not read is a 400, not silently dropped).</summary>
    private static void CheckFields(JsonRequest body, string prefix, string[] known)
    {
        foreach (var property in body.Root.EnumerateObject())
            if (!known.Contains(property.Name))
                throw ApiException.BadRequest($"{prefix}{property.Name} is not supported; the fields read here are {string.Join(", ", known.Select(k => prefix + k))}", prefix + property.Name);
    }

    private static void RejectThinking(JsonRequest body)
    {
        if (body.Get("think") is { } think && !(think.ValueKind == JsonValueKind.False))
            throw ApiException.BadRequest("think is not supported: ClockLM does not separate thinking from the answer", "think");
    }

    /// <summary>
    /// <c>keep_alive</c>: seconds as a number, or a duration such as <c>"5m"</c>, <c>"1h30m"</c>, <c>"300ms"</c>;
    /// zero unloads after the request, a negative value keeps the model loaded. Null when absent.
    /// </summary>
    private static TimeSpan? ReadKeepAlive(JsonRequest body)
    {
        if (body.Get("keep_alive") is not { } value) return null;
        if (value.ValueKind == JsonValueKind.Number)
        {
            double seconds = value.GetDouble();
            if (!double.IsFinite(seconds) || Math.Abs(seconds) > 1e9) throw ApiException.BadRequest($"keep_alive is {seconds}; expected seconds", "keep_alive");
            return seconds < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(seconds);
        }
        if (value.ValueKind != JsonValueKind.String) throw JsonRequest.WrongType("keep_alive", "a number of seconds or a duration such as \"5m\"", value);
        return ModelFolderOptions.ParseKeepAlive(value.GetString()!) ?? throw ApiException.BadRequest(
            $"keep_alive is '{value.GetString()}'; expected a number of seconds or a duration such as \"5m\", \"1h30m\", \"-1\"", "keep_alive");
    }

    /// <summary>Ollama's <c>options</c> as a completion request over <paramref name="prompt"/>.</summary>
    private static CompletionRequest ReadOptions(JsonRequest body, int[] prompt, LoadedModel model)
    {
        var defaults = new SamplerOptions();
        if (body.Object("options") is not { } options) return new CompletionRequest { PromptIds = prompt, Sampler = defaults };
        try
        {
            CheckFields(options, "options.", KnownOptions);
            if (options.Integer("num_ctx", 1, int.MaxValue) is { } numCtx && numCtx > model.Scheduler.ContextLength)
                throw ApiException.BadRequest($"num_ctx is {numCtx} but model '{model.Entry.Name}' runs with a context of {model.Scheduler.ContextLength}; start the server with a larger --ctx", "num_ctx");
            var sampler = new SamplerOptions
            {
                Temperature = (float)(options.Number("temperature", 0, 100) ?? defaults.Temperature),
                TopK = (int)(options.Integer("top_k", 0, int.MaxValue) ?? defaults.TopK),
                TopP = (float)(options.Number("top_p", 0, 1) ?? defaults.TopP),
                MinP = (float)(options.Number("min_p", 0, 1) ?? defaults.MinP),
                RepeatPenalty = (float)(options.Number("repeat_penalty", 1e-3, 100) ?? defaults.RepeatPenalty),
                RepeatLastN = (int)(options.Integer("repeat_last_n", -1, int.MaxValue) is { } last ? (last == -1 ? model.Scheduler.ContextLength : last) : defaults.RepeatLastN),
                Seed = options.Integer("seed", long.MinValue, long.MaxValue) is { } seed ? unchecked((ulong)seed) : defaults.Seed,
            };
            if (sampler.TopP == 0) sampler = sampler with { TopP = 1 }; // Ollama's 0 means off
            if (sampler.Validate() is { } problem) throw ApiException.BadRequest(problem, "options");
            // num_predict: -1 (and -2) generate until a stop or the context is full; otherwise at most that many tokens.
            long? predict = options.Integer("num_predict", -2, int.MaxValue);
            if (predict == 0) throw ApiException.BadRequest("num_predict is 0; expected -1 (no limit), -2 (fill the context) or 1 or more", "num_predict");
            // Beyond the context's room the answer ends there, unless the server shifts contexts (keeping num_keep tokens).
            int room = model.Scheduler.ContextLength - prompt.Length;
            int? maxTokens = predict is > 0 ? (int)(model.Scheduler.ContextShift ? predict.Value : Math.Min(predict.Value, Math.Max(1, room))) : null;
            return new CompletionRequest
            {
                PromptIds = prompt, Sampler = sampler, MaxTokens = maxTokens, Stop = options.Stops("stop"),
                KeepTokens = (int?)options.Integer("num_keep", -1, int.MaxValue),
            };
        }
        catch (ApiException e) when (e.Param is { } param && !param.StartsWith("options.", StringComparison.Ordinal))
        {
            // Name the field as the client wrote it: options.temperature, not temperature.
            string message = e.Message.StartsWith(param, StringComparison.Ordinal) ? "options." + e.Message : e.Message;
            throw ApiException.BadRequest(message, "options." + param);
        }
    }

    private static List<TemplateMessage> ReadMessages(JsonRequest body)
    {
        if (body.Get("messages") is not { } list) return [];
        if (list.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType("messages", "an array", list);
        var messages = new List<TemplateMessage>();
        int i = 0;
        foreach (var item in list.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType(at, "an object", item);
            var m = new JsonRequest(item);
            string role = m.String("role") ?? throw ApiException.BadRequest($"{at}.role is required", $"{at}.role");
            if (role is not ("system" or "user" or "assistant" or "tool"))
                throw ApiException.BadRequest($"{at}.role is '{role}'; expected system, user, assistant or tool", $"{at}.role");
            if (m.Get("images") is { ValueKind: JsonValueKind.Array } images && images.GetArrayLength() > 0)
                throw ApiException.BadRequest($"{at}.images is not supported: ClockLM's models read text only", $"{at}.images");
            if (m.String("thinking") is { Length: > 0 })
                throw ApiException.BadRequest($"{at}.thinking is not supported: ClockLM does not separate thinking from the answer", $"{at}.thinking");
            // An assistant turn's calls (arguments an object, or JSON text); a tool turn's result names its tool.
            messages.Add(new TemplateMessage(role, m.String("content") ?? "")
            {
                ToolCalls = StructuredRequest.ReadToolCalls(m, at),
                Name = m.String("tool_name"),
                ToolCallId = m.String("tool_call_id"),
            });
        }
        return messages;
    }

    private static int[] ReadIds(JsonElement array, string name)
    {
        if (array.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType(name, "an array of token ids", array);
        var ids = new List<int>();
        foreach (var item in array.EnumerateArray())
            ids.Add(item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int id) ? id : throw JsonRequest.WrongType(name, "an array of token ids", item));
        return ids.ToArray();
    }

    private async Task<ModelLease> AcquireAsync(ModelEntry entry, TimeSpan? keepAlive, HttpContext context) =>
        await Task.Run(() => registry.Acquire(entry, keepAlive), context.RequestAborted);

    // ---- output ----

    private static string Now() => Time(DateTime.UtcNow);

    private static string Time(DateTime utc) => utc.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    private static long Nanoseconds(TimeSpan time) => time.Ticks * 100;

    /// <summary>Text as written, not as HTML-safe escapes: templates and generated text stay readable.</summary>
    private static readonly JsonSerializerOptions Output = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static Task WriteAsync(HttpContext context, JsonObject answer)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.WriteAsync(answer.ToJsonString(Output), context.RequestAborted);
    }

    private static async Task WriteLineAsync(HttpResponse response, JsonObject line, CancellationToken cancel)
    {
        await response.WriteAsync(line.ToJsonString(Output) + "\n", cancel);
        await response.Body.FlushAsync(cancel);
    }
}
