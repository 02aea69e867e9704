using System.CommandLine;
using ClockLM.Chat;
using ClockLM.Server;

namespace ClockLM.Cli;

/// <summary>`clocklm serve`: an OpenAI-compatible HTTP server over a model.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var host = new Option<string>("--host") { Description = "Address to listen on: an IP address or localhost (loopback by default; 0.0.0.0 for every interface)", DefaultValueFactory = _ => "127.0.0.1" };
        var allowedHosts = new Option<string?>("--allowed-hosts") { Description = "Comma-separated names the Host header may carry, or * for any (default: the bound host, localhost and loopback)" };
        var cors = new Option<string?>("--cors") { Description = "Let web pages from ORIGIN (e.g. http://localhost:3000, or *) call the server from a browser; off by default" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => 8080 };
        var parallel = new Option<int>("--parallel", "-np") { Description = "Slots: requests generated at once", DefaultValueFactory = _ => 4 };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait for a slot before 503", DefaultValueFactory = _ => 64 };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context length per slot (default: the model's)" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every request" };
        var maxBody = new Option<long>("--max-body") { Description = "Largest request body in bytes", DefaultValueFactory = _ => 1 << 20 };
        var log = new Option<bool>("--log") { Description = "Log requests to the console" };

        var command = new Command("serve", "Serve a model over an OpenAI-compatible HTTP API");
        model.AddTo(command);
        foreach (var o in new Option[] { host, port, parallel, queue, ctx, apiKey, maxBody, log, allowedHosts, cors })
            command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int slots = result.GetValue(parallel);
            if (slots is < 1 or > 256) throw new UsageException($"--parallel is {slots}, expected 1 to 256");
            int queueCapacity = result.GetValue(queue);
            if (queueCapacity < 0) throw new UsageException($"--queue is {queueCapacity}, expected 0 or more");
            int p = result.GetValue(port);
            if (p is < 0 or > 65535) throw new UsageException($"--port is {p}, expected 0 to 65535");
            int? contextLength = result.GetValue(ctx);
            if (contextLength is <= 0) throw new UsageException($"--ctx is {contextLength}, expected a positive number");
            long bodyLimit = result.GetValue(maxBody);
            if (bodyLimit < 1) throw new UsageException($"--max-body is {bodyLimit}, expected a positive number of bytes");
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
            };
            string modelPath = result.GetValue(model.Model) ?? ModelOptions.BuiltInModelPath;
            if (ClockLM.Models.Model.IsVocabularyOnly(modelPath))
            {
                // llama.cpp's ggml-vocab-*.gguf files: tokenize and detokenize only.
                var vocabularyServer = new ClockLMServer(model.LoadTokenizer(result), modelPath, serverOptions);
                Serve(vocabularyServer, hostName, p, $"vocabulary of {vocabularyServer.ModelId} only: /tokenize and /detokenize");
                return 0;
            }

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            ModelOptions.WarnAboveTrainedContext(m, contextLength);
            using var scheduler = new SlotScheduler(m, new SlotSchedulerOptions
            {
                Slots = slots,
                QueueCapacity = queueCapacity,
                ContextLength = contextLength,
                Pool = pool,
            });
            var server = new ClockLMServer(scheduler, serverOptions);
            Serve(server, hostName, p, $"model {server.ModelId}, {slots} slots, context {scheduler.ContextLength}");
            return 0;
        }));
        return command;
    }

    /// <summary>Listens until Ctrl+C. The first line names the address, so scripts (and tests) can find the port when 0
    /// was asked for.</summary>
    private static void Serve(ClockLMServer server, string host, int port, string what)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
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
        server.WaitForShutdownAsync(stop.Token).GetAwaiter().GetResult();
        server.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
