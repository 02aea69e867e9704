using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace ClockLM.Server;

/// <summary>
/// Whether this server takes new work, for a load balancer's health checks: ready, or draining. A drain (on SIGTERM,
/// before a replica stops) makes <c>/health</c> answer 503 so the balancer stops sending requests here, refuses new
/// requests with 503 <c>server_draining</c> (and <c>Connection: close</c>, so a balancer retries them on another
/// replica), and lets the requests already in flight — streams included — run to their end.
/// </summary>
internal sealed class Readiness
{
    private int _inFlight;
    private int _draining; // 1 once a drain has begun (set with a full fence: see DrainAsync)
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>True once a drain has begun.</summary>
    public bool Draining => Volatile.Read(ref _draining) == 1;

    /// <summary>Requests being answered, other than health checks and metrics.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary><c>GET /health</c>: 200 <c>{"status":"ok"}</c>, or 503 <c>{"status":"draining"}</c>.</summary>
    public Task HealthAsync(HttpContext context)
    {
        bool draining = Draining;
        if (draining) context.Response.StatusCode = 503;
        return context.Response.WriteJsonAsync(new JsonObject { ["status"] = draining ? "draining" : "ok" });
    }

    /// <summary>Middleware: counts the requests in flight and, once draining, refuses new ones.</summary>
    public async Task GateAsync(HttpContext context, RequestDelegate next)
    {
        string path = context.Request.Path.Value ?? "";
        if (path is "/health" or "/metrics")
        {
            await next(context);
            return;
        }
        Interlocked.Increment(ref _inFlight);
        try
        {
            if (Draining)
            {
                context.Response.Headers.Connection = "close";
                throw new ApiException(503, "this server is shutting down and takes no new requests; send the request to another replica",
                    "server_busy", code: "server_draining");
            }
            await next(context);
        }
        finally
        {
            if (Interlocked.Decrement(ref _inFlight) == 0 && Draining) _idle.TrySetResult();
        }
    }

    /// <summary>Begins the drain and waits until no request is in flight, or <paramref name="timeout"/> passes. Returns
    /// the requests still running (0 when all ended).</summary>
    public async Task<int> DrainAsync(TimeSpan timeout)
    {
        // The exchange fences: a request that leaves after this sees the flag, or this sees its count already gone.
        Interlocked.Exchange(ref _draining, 1);
        if (InFlight > 0)
            await Task.WhenAny(_idle.Task, Task.Delay(timeout));
        return InFlight;
    }
}
