using Microsoft.Extensions.Hosting;

namespace ClockLM.Server;

/// <summary>
/// The web host's lifetime inside a program that owns the process: it starts and stops when told and handles no
/// signals, so SIGTERM drains the server (<see cref="ClockLMServer.DrainAsync"/>) instead of stopping it at once, and
/// several servers in one process (tests, benchmarks) do not each take over Ctrl+C.
/// </summary>
internal sealed class EmbeddedLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
