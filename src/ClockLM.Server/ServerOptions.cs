namespace ClockLM.Server;

/// <summary>Settings of the HTTP server (the generation settings live in <see cref="ClockLM.Chat.SlotSchedulerOptions"/>).</summary>
public sealed record ServerOptions
{
    /// <summary>Address to listen on; loopback unless told otherwise, so the model is not exposed to the network by accident.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (see <see cref="ClockLMServer.Address"/>).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>When set, every request must carry <c>Authorization: Bearer {ApiKey}</c> or gets 401.</summary>
    public string? ApiKey { get; init; }

    /// <summary>Largest request body accepted; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Seconds a client is told to wait (Retry-After) when the queue is full.</summary>
    public int RetryAfterSeconds { get; init; } = 1;

    /// <summary>The model's name in requests and in /v1/models; the model file's name without extension when null.</summary>
    public string? ModelId { get; init; }

    /// <summary>The folder <c>POST /slots/{id}?action=save|restore</c> keeps slot files in; slots are not saved when null.</summary>
    public string? SlotSavePath { get; init; }

    /// <summary>Write ASP.NET Core's request log to the console.</summary>
    public bool ConsoleLogging { get; init; }
}
