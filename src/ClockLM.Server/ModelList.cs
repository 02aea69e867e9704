using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace ClockLM.Server;

/// <summary>OpenAI's model list (<c>GET /v1/models</c>, <c>GET /v1/models/{id}</c>) over a <see cref="ModelRegistry"/>,
/// loaded or not, with llama.cpp's <c>meta</c> (context, vocabulary, width, layers) beside each.</summary>
internal static class ModelList
{
    public static Task ListAsync(HttpContext context, ModelRegistry registry)
    {
        var data = new JsonArray();
        foreach (var entry in registry.Models) data.Add((JsonNode)ModelJson(registry, entry));
        return context.Response.WriteJsonAsync(new JsonObject { ["object"] = "list", ["data"] = data }, context.RequestAborted);
    }

    public static Task GetAsync(HttpContext context, ModelRegistry registry)
    {
        string id = (string)context.Request.RouteValues["id"]!;
        return context.Response.WriteJsonAsync(ModelJson(registry, registry.Find(id)), context.RequestAborted);
    }

    private static JsonObject ModelJson(ModelRegistry registry, ModelEntry entry)
    {
        var summary = registry.Summary(entry);
        var loaded = registry.Loaded.FirstOrDefault(m => m.Entry.Path == entry.Path);
        return new JsonObject
        {
            ["id"] = entry.Name,
            ["object"] = "model",
            ["created"] = new DateTimeOffset(summary.Modified).ToUnixTimeSeconds(),
            ["owned_by"] = "clocklm",
            ["meta"] = new JsonObject
            {
                ["n_ctx"] = loaded?.Scheduler.ContextLength ?? registry.ContextLength(summary),
                ["n_vocab"] = summary.Config.VocabSize,
                ["n_embd"] = summary.Config.Dim,
                ["n_layer"] = summary.Config.Layers,
                ["n_params"] = summary.Parameters,
                ["size"] = summary.FileBytes,
                ["slots"] = loaded?.Scheduler.Slots ?? registry.Slots,
                ["loaded"] = loaded is not null,
            },
        };
    }
}
