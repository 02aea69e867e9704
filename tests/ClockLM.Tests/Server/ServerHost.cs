using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Server;

namespace ClockLM.Tests.Server;

/// <summary>stories260K (or another model) behind a real Kestrel server on 127.0.0.1 with a free port.</summary>
public sealed class ServerHost : IAsyncDisposable
{
    private ServerHost(Model model, SlotScheduler scheduler, ClockLMServer server)
    {
        Model = model;
        Scheduler = scheduler;
        Server = server;
        Http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Model Model { get; }
    public SlotScheduler Scheduler { get; }
    public ClockLMServer Server { get; }
    public HttpClient Http { get; }
    public Uri Address => Server.Address!;
    public Uri V1 => new(Address, "v1");

    public static async Task<ServerHost> StartAsync(SlotSchedulerOptions? scheduler = null, ServerOptions? server = null, string? modelPath = null)
    {
        var model = Model.Load(modelPath ?? SharedData.Stories260K);
        var slots = new SlotScheduler(model, scheduler ?? new SlotSchedulerOptions { Slots = 4 });
        var http = new ClockLMServer(slots, (server ?? new ServerOptions()) with { Host = "127.0.0.1", Port = 0 });
        await http.StartAsync();
        return new ServerHost(model, slots, http);
    }

    /// <summary>The same generation run alone by the engine's plain generation loop (no scheduler, no server).</summary>
    public static string RunAlone(Model model, int[] promptIds, int maxTokens, SamplerOptions sampler)
    {
        var generator = new Generator(model);
        return generator.Generate(promptIds, new GenerationOptions { MaxNewTokens = maxTokens, Sampler = sampler }).Text;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Scheduler.Dispose();
        Model.Dispose();
    }
}
