using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Models;

namespace ClockLM.Server;

/// <summary>
/// Reads a completion request's steering, ClockLM's extension field
/// <c>"clocklm": {"steer": [{"vector": "NAME", "scale": 4, "layers": [A, B]}, ...]}</c>: each entry adds a control
/// vector the server loaded at start (<c>--steer-dir</c>; requests name vectors, never files), times its scale (default
/// 1), to the residual stream after layers A to B (inclusive; default every layer the vector has), on top of the
/// server's own vectors (<c>--control-vector</c>, the scheduler's steering). The result belongs to the request alone:
/// requests steered differently run side by side, in the same batched steps, without affecting each other.
/// </summary>
internal sealed class SteeringRequest
{
    /// <summary>Most entries one request may list.</summary>
    public const int MaxEntries = 16;

    /// <summary>Largest |scale| accepted.</summary>
    public const double MaxScale = 1000;

    private readonly LlamaConfig _config;
    private readonly IReadOnlyDictionary<string, ControlVector> _vectors;
    private readonly SteeringTerm? _serverTerm;

    /// <summary>A reader of requests to a model of <paramref name="config"/>'s shape, which may name
    /// <paramref name="vectors"/>; <paramref name="serverSteering"/> is what its scheduler steers every request by
    /// (<see cref="SlotSchedulerOptions.Steering"/>), which a request's own steering adds to.</summary>
    public SteeringRequest(LlamaConfig config, IReadOnlyDictionary<string, ControlVector> vectors, ResidualSteering? serverSteering)
    {
        _config = config;
        _vectors = vectors;
        _serverTerm = serverSteering?.AsTerm();
    }

    /// <summary>The steering of <paramref name="body"/>: null when it has no <c>clocklm.steer</c> (the scheduler's
    /// steering applies), else the server's plus the request's entries.</summary>
    /// <exception cref="ApiException">400 naming the entry's field when an entry is malformed or names an unknown vector.</exception>
    public ResidualSteering? Read(JsonRequest body)
    {
        if (body.Object("clocklm")?.Get("steer") is not { } steer) return null;
        const string at = "clocklm.steer";
        if (steer.ValueKind != JsonValueKind.Array) throw JsonRequest.WrongType(at, "an array of {vector, scale, layers}", steer);
        if (steer.GetArrayLength() > MaxEntries)
            throw ApiException.BadRequest($"{at} has {steer.GetArrayLength()} entries; at most {MaxEntries} are accepted", at);
        var terms = new List<SteeringTerm>();
        if (_serverTerm is { } server) terms.Add(server);
        int i = 0;
        foreach (var entry in steer.EnumerateArray())
            terms.Add(ReadEntry(entry, $"{at}[{i++}]"));
        return ResidualSteering.Create(_config, terms);
    }

    private SteeringTerm ReadEntry(JsonElement entry, string at)
    {
        if (entry.ValueKind != JsonValueKind.Object) throw JsonRequest.WrongType(at, "an object {vector, scale, layers}", entry);
        foreach (var field in entry.EnumerateObject())
            if (field.Name is not ("vector" or "scale" or "layers"))
                throw ApiException.BadRequest($"{at}.{field.Name} is not supported; a steering entry has vector, scale and layers", $"{at}.{field.Name}");

        if (!entry.TryGetProperty("vector", out var name) || name.ValueKind != JsonValueKind.String)
            throw ApiException.BadRequest($"{at}.vector is required: the name of a vector the server loaded ({Known()})", $"{at}.vector");
        string vectorName = name.GetString()!;
        if (!_vectors.TryGetValue(vectorName, out var vector))
            throw ApiException.BadRequest($"{at}.vector is '{vectorName}', which this server has not loaded ({Known()})", $"{at}.vector");

        float scale = 1;
        if (entry.TryGetProperty("scale", out var s) && s.ValueKind != JsonValueKind.Null)
        {
            if (s.ValueKind != JsonValueKind.Number) throw JsonRequest.WrongType($"{at}.scale", "a number", s);
            double value = s.GetDouble();
            if (!(Math.Abs(value) <= MaxScale)) throw ApiException.BadRequest($"{at}.scale is {value}; expected a number from {-MaxScale} to {MaxScale}", $"{at}.scale");
            scale = (float)value;
        }

        int first = 0, last = _config.Layers - 1;
        if (entry.TryGetProperty("layers", out var layers) && layers.ValueKind != JsonValueKind.Null)
        {
            if (layers.ValueKind != JsonValueKind.Array || layers.GetArrayLength() != 2
                || layers[0].ValueKind != JsonValueKind.Number || layers[1].ValueKind != JsonValueKind.Number
                || !layers[0].TryGetInt32(out first) || !layers[1].TryGetInt32(out last))
                throw JsonRequest.WrongType($"{at}.layers", "[first, last], two layer numbers", layers);
            if (first < 0 || last < first || last >= _config.Layers)
                throw ApiException.BadRequest($"{at}.layers is [{first}, {last}]; expected 0 <= first <= last <= {_config.Layers - 1}", $"{at}.layers");
        }
        return new SteeringTerm(vector.Directions, scale, first, last);
    }

    private string Known() => _vectors.Count == 0
        ? "none: start the server with --steer-dir DIR"
        : "loaded: " + string.Join(", ", _vectors.Keys.Order(StringComparer.Ordinal));
}
