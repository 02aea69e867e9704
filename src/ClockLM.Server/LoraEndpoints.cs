using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Chat;
using Microsoft.AspNetCore.Http;

namespace ClockLM.Server;

/// <summary>
/// llama-server's LoRA API over the adapters the server loaded at start (<c>--lora</c>, <c>--lora-scaled</c>; ids are
/// their order there): <c>GET /lora-adapters</c> lists <c>[{"id", "path", "scale"}]</c> at the scales of requests that
/// name none; <c>POST /lora-adapters</c> with <c>[{"id": 0, "scale": 0.5}]</c> sets those scales (adapters not named go
/// to 0) and answers <c>{"success": true}</c>. A completion's own <c>"lora"</c> field, the same list, replaces them for
/// that request alone (<see cref="Read"/>). A server of one model only.
/// </summary>
internal sealed class LoraEndpoints(ModelRegistry registry)
{
    public async Task ListAsync(HttpContext context)
    {
        using var lease = await OneModelAsync(context);
        var list = new JsonArray();
        var adapters = lease.Model.Scheduler.LoraAdapters;
        for (int i = 0; i < adapters.Count; i++)
            list.Add((JsonNode)new JsonObject { ["id"] = i, ["path"] = adapters[i].Adapter.Path ?? "", ["scale"] = adapters[i].Scale });
        // llama-server answers with an array (ServerJson writes objects).
        context.Response.ContentType = "application/json; charset=utf-8";
        await context.Response.WriteAsync(list.ToJsonString(), context.RequestAborted);
    }

    public async Task SetAsync(HttpContext context)
    {
        using var lease = await OneModelAsync(context);
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted, JsonValueKind.Array);
        lease.Model.Scheduler.SetLoraScales(Scales(body.Root, ""), "");
        await context.Response.WriteJsonAsync(new JsonObject { ["success"] = true }, context.RequestAborted);
    }

    /// <summary>A completion request's <c>lora</c> field: null when absent (the server's scales apply).</summary>
    public static IReadOnlyList<LoraScale>? Read(JsonRequest body) =>
        body.Get("lora") is { } value ? Scales(value, "lora") : null;

    /// <summary>
    /// An array of <c>{"id": N, "scale": S}</c> objects (<paramref name="field"/> names it in errors: <c>lora[1].scale</c>).
    /// Both fields are required; ids and scales are checked against the adapters by
    /// <see cref="SlotScheduler.SetLoraScales"/> and <see cref="SlotScheduler.Submit"/>. At most 1024 entries.
    /// </summary>
    private static List<LoraScale> Scales(JsonElement value, string field)
    {
        string name = field.Length == 0 ? "the body" : field;
        if (value.ValueKind != JsonValueKind.Array)
            throw JsonRequest.WrongType(name, "an array of {\"id\": N, \"scale\": S} objects", value);
        if (value.GetArrayLength() > 1024)
            throw ApiException.BadRequest($"{name} holds {value.GetArrayLength()} entries; at most 1024 are accepted", field.Length == 0 ? null : field);
        var scales = new List<LoraScale>();
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            string at = $"{field}[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType(at, "an object {\"id\": N, \"scale\": S}", item);
            var entry = new JsonRequest(item);
            foreach (var property in item.EnumerateObject())
                if (property.Name is not ("id" or "scale"))
                    throw ApiException.BadRequest($"{at}.{property.Name} is not a field of a LoRA entry; expected id and scale", $"{at}.{property.Name}", "unsupported_field");
            long id = entry.Integer("id", 0, int.MaxValue, $"{at}.id") ?? throw ApiException.BadRequest($"{at}.id is required: the adapter's id from GET /lora-adapters", $"{at}.id");
            double scale = entry.Number("scale", -1e6, 1e6, $"{at}.scale") ?? throw ApiException.BadRequest($"{at}.scale is required: the adapter's scale for this request (0 leaves it out)", $"{at}.scale");
            scales.Add(new LoraScale((int)id, (float)scale));
        }
        return scales;
    }

    /// <summary>The server's one model, held loaded while the request runs.</summary>
    private async Task<ModelLease> OneModelAsync(HttpContext context)
    {
        if (registry.Models.Count != 1)
            throw new ApiException(501, "LoRA adapters are listed and scaled on a server of one model (--model); this one serves a folder of models",
                "not_supported_error", code: "not_supported");
        return await Task.Run(() => registry.Acquire(registry.Models[0], keepAlive: null), context.RequestAborted);
    }
}
