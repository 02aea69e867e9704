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
        var host = new Option<string>("--host") { Description = "Address to listen on (loopback by default)", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => 8080 };
        var parallel = new Option<int>("--parallel", "-np") { Description = "Slots: requests generated at once", DefaultValueFactory = _ => 4 };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait for a slot before 503", DefaultValueFactory = _ => 64 };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context length per slot (default: the model's)" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on every request" };
        var maxBody = new Option<long>("--max-body") { Description = "Largest request body in bytes", DefaultValueFactory = _ => 1 << 20 };
        var log = new Option<bool>("--log") { Description = "Log requests to the console" };

        var command = new Command("serve", "Serve a model over an OpenAI-compatible HTTP API");
        var speculative = new SpeculativeArguments();
        model.AddTo(command);
        speculative.AddTo(command);
        foreach (var o in new Option[] { host, port, parallel, queue, ctx, apiKey, maxBody, log })
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

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            var drafting = speculative.Create(result, m, ModelOptions.Options(result, model.Kernels), out var draftModel);
            using var draftFile = draftModel;
            using var scheduler = new SlotScheduler(m, new SlotSchedulerOptions
            {
                Speculative = drafting,
                Slots = slots,
                QueueCapacity = queueCapacity,
                ContextLength = contextLength,
                Pool = pool,
            });
            var server = new ClockLMServer(scheduler, new ServerOptions
            {
                Host = result.GetValue(host)!,
                Port = p,
                ApiKey = result.GetValue(apiKey),
                MaxRequestBodyBytes = bodyLimit,
                ConsoleLogging = result.GetValue(log),
            });
            using var stop = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
            try
            {
                server.StartAsync().GetAwaiter().GetResult();
            }
            catch (IOException e)
            {
                throw new UsageException($"cannot listen on {result.GetValue(host)}:{p}: {e.Message}");
            }
            // The first line names the address, so scripts (and tests) can find the port when 0 was asked for.
            Console.WriteLine($"listening on {server.Address} (model {server.ModelId}, {slots} slots, context {scheduler.ContextLength})");
            Console.Out.Flush();
            server.WaitForShutdownAsync(stop.Token).GetAwaiter().GetResult();
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return 0;
        }));
        return command;
    }
}
