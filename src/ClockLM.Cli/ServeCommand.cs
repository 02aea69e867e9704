using System.CommandLine;
using System.Runtime.InteropServices;
using ClockLM.Chat;
using ClockLM.Server;

namespace ClockLM.Cli;

/// <summary>`clocklm serve`: an OpenAI- and Ollama-compatible HTTP server over a model, or over a folder of models.
/// SIGTERM or Ctrl+C drains it: /health turns 503, new requests are refused, and the process exits once the requests in
/// flight have ended (or --drain-timeout has passed).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var steering = new SteeringOptions();
        var lora = new LoraOptions();
        var steerDir = new Option<string?>("--steer-dir") { Description = "Load every control vector (.gguf) in this directory; requests steer by file name in clocklm.steer", HelpName = "DIR" };
        var host = new Option<string>("--host") { Description = "Address to listen on: an IP address or localhost (loopback by default; 0.0.0.0 for every interface)", DefaultValueFactory = _ => "127.0.0.1" };
        var allowedHosts = new Option<string?>("--allowed-hosts") { Description = "Comma-separated names the Host header may carry, or * for any (default: the bound host, localhost and loopback)" };
        var cors = new Option<string?>("--cors") { Description = "Let web pages from ORIGIN (e.g. http://localhost:3000, or *) call the server from a browser; off by default" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => 8080 };
        var parallel = new Option<int>("--parallel", "-np") { Description = "Slots: requests generated at once", DefaultValueFactory = _ => 4 };
        var prefillChunk = new Option<int>("--prefill-chunk") { Description = "Most prompt tokens read per round across the slots, beside the streams decoding (larger: first tokens of long prompts sooner; smaller: shorter pauses of the running streams)", DefaultValueFactory = _ => 64 };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait for a slot before 503", DefaultValueFactory = _ => 64 };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context length per slot (default: the model's)" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every request" };
        var maxBody = new Option<long>("--max-body") { Description = "Largest request body in bytes", DefaultValueFactory = _ => 1 << 20 };
        var log = new Option<bool>("--log") { Description = "Log requests to the console" };
        var modelsDir = new Option<string?>("--models-dir") { Description = "Serve every .gguf file in this folder (names from file names, aliases from models.json); the request's model picks one" };
        var keepAlive = new Option<string>("--keep-alive") { Description = "With --models-dir: how long a model stays loaded after its last request (5m, 1h, 0, -1 = forever)", DefaultValueFactory = _ => "5m" };
        var slotSavePath = new Option<string?>("--slot-save-path") { Description = "Folder for POST /slots/{id}?action=save|restore (created if missing)" };
        var drainTimeout = new Option<int>("--drain-timeout") { Description = "Seconds a stop (SIGTERM, Ctrl+C) waits for requests in flight", DefaultValueFactory = _ => 60 };
        var maxLoaded = new Option<long?>("--max-loaded-bytes") { Description = "With --models-dir: most bytes the loaded models may take (file and KV caches); least recently used ones are unloaded for room" };
        var cacheTypes = new CacheTypeOptions();
        var contextShift = new Option<bool>("--context-shift") { Description = "When a generation fills its context, drop half of it (after n_keep tokens) and go on" };

        var command = new Command("serve", "Serve models over OpenAI- and Ollama-compatible HTTP APIs");
        var speculative = new SpeculativeArguments();
        model.AddTo(command);
        speculative.AddTo(command);
        steering.AddTo(command);
        lora.AddTo(command);
        foreach (var o in new Option[] { steerDir, host, port, parallel, prefillChunk, queue, ctx, apiKey, maxBody, log, allowedHosts, cors, modelsDir, keepAlive, maxLoaded, contextShift, drainTimeout, slotSavePath })
            command.Options.Add(o);
        cacheTypes.AddTo(command);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int slots = result.GetValue(parallel);
            if (slots is < 1 or > 256) throw new UsageException($"--parallel is {slots}, expected 1 to 256");
            int chunk = result.GetValue(prefillChunk);
            if (chunk is < 1 or > 65536) throw new UsageException($"--prefill-chunk is {chunk}, expected 1 to 65536 prompt tokens per round");
            int queueCapacity = result.GetValue(queue);
            if (queueCapacity < 0) throw new UsageException($"--queue is {queueCapacity}, expected 0 or more");
            int p = result.GetValue(port);
            if (p is < 0 or > 65535) throw new UsageException($"--port is {p}, expected 0 to 65535");
            int? contextLength = result.GetValue(ctx);
            if (contextLength is <= 0) throw new UsageException($"--ctx is {contextLength}, expected a positive number");
            long bodyLimit = result.GetValue(maxBody);
            if (bodyLimit < 1) throw new UsageException($"--max-body is {bodyLimit}, expected a positive number of bytes");
            string? slotFolder = result.GetValue(slotSavePath);
            if (slotFolder is not null)
            {
                try
                {
                    Directory.CreateDirectory(slotFolder);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
                {
                    throw new UsageException($"--slot-save-path {slotFolder}: cannot create the folder: {e.Message}");
                }
            }
            var drain = TimeSpan.FromSeconds(result.GetValue(drainTimeout));
            if (drain < TimeSpan.Zero) throw new UsageException($"--drain-timeout is {drain.TotalSeconds}, expected 0 or more seconds");
            string hostName = result.GetValue(host)!;
            if (ServerOptions.CheckHost(hostName) is { } badHost) throw new UsageException($"--host: {badHost}");
            string? key = result.GetValue(apiKey);
            if (!ServerOptions.IsLoopback(hostName) && string.IsNullOrEmpty(key))
                Console.Error.WriteLine($"warning: listening on {hostName}, which other machines can reach, without --api-key: anyone on the network can use the model");
            var hostNames = result.GetValue(allowedHosts)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (hostNames is { Length: 0 }) throw new UsageException("--allowed-hosts is empty; expected names separated by commas, or *");
            string? corsOrigin = result.GetValue(cors);
            if (corsOrigin is not null && corsOrigin != "*" && !(Uri.TryCreate(corsOrigin, UriKind.Absolute, out var originUri) && originUri.Scheme is "http" or "https" && originUri.PathAndQuery == "/" && !corsOrigin.EndsWith('/')))
                throw new UsageException($"--cors is '{corsOrigin}'; expected an origin such as http://localhost:3000 (scheme, host and port, no path), or *");

            var serverOptions = new ServerOptions
            {
                Host = hostName,
                Port = p,
                ApiKey = key,
                AllowedHosts = hostNames,
                CorsOrigin = corsOrigin,
                MaxRequestBodyBytes = bodyLimit,
                ConsoleLogging = result.GetValue(log),
                SlotSavePath = slotFolder,
            };
            string modelPath = result.GetValue(model.Model) ?? ClockLM.Models.BuiltInModel.Path;
            if (ClockLM.Models.Model.IsVocabularyOnly(modelPath))
            {
                // llama.cpp's ggml-vocab-*.gguf files: tokenize and detokenize only.
                var vocabularyServer = new ClockLMServer(model.LoadTokenizer(result), modelPath, serverOptions);
                return Serve(vocabularyServer, hostName, p, $"vocabulary of {vocabularyServer.ModelId} only: /tokenize and /detokenize", drain);
            }

            bool shift = result.GetValue(contextShift);
            var schedulerOptions = new SlotSchedulerOptions
            {
                Slots = slots, QueueCapacity = queueCapacity, PrefillChunk = chunk, ContextLength = contextLength, KvCache = cacheTypes.Read(result), ContextShift = shift,
                Logger = new StderrLogger(Microsoft.Extensions.Logging.LogLevel.Warning),
            };
            if (result.GetValue(modelsDir) is { } dir)
            {
                if (result.GetValue(model.Model) is not null) throw new UsageException("--model and --models-dir exclude each other: name one model, or a folder of them");
                if (steering.Files(result).Count > 0 || result.GetValue(steerDir) is not null)
                    throw new UsageException("control vectors and --steer-dir are made for one model's width; serve them with --model, not --models-dir");
                if (lora.Files(result).Count > 0)
                    throw new UsageException("a LoRA adapter is made for one base model; serve it with --model, not --models-dir");
                string keep = result.GetValue(keepAlive)!;
                var keepTime = ModelFolderOptions.ParseKeepAlive(keep) ?? throw new UsageException($"--keep-alive is '{keep}', expected a duration such as 5m, 1h30m, 0 or -1");
                long? budget = result.GetValue(maxLoaded);
                if (budget is <= 0) throw new UsageException($"--max-loaded-bytes is {budget}, expected a positive number of bytes");
                int threads = result.GetValue(model.Threads);
                if (threads is < 1 or > 1024) throw new UsageException($"--threads is {threads}, expected 1 to 1024");
                schedulerOptions = schedulerOptions with { Speculative = speculative.Create(result, null, ModelOptions.Options(result, model.Kernels), out _) };
                using var registry = ModelRegistry.FromFolder(dir, new ModelFolderOptions
                {
                    Scheduler = schedulerOptions,
                    Loading = ModelOptions.Options(result, model.Kernels),
                    Threads = threads,
                    KeepAlive = keepTime,
                    MaxLoadedBytes = budget,
                });
                return Serve(new ClockLMServer(registry, serverOptions), hostName, p,
                    $"{registry.Models.Count} models in {dir}: {string.Join(", ", registry.Models.Select(e => e.Name))}; {slots} slots each, loaded on first use", drain);
            }
            if (result.GetValue(keepAlive) != "5m" || result.GetValue(maxLoaded) is not null)
                throw new UsageException("--keep-alive and --max-loaded-bytes apply to --models-dir; a model named with --model stays loaded");
            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            // The adapters go to the scheduler, which gives every request its own scales (GET/POST /lora-adapters).
            var adapters = lora.Load(result);
            ModelOptions.WarnAboveTrainedContext(m, contextLength);
            var drafting = speculative.Create(result, m, ModelOptions.Options(result, model.Kernels), out var draftModel);
            using var draftFile = draftModel;
            if (shift && m.Config.Rope == ClockLM.Models.RopeStyle.None)
                throw new UsageException($"--context-shift: {Path.GetFileName(m.Path)} has learned absolute positions, not RoPE, so its context cannot shift");
            var steeringVectors = result.GetValue(steerDir) is { } vectors ? SteeringOptions.LoadDirectory(vectors, m) : [];
            using var scheduler = new SlotScheduler(m, schedulerOptions with { Pool = pool, Steering = steering.Build(result, m), Speculative = drafting, Lora = adapters });
            var server = new ClockLMServer(scheduler, serverOptions with { SteeringVectors = steeringVectors });
            return Serve(server, hostName, p, $"model {server.ModelId}, {slots} slots, context {scheduler.ContextLength}, KV cache {schedulerOptions.KvCache}", drain);
        }));
        return command;
    }

    /// <summary>Listens until SIGTERM or Ctrl+C, then drains (see <see cref="ClockLMServer.DrainAsync"/>). The first line names the address, so scripts (and tests) can find the port when 0
    /// was asked for.</summary>
    private static int Serve(ClockLMServer server, string host, int port, string what, TimeSpan drain)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => { signal.Cancel = true; stop.Cancel(); });
        try
        {
            server.StartAsync().GetAwaiter().GetResult();
        }
        catch (IOException e)
        {
            throw new UsageException($"cannot listen on {host}:{port}: {e.Message}");
        }
        Console.WriteLine($"listening on {server.Address} ({what})");
        Console.Out.Flush();
        stop.Token.WaitHandle.WaitOne();
        Console.Error.WriteLine("draining: /health answers 503 and new requests are refused; waiting for the requests in flight");
        int left = server.DrainAsync(drain).GetAwaiter().GetResult();
        if (left > 0) Console.Error.WriteLine($"--drain-timeout of {drain.TotalSeconds} s passed with {left} requests still running; they are cut off");
        server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return 0;
    }
}
