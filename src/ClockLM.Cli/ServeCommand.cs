using System.CommandLine;
using System.Runtime.InteropServices;
using ClockLM.Chat;
using ClockLM.Server;

namespace ClockLM.Cli;

/// <summary>`clocklm serve`: an OpenAI-compatible HTTP server over a model. SIGTERM or Ctrl+C drains it: /health turns
/// 503, new requests are refused, and the process exits once the requests in flight have ended (or --drain-timeout).</summary>
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
        var slotSavePath = new Option<string?>("--slot-save-path") { Description = "Folder for POST /slots/{id}?action=save|restore (created if missing)" };
        var drainTimeout = new Option<int>("--drain-timeout") { Description = "Seconds a stop (SIGTERM, Ctrl+C) waits for requests in flight", DefaultValueFactory = _ => 60 };

        var command = new Command("serve", "Serve a model over an OpenAI-compatible HTTP API");
        model.AddTo(command);
        foreach (var o in new Option[] { host, port, parallel, queue, ctx, apiKey, maxBody, log, drainTimeout, slotSavePath })
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
            int drainSeconds = result.GetValue(drainTimeout);
            if (drainSeconds < 0) throw new UsageException($"--drain-timeout is {drainSeconds}, expected 0 or more seconds");

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            using var scheduler = new SlotScheduler(m, new SlotSchedulerOptions
            {
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
                SlotSavePath = slotFolder,
            });
            using var stop = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
            using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal => { signal.Cancel = true; stop.Cancel(); });
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
            stop.Token.WaitHandle.WaitOne();
            Console.Error.WriteLine("draining: /health answers 503 and new requests are refused; waiting for the requests in flight");
            int left = server.DrainAsync(TimeSpan.FromSeconds(drainSeconds)).GetAwaiter().GetResult();
            if (left > 0) Console.Error.WriteLine($"--drain-timeout of {drainSeconds} s passed with {left} requests still running; they are cut off");
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return 0;
        }));
        return command;
    }
}
