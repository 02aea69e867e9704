using System.Text.Json;

namespace ClockLM.Server;

/// <summary>
/// The request fields each endpoint reads, so that every other field is a 400 naming it: a client never gets an
/// answer that quietly ignored what it asked for. A few OpenAI fields are accepted only at the value that changes
/// nothing (<c>n</c> 1, <c>echo</c> false, a penalty of 0, an empty <c>logit_bias</c>).
/// </summary>
internal sealed class RequestFields
{
    private readonly HashSet<string> _read;
    private readonly Dictionary<string, (Func<JsonElement, bool> IsNeutral, string Expected)> _neutral;

    private RequestFields(string endpoint, string[] read, (string Name, Func<JsonElement, bool> IsNeutral, string Expected)[] neutral)
    {
        Endpoint = endpoint;
        _read = [.. read];
        _neutral = neutral.ToDictionary(n => n.Name, n => (n.IsNeutral, n.Expected));
    }

    /// <summary>The endpoint's path, for messages.</summary>
    public string Endpoint { get; }

    private static readonly string[] Sampling = ["model", "max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed",
        "stop", "stream", "stream_options", "logprobs", "n", "response_format", "grammar", "json_schema", "clocklm", "user", "n_keep", "cache_prompt",
        "lora"];

    private static bool IsZero(JsonElement v) => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0;
    private static bool IsEmptyObject(JsonElement v) => v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any();

    private static readonly (string, Func<JsonElement, bool>, string)[] NeutralPenalties =
    [
        ("frequency_penalty", IsZero, "0 (frequency penalties are not supported; repeat_penalty is)"),
        ("presence_penalty", IsZero, "0 (presence penalties are not supported; repeat_penalty is)"),
        ("logit_bias", IsEmptyObject, "{} (logit bias is not supported)"),
    ];

    /// <summary><c>/v1/chat/completions</c>.</summary>
    public static readonly RequestFields Chat = new("/v1/chat/completions",
        [.. Sampling, "messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls"],
        [.. NeutralPenalties,
         ("store", v => v.ValueKind == JsonValueKind.False, "false (responses are not stored)"),
         ("modalities", v => v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(m => m.ValueKind == JsonValueKind.String && m.GetString() == "text"), "[\"text\"] (this model writes text only)")]);

    /// <summary><c>/v1/completions</c>.</summary>
    public static readonly RequestFields Completions = new("/v1/completions",
        [.. Sampling, "prompt"],
        [.. NeutralPenalties,
         ("best_of", v => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int b) && b == 1, "1 (best_of is not supported)"),
         ("echo", v => v.ValueKind == JsonValueKind.False, "false (echoing the prompt is not supported)"),
         ("suffix", v => v.ValueKind == JsonValueKind.String && v.GetString() == "", "\"\" (insertion with a suffix is not supported)")]);

    /// <summary><c>/v1/embeddings</c>.</summary>
    public static readonly RequestFields Embeddings = new("/v1/embeddings", ["model", "input", "encoding_format", "dimensions", "user"], []);

    /// <summary><c>/tokenize</c>.</summary>
    public static readonly RequestFields Tokenize = new("/tokenize", ["content", "add_special", "with_pieces", "parse_special"], []);

    /// <summary><c>/detokenize</c>.</summary>
    public static readonly RequestFields Detokenize = new("/detokenize", ["tokens"], []);

    /// <summary>The fields of one chat message.</summary>
    public static readonly RequestFields Message = new("message", ["role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content"],
        [("refusal", v => v.ValueKind == JsonValueKind.Null, "null")]);

    /// <summary>The fields of <c>stream_options</c>.</summary>
    public static readonly RequestFields StreamOptions = new("stream_options", ["include_usage"], []);

    /// <summary>The fields of the <c>clocklm</c> extension object.</summary>
    public static readonly RequestFields Extension = new("clocklm", ["clock_summary", "top_k", "ignore_eos", "steer"], []);

    /// <summary>Throws a 400 naming the first field of <paramref name="body"/> this endpoint does not read (or reads
    /// only at a neutral value it does not have). <paramref name="prefix"/> names a nested object in the message.</summary>
    public void Check(JsonRequest body, string prefix = "")
    {
        foreach (var property in body.Root.EnumerateObject())
        {
            string name = property.Name;
            if (_read.Contains(name)) continue;
            if (property.Value.ValueKind == JsonValueKind.Null) continue; // null is the same as absent
            string field = prefix + name;
            if (_neutral.TryGetValue(name, out var neutral))
            {
                if (neutral.IsNeutral(property.Value)) continue;
                throw ApiException.BadRequest($"{field} is not supported by ClockLM; expected it absent or {neutral.Expected}", field, "unsupported_field");
            }
            throw ApiException.BadRequest($"{field} is not a field {Endpoint} accepts; ClockLM reads {string.Join(", ", _read.Order())}", field, "unsupported_field");
        }
    }
}
