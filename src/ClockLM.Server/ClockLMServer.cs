using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Tokenizers;
using ClockLM.Tokenizers.ChatTemplates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ClockLM.Server;

/// <summary>
/// An OpenAI- and Ollama-compatible HTTP server (ASP.NET Core, Kestrel) over one model's <see cref="SlotScheduler"/> or a
/// <see cref="ModelRegistry"/> of several: chat and text completions (streamed as Server-Sent Events, or as Ollama's
/// NDJSON under /api), models, embeddings, tokenize/detokenize, health and Prometheus metrics. The request's
/// <c>model</c> picks the model. Every error is answered in the API's JSON shape; no request can stop the server.
/// </summary>
public sealed class ClockLMServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ModelRegistry _registry;
    private readonly bool _ownsRegistry;
    private readonly ServerOptions _options;
    private readonly ServerMetrics _metrics = new();
    private readonly OllamaEndpoints _ollama;
    private readonly TokenizerEndpoints? _vocabulary; // a vocabulary-only server's tokenize and detokenize
    private readonly string? _vocabularyName;
    private readonly HashSet<string> _allowedHosts;
    private readonly List<(string Method, string Path)> _routes = [];
    private readonly Readiness _readiness = new();
    private readonly SlotEndpoints _slots;
    private readonly LoraEndpoints _lora;

    /// <summary>Builds the server over one model (not yet listening: call <see cref="StartAsync"/>). The caller keeps ownership of the scheduler.</summary>
    public ClockLMServer(SlotScheduler scheduler, ServerOptions? options = null)
        : this(ModelRegistry.ForScheduler(scheduler ?? throw new ArgumentNullException(nameof(scheduler)),
            options?.ModelId ?? Path.GetFileNameWithoutExtension(scheduler.Model.Path), options?.SteeringVectors), options, ownsRegistry: true)
    {
    }

    /// <summary>Builds the server over the models of <paramref name="registry"/>, which the caller keeps and disposes.</summary>
    public ClockLMServer(ModelRegistry registry, ServerOptions? options = null) : this(registry, options, ownsRegistry: false, vocabulary: null, path: null)
    {
    }

    /// <summary>A server over a vocabulary alone (e.g. llama.cpp's vocabulary-only <c>ggml-vocab-*.gguf</c> files):
    /// /tokenize, /detokenize, /health and /metrics answer; the model endpoints answer 501.</summary>
    public ClockLMServer(Tokenizer vocabulary, string path, ServerOptions? options = null)
        : this(ModelRegistry.Empty(), options, ownsRegistry: true, vocabulary ?? throw new ArgumentNullException(nameof(vocabulary)), path)
    {
    }

    private ClockLMServer(ModelRegistry registry, ServerOptions? options, bool ownsRegistry)
        : this(registry, options, ownsRegistry, vocabulary: null, path: null)
    {
    }

    private ClockLMServer(ModelRegistry registry, ServerOptions? options, bool ownsRegistry, Tokenizer? vocabulary, string? path)
    {
        ArgumentNullException.ThrowIfNull(registry);
        _registry = registry;
        _ownsRegistry = ownsRegistry;
        _options = options ?? new ServerOptions();
        if (_options.Port is < 0 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(options), _options.Port, "port must be 0 to 65535");
        if (_options.MaxRequestBodyBytes < 1)
            throw new ArgumentOutOfRangeException(nameof(options), _options.MaxRequestBodyBytes, "the body limit must be positive");
        if (ServerOptions.CheckHost(_options.Host) is { } badHost)
            throw new ArgumentException(badHost, nameof(options));
        _allowedHosts = _options.AllowedHosts is { } hosts ? new HashSet<string>(hosts.Select(BareHost), StringComparer.OrdinalIgnoreCase) : DefaultAllowedHosts(_options.Host);
        _ollama = new OllamaEndpoints(registry);
        _slots = new SlotEndpoints(registry, _options.SlotSavePath);
        _lora = new LoraEndpoints(registry);
        if (vocabulary is not null)
        {
            _vocabulary = new TokenizerEndpoints(vocabulary);
            _vocabularyName = _options.ModelId ?? Path.GetFileNameWithoutExtension(path);
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>(); // signals belong to the program (see DrainAsync)
        if (_options.ConsoleLogging) builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = _options.MaxRequestBodyBytes;
            // A body that trickles in slower than this is cut off with 408, so slow clients cannot hold connections.
            k.Limits.MinRequestBodyDataRate = new(_options.MinBodyBytesPerSecond, _options.BodyGracePeriod);
            k.AddServerHeader = false;
        });
        builder.WebHost.UseUrls($"http://{FormatHost(_options.Host)}:{_options.Port}");
        _app = builder.Build();
        _app.Use(HandleErrorsAsync);
        _app.Use(_readiness.GateAsync);
        _app.Use(CheckHostAsync);
        _app.Use(ApplyCorsAsync);
        _app.Use(CheckApiKeyAsync);
        _app.Use(CheckContentTypeAsync);
        Map(_app);
    }

    /// <summary>The model's name in requests and in /v1/models when the server runs one (or the vocabulary's, for a
    /// vocabulary-only server); null when it runs several.</summary>
    public string? ModelId => _vocabularyName ?? (_registry.Models.Count == 1 ? _registry.Models[0].Name : null);

    /// <summary>The models the server runs.</summary>
    public ModelRegistry Models => _registry;

    /// <summary>The address the server listens on (with the real port when 0 was asked for); null before <see cref="StartAsync"/>.</summary>
    public Uri? Address { get; private set; }

    /// <summary>Starts listening.</summary>
    public async Task StartAsync(CancellationToken cancellation = default)
    {
        await _app.StartAsync(cancellation);
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()
            ?? throw new InvalidOperationException("Kestrel reported no addresses");
        Address = new Uri(addresses.Addresses.First());
    }

    /// <summary>Waits until the server is stopped (by <paramref name="cancellation"/> or a host shutdown).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => _app.WaitForShutdownAsync(cancellation);

    /// <summary>
    /// Drains the server before it stops: <c>/health</c> answers 503 from now on (a balancer takes this replica out),
    /// new requests get 503 <c>server_draining</c>, and this waits until the requests in flight have ended, streams
    /// included, or <paramref name="timeout"/> has passed. Returns how many were still running. <c>clocklm serve</c>
    /// drains on SIGTERM and Ctrl+C; the server itself never handles the process's signals.
    /// </summary>
    public Task<int> DrainAsync(TimeSpan timeout) => _readiness.DrainAsync(timeout);

    /// <summary>Stops listening; requests in flight are given a moment to end.</summary>
    public async ValueTask DisposeAsync()
    {
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(grace.Token);
        await _app.DisposeAsync();
        if (_ownsRegistry) _registry.Dispose();
    }

    private void Map(WebApplication app)
    {
        void Post(string path, RequestDelegate handler)
        {
            app.MapPost(path, handler);
            _routes.Add(("POST", path));
        }
        void Get(string path, RequestDelegate handler)
        {
            app.MapMethods(path, ["GET", "HEAD"], handler); // HEAD: the same answer without its body
            _routes.Add(("GET", path));
            _routes.Add(("HEAD", path));
        }
        // A vocabulary-only server answers the model endpoints 501; its tokenize and detokenize use the vocabulary.
        RequestDelegate NoWeights = _ => throw new ApiException(501,
            $"this server holds the vocabulary of '{_vocabularyName}' and no weights: only /tokenize, /detokenize, /health and /metrics answer",
            code: "vocabulary_only");
        RequestDelegate ForModel(Func<OpenAiEndpoints, RequestDelegate> handler) =>
            _vocabulary is null ? context => ForModelAsync(context, handler) : NoWeights;
        Post("/v1/chat/completions", ForModel(m => m.ChatCompletionsAsync));
        Post("/v1/completions", ForModel(m => m.CompletionsAsync));
        Post("/v1/embeddings", ForModel(m => m.EmbeddingsAsync));
        Get("/v1/models", _vocabulary is null ? context => ModelList.ListAsync(context, _registry) : NoWeights);
        Get("/v1/models/{id}", _vocabulary is null ? context => ModelList.GetAsync(context, _registry) : NoWeights);
        Post("/tokenize", _vocabulary is { } vocabulary ? vocabulary.TokenizeAsync : ForModel(m => m.Tokens.TokenizeAsync));
        Post("/detokenize", _vocabulary is not null ? _vocabulary.DetokenizeAsync : ForModel(m => m.Tokens.DetokenizeAsync));
        _ollama.Map(app, _routes);
        Get("/health", _readiness.HealthAsync);
        Get("/slots", _vocabulary is null ? _slots.ListAsync : NoWeights);
        Post("/slots/{id}", _vocabulary is null ? _slots.ActionAsync : NoWeights);
        Get("/lora-adapters", _vocabulary is null ? _lora.ListAsync : NoWeights);
        Post("/lora-adapters", _vocabulary is null ? _lora.SetAsync : NoWeights);
        Get("/metrics", context =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            return context.Response.WriteAsync(_metrics.Render(_registry.Stats, _registry.KernelFallbacks));
        });
        app.MapFallback(context =>
        {
            string path = context.Request.Path.Value ?? "";
            var methods = _routes.Where(r => RouteMatches(r.Path, path)).Select(r => r.Method).Distinct().ToList();
            if (methods.Count == 0)
                throw new ApiException(404, $"no endpoint {context.Request.Method} {path}", "not_found_error", code: "unknown_url");
            context.Response.Headers.Allow = string.Join(", ", methods);
            throw new ApiException(405, $"{path} does not take {context.Request.Method}; it takes {string.Join(" or ", methods)}",
                code: "method_not_allowed");
        });
    }

    // "/v1/models/{id}" matches "/v1/models/" followed by one segment; other routes match exactly.
    private static bool RouteMatches(string route, string path)
    {
        int brace = route.IndexOf('{');
        if (brace < 0) return string.Equals(route, path, StringComparison.OrdinalIgnoreCase);
        return path.StartsWith(route[..brace], StringComparison.OrdinalIgnoreCase) && path.Length > brace && path.IndexOf('/', brace) < 0;
    }

    /// <summary>
    /// Runs an OpenAI handler on the model the request's <c>model</c> names, loading it when needed and keeping it loaded
    /// until the handler ends. The body is read here for the name, then rewound for the handler.
    /// </summary>
    private async Task ForModelAsync(HttpContext context, Func<OpenAiEndpoints, RequestDelegate> handler)
    {
        context.Request.EnableBuffering();
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        var entry = _registry.Find(body.String("model"));
        context.Request.Body.Position = 0;
        using var lease = await Task.Run(() => _registry.Acquire(entry, keepAlive: null), context.RequestAborted);
        await handler(lease.Model.OpenAi)(context);
    }

    private async Task HandleErrorsAsync(HttpContext context, RequestDelegate next)
    {
        try
        {
            if (context.Request.ContentLength > _options.MaxRequestBodyBytes)
                throw TooLarge();
            await next(context);
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            var error = e switch
            {
                ApiException api => api,
                BadHttpRequestException { StatusCode: 413 } => TooLarge(),
                BadHttpRequestException bad => new ApiException(bad.StatusCode, bad.Message),
                CompletionRequestException c => ApiException.BadRequest(c.Message, c.Parameter, c.Message.Contains("the context holds", StringComparison.Ordinal) ? "context_length_exceeded" : null),
                QueueFullException q => new ApiException(503, q.Message, "server_busy", code: "queue_full"),
                ChatTemplateException t => ApiException.BadRequest($"the chat template rejected the messages: {t.Message}", "messages"),
                NonFiniteOutputException n => new ApiException(500, n.Message, "server_error", code: "non_finite_output"),
                OperationCanceledException when context.RequestAborted.IsCancellationRequested => null,
                _ => new ApiException(500, $"internal error: {e.GetType().Name}: {e.Message}", "server_error"),
            };
            if (error is null) return; // the client went away
            if (error.Status == 503) context.Response.Headers.RetryAfter = _options.RetryAfterSeconds.ToString();
            context.Response.StatusCode = error.Status;
            await context.Response.WriteJsonAsync(OllamaEndpoints.Serves(context) ? error.ToOllamaJson() : error.ToJson(), context.RequestAborted);
        }
        catch (Exception) when (context.Response.HasStarted)
        {
            // A stream broke after its headers were sent: nothing more can be said to this client, and the server goes on.
            context.Abort();
        }
        finally
        {
            _metrics.CountRequest(MetricPath(context), context.Response.StatusCode);
        }
    }

    // DNS rebinding: a web page on evil.example whose name is made to resolve to 127.0.0.1 reaches this server from the
    // user's browser, but its requests carry "Host: evil.example".
    private Task CheckHostAsync(HttpContext context, RequestDelegate next)
    {
        string host = context.Request.Host.Host;
        if (_allowedHosts.Contains("*") || _allowedHosts.Contains(BareHost(host))) return next(context);
        throw new ApiException(403,
            $"the Host header is '{context.Request.Host}'; this server answers to {string.Join(", ", _allowedHosts.Order(StringComparer.Ordinal))} (start it with --allowed-hosts to add names)",
            "permission_error", code: "host_not_allowed");
    }

    // CORS is off unless an origin was given: browsers then refuse to let other sites' pages read the answers.
    private Task ApplyCorsAsync(HttpContext context, RequestDelegate next)
    {
        if (_options.CorsOrigin is not { } allowed) return next(context);
        string origin = context.Request.Headers.Origin.ToString();
        if (origin.Length == 0 || (allowed != "*" && !string.Equals(origin, allowed, StringComparison.OrdinalIgnoreCase)))
            return next(context);
        var headers = context.Response.Headers;
        headers.AccessControlAllowOrigin = allowed == "*" ? "*" : origin;
        headers.Vary = "Origin";
        if (HttpMethods.IsOptions(context.Request.Method) && context.Request.Headers.AccessControlRequestMethod.Count > 0)
        {
            headers.AccessControlAllowMethods = "GET, HEAD, POST";
            headers.AccessControlAllowHeaders = "Authorization, Content-Type";
            headers.AccessControlMaxAge = "600";
            context.Response.StatusCode = 204;
            return Task.CompletedTask;
        }
        return next(context);
    }

    // A POST whose body is not declared JSON is refused: a cross-site form or text/plain POST (which browsers send
    // without asking) cannot reach the endpoints.
    private static Task CheckContentTypeAsync(HttpContext context, RequestDelegate next)
    {
        if (!HttpMethods.IsPost(context.Request.Method)) return next(context);
        string type = context.Request.ContentType ?? "";
        if (Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(type, out var media)
            && string.Equals(media.MediaType.Value, "application/json", StringComparison.OrdinalIgnoreCase)
            && (media.Charset.Value is null || string.Equals(media.Charset.Value, "utf-8", StringComparison.OrdinalIgnoreCase)))
            return next(context);
        throw new ApiException(415,
            type.Length == 0 ? "the request has no Content-Type; expected application/json" : $"the Content-Type is '{type}'; expected application/json (UTF-8)",
            code: "unsupported_media_type");
    }

    private Task CheckApiKeyAsync(HttpContext context, RequestDelegate next)
    {
        if (_options.ApiKey is not { Length: > 0 } key) return next(context);
        string header = context.Request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        bool ok = header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)
            && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()), Encoding.UTF8.GetBytes(key));
        if (!ok)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            throw new ApiException(401, header.Length == 0
                ? "no API key given: send the header 'Authorization: Bearer KEY'"
                : "the API key is not valid", "authentication_error", code: "invalid_api_key");
        }
        return next(context);
    }

    private ApiException TooLarge() => new(413,
        $"the request body is larger than the limit of {_options.MaxRequestBodyBytes} bytes", "invalid_request_error", code: "request_too_large");

    // Known paths only, so a scan of random URLs cannot grow the metrics without bound.
    private static string MetricPath(HttpContext context)
    {
        string path = context.Request.Path.Value ?? "";
        return path switch
        {
            "/v1/chat/completions" or "/v1/completions" or "/v1/embeddings" or "/v1/models" or "/tokenize" or "/detokenize" or "/health" or "/metrics" => path,
            _ when path.StartsWith("/v1/models/", StringComparison.Ordinal) => "/v1/models/{id}",
            "/slots" => path,
            _ when path.StartsWith("/slots/", StringComparison.Ordinal) => "/slots/{id}",
            _ when OllamaEndpoints.Paths.Contains(path) => path,
            _ => "other",
        };
    }

    private static string BareHost(string host) => host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;

    /// <summary>The bound host and every loopback name; when bound to every interface, also the machine's name and addresses.</summary>
    private static HashSet<string> DefaultAllowedHosts(string host)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "localhost", "127.0.0.1", "::1", BareHost(host) };
        if (System.Net.IPAddress.TryParse(BareHost(host), out var address)
            && (address.Equals(System.Net.IPAddress.Any) || address.Equals(System.Net.IPAddress.IPv6Any)))
        {
            names.Add(System.Net.Dns.GetHostName());
            foreach (var nic in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces())
                foreach (var unicast in nic.GetIPProperties().UnicastAddresses)
                    names.Add(unicast.Address.ToString());
        }
        return names;
    }

    private static string FormatHost(string host) => host.Contains(':') && !host.StartsWith('[') ? $"[{host}]" : host;
}
