namespace ClockLM.Server;

/// <summary>Settings of the HTTP server (the generation settings live in <see cref="ClockLM.Chat.SlotSchedulerOptions"/>).</summary>
public sealed record ServerOptions
{
    /// <summary>Address to listen on: an IP address or <c>localhost</c>; loopback unless told otherwise, so the model is
    /// not exposed to the network by accident.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>
    /// Names a request's <c>Host</c> header may carry (without the port); any other gets 403, so a web page whose
    /// domain name resolves to this machine (DNS rebinding) cannot reach the server. Null: the bound host, localhost
    /// and the loopback addresses (and, when bound to every interface, the machine's name and addresses). "*" allows any.
    /// </summary>
    public IReadOnlyList<string>? AllowedHosts { get; init; }

    /// <summary>The one origin whose web pages may call the server from a browser (CORS), e.g.
    /// <c>http://localhost:3000</c>, or "*" for any; null (the default) sends no CORS headers, so browsers refuse
    /// cross-site calls.</summary>
    public string? CorsOrigin { get; init; }

    /// <summary>TCP port; 0 picks a free one (see <see cref="ClockLMServer.Address"/>).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>When set, every request must carry <c>Authorization: Bearer {ApiKey}</c> or gets 401.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Largest request body accepted; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Slowest a request body may arrive after <see cref="BodyGracePeriod"/>; slower ones are cut off with 408.</summary>
    public double MinBodyBytesPerSecond { get; init; } = 240;

    /// <summary>Time a request body may take before <see cref="MinBodyBytesPerSecond"/> applies.</summary>
    public TimeSpan BodyGracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Seconds a client is told to wait (Retry-After) when the queue is full.</summary>
    public int RetryAfterSeconds { get; init; } = 1;

    /// <summary>The model's name in requests and in /v1/models; the model file's name without extension when null.</summary>
    public string? ModelId { get; init; }

    /// <summary>Write ASP.NET Core's request log to the console.</summary>
    public bool ConsoleLogging { get; init; }

    /// <summary>What is wrong with <paramref name="host"/> as an address to listen on, or null when it is an IP address
    /// or <c>localhost</c>. (A name such as "localhst" would otherwise make Kestrel listen on every interface.)</summary>
    public static string? CheckHost(string host)
    {
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return null;
        string bare = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        // IPv4 only as four decimal parts: the parser also takes "127.1" or "12345", which nobody means.
        bool dotted = System.Text.RegularExpressions.Regex.IsMatch(bare, @"^\d{1,3}(\.\d{1,3}){3}$");
        bool ok = (dotted || bare.Contains(':')) && !bare.Contains('%') && System.Net.IPAddress.TryParse(bare, out _);
        return ok
            ? null
            : $"the host is '{host}'; expected an IP address (127.0.0.1, ::1, 0.0.0.0 for every interface) or localhost";
    }

    /// <summary>True when <paramref name="host"/> (already checked by <see cref="CheckHost"/>) is reachable from this
    /// machine only.</summary>
    public static bool IsLoopback(string host)
    {
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return true;
        string bare = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        return System.Net.IPAddress.TryParse(bare, out var address) && System.Net.IPAddress.IsLoopback(address);
    }
    /// <summary>Control vectors requests may name in <c>clocklm.steer</c>, by name (<c>--steer-dir</c>); the steering
    /// of requests that name none is the scheduler's (<see cref="ClockLM.Chat.SlotSchedulerOptions.Steering"/>).</summary>
    public IReadOnlyDictionary<string, ClockLM.Models.ControlVector> SteeringVectors { get; init; } =
        new Dictionary<string, ClockLM.Models.ControlVector>();

}
