using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using ClockLM.Chat;
using Microsoft.AspNetCore.Http;

namespace ClockLM.Server;

/// <summary>
/// llama.cpp's slot API: <c>GET /slots</c> lists what each slot holds; <c>POST /slots/{id}?action=save|restore|erase</c>
/// saves a slot's KV cache to a file in <see cref="ServerOptions.SlotSavePath"/>, restores one, or forgets it. File names
/// are plain names inside that folder: no folders, no <c>..</c>, no absolute paths. A server of one model only (the
/// slots of a folder's models come and go with them).
/// </summary>
internal sealed partial class SlotEndpoints(ModelRegistry registry, string? saveDirectory)
{
    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")]
    private static partial Regex PlainFileName();

    public async Task ListAsync(HttpContext context)
    {
        using var lease = await OneModelAsync(context);
        var slots = new JsonArray();
        foreach (var s in lease.Model.Scheduler.SlotStates)
            slots.Add((JsonNode)new JsonObject { ["id"] = s.Id, ["n_ctx"] = s.ContextLength, ["is_processing"] = s.IsProcessing, ["n_tokens"] = s.CachedTokens });
        // llama.cpp answers with an array (ServerJson writes objects).
        context.Response.ContentType = "application/json; charset=utf-8";
        await context.Response.WriteAsync(slots.ToJsonString(), context.RequestAborted);
    }

    public async Task ActionAsync(HttpContext context)
    {
        using var lease = await OneModelAsync(context);
        var scheduler = lease.Model.Scheduler;
        string idText = (string)context.Request.RouteValues["id"]!;
        if (!int.TryParse(idText, NumberStyles.None, CultureInfo.InvariantCulture, out int id))
            throw ApiException.BadRequest($"the slot id is '{idText}'; expected a number from 0 to {scheduler.Slots - 1}", "id_slot");
        string action = context.Request.Query["action"].ToString();
        var clock = Stopwatch.StartNew();
        JsonObject answer;
        try
        {
            switch (action)
            {
                case "erase":
                    answer = new JsonObject { ["id_slot"] = id, ["n_erased"] = scheduler.EraseSlot(id) };
                    break;
                case "save":
                {
                    var (name, path) = await FileAsync(context);
                    // Written beside the target, then moved over it: a failed save leaves no half-written file.
                    string partial = path + ".partial-" + Guid.NewGuid().ToString("N");
                    (int Tokens, long Bytes) saved;
                    try
                    {
                        await using (var file = new FileStream(partial, FileMode.CreateNew, FileAccess.Write))
                            saved = scheduler.SaveSlot(id, file);
                        File.Move(partial, path, overwrite: true);
                    }
                    finally
                    {
                        File.Delete(partial);
                    }
                    answer = new JsonObject
                    {
                        ["id_slot"] = id, ["filename"] = name, ["n_saved"] = saved.Tokens, ["n_written"] = saved.Bytes,
                        ["timings"] = new JsonObject { ["save_ms"] = clock.Elapsed.TotalMilliseconds },
                    };
                    break;
                }
                case "restore":
                {
                    var (name, path) = await FileAsync(context);
                    if (!File.Exists(path)) throw new ApiException(404, $"there is no saved slot '{name}'", "not_found_error", "filename", "file_not_found");
                    await using var file = new FileStream(path, FileMode.Open, FileAccess.Read);
                    int restored = scheduler.RestoreSlot(id, file, name);
                    answer = new JsonObject
                    {
                        ["id_slot"] = id, ["filename"] = name, ["n_restored"] = restored, ["n_read"] = file.Position,
                        ["timings"] = new JsonObject { ["restore_ms"] = clock.Elapsed.TotalMilliseconds },
                    };
                    break;
                }
                default:
                    throw ApiException.BadRequest($"action is '{action}'; expected save, restore or erase", "action");
            }
        }
        catch (SlotBusyException e)
        {
            throw new ApiException(409, e.Message, "invalid_request_error", "id_slot", "slot_busy");
        }
        catch (InvalidDataException e)
        {
            throw ApiException.BadRequest(e.Message, "filename", "invalid_slot_file");
        }
        await context.Response.WriteJsonAsync(answer, context.RequestAborted);
    }

    /// <summary>The server's one model, held loaded while the request runs.</summary>
    private async Task<ModelLease> OneModelAsync(HttpContext context)
    {
        if (registry.Models.Count != 1)
            throw new ApiException(501, "slots are listed, saved and restored on a server of one model (--model); this one serves a folder of models",
                "not_supported_error", code: "not_supported");
        return await Task.Run(() => registry.Acquire(registry.Models[0], keepAlive: null), context.RequestAborted);
    }

    /// <summary>The request's <c>filename</c>: a plain name, and its path inside the save folder.</summary>
    private async Task<(string Name, string Path)> FileAsync(HttpContext context)
    {
        if (saveDirectory is null)
            throw new ApiException(501, "this server saves no slots; start it with --slot-save-path DIR", "not_supported_error", code: "not_supported");
        var body = await JsonRequest.ReadAsync(context.Request, context.RequestAborted);
        string name = body.String("filename") ?? throw ApiException.BadRequest("filename is required: the file's name in the slot folder", "filename");
        if (!PlainFileName().IsMatch(name) || name.Contains("..", StringComparison.Ordinal))
            throw ApiException.BadRequest($"filename '{name}' is not a plain file name; expected letters, digits, '.', '-' and '_' " +
                "(not first), at most 200 characters, no '..', no folders", "filename", "invalid_filename");
        string directory = Path.GetFullPath(saveDirectory);
        string path = Path.GetFullPath(Path.Combine(directory, name));
        if (Path.GetDirectoryName(path) != directory.TrimEnd(Path.DirectorySeparatorChar))
            throw ApiException.BadRequest($"filename '{name}' leaves the slot folder", "filename", "invalid_filename");
        return (name, path);
    }
}
