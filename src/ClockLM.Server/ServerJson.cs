using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;

namespace ClockLM.Server;

/// <summary>
/// Writes JSON answers through a serializer generated at build time, so the server needs no reflection and the native
/// (AOT) clocklm serves exactly what the JIT build does. Answers are built as <see cref="JsonObject"/> trees.
/// </summary>
internal static class ServerJson
{
    /// <summary>Writes <paramref name="body"/> as the response, with content type application/json.</summary>
    public static Task WriteJsonAsync(this HttpResponse response, JsonObject body, CancellationToken cancellation = default) =>
        response.WriteAsJsonAsync(body, ServerJsonContext.Default.JsonObject, cancellationToken: cancellation);
}

[JsonSerializable(typeof(JsonObject))]
internal sealed partial class ServerJsonContext : JsonSerializerContext;
