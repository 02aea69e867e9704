using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Tests.Server;
using CsCheck;
using Xunit.Abstractions;

namespace ClockLM.Tests.Fuzzing;

/// <summary>The server's request parser on random JSON: every request to every endpoint is answered with a documented
/// status, and every error in OpenAI's shape; never a 500.</summary>
public sealed class RequestFuzzTests(ITestOutputHelper output)
{
    internal static readonly string[] Paths = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize", "/detokenize"];

    internal static readonly string[] Fields =
    [
        "model", "messages", "prompt", "input", "content", "tokens", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "top_k", "min_p", "repeat_penalty", "seed", "stop", "stream", "stream_options", "logprobs", "top_logprobs", "n",
        "encoding_format", "dimensions", "add_special", "with_pieces", "parse_special", "clocklm", "role", "text", "type",
        "include_usage", "clock_summary", "ignore_eos", "name", "tool_call_id",
    ];

    private static readonly Gen<string> Leaves = Gen.OneOf<string>(
        Gen.OneOf<string>("null", "true", "false", "0", "1", "-1", "2", "0.5", "-0", "1e308", "1e400", "-1e400", "3.5e-320", "65",
            "2147483647", "2147483648", "9223372036854775808", "-9223372036854775809", "\"\"", "\"Once upon a time\"", "\"user\"",
            "\"assistant\"", "\"system\"", "\"text\"", "\"float\"", "\"base64\"", "\"stories260K\"", "\"\\ud800\"", "\"\\udc00x\"",
            "\"\\u0000\"", "\"\\n\"", "\"<s>\"", "\"</s>\"", "[]", "{}", "[1,2,3]", "[[]]", "[\"a\",\"b\"]",
            """[{"role":"user","content":"hi"}]"""),
        Gen.Int.Select(i => i.ToString()),
        Gen.String[0, 30].Select(s => JsonSerializer.Serialize(s)));

    private static Gen<string> Value(int depth) => depth == 0 ? Leaves : Gen.OneOf<string>(
        Leaves,
        Value(depth - 1).Array[0, 5].Select(items => "[" + string.Join(",", items) + "]"),
        Gen.Select(Gen.OneOf<string>(Gen.OneOf<string>(Fields), Gen.String[0, 8]), Value(depth - 1)).Array[0, 5]
            .Select(pairs => "{" + string.Join(",", pairs.Select(p => JsonSerializer.Serialize(p.Item1) + ":" + p.Item2)) + "}"));

    /// <summary>A request: an endpoint and a body (mostly an object of known fields, sometimes any JSON or bytes).</summary>
    internal static readonly Gen<(string Path, byte[] Body)> Requests = Gen.Select(
        Gen.OneOf<string>(Paths),
        Gen.OneOf<byte[]>(
            Gen.Select(Gen.OneOf<string>(Fields), Value(2)).Array[0, 8]
                .Select(pairs => Encoding.UTF8.GetBytes("{" + string.Join(",", pairs.Select(p => $"\"{p.Item1}\":{p.Item2}")) + "}")),
            Value(3).Select(Encoding.UTF8.GetBytes),
            Gen.Byte.Array[0, 64]));

    /// <summary>Statuses the API documents for a malformed or refused request (besides 200).</summary>
    internal static readonly HttpStatusCode[] Documented =
    [
        HttpStatusCode.OK, HttpStatusCode.BadRequest, HttpStatusCode.NotFound, HttpStatusCode.MethodNotAllowed,
        HttpStatusCode.RequestEntityTooLarge, HttpStatusCode.UnsupportedMediaType, HttpStatusCode.ServiceUnavailable,
    ];

    /// <summary>Checks an answer: a documented status, and a non-200 body in OpenAI's error shape.</summary>
    internal static void AssertAnswered(HttpStatusCode status, string body, string request)
    {
        Assert.True(Documented.Contains(status), $"{(int)status} for {request}: {body}");
        if (status == HttpStatusCode.OK) return;
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal(JsonValueKind.String, error.GetProperty("message").ValueKind);
        Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
        Assert.True(error.TryGetProperty("param", out _) && error.TryGetProperty("code", out _), body);
    }

    [Fact]
    public async Task EveryRandomRequestGetsADocumentedAnswer()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 2, ContextLength = 64 });
        FuzzBudget.Run(output, "request parser", Requests, request =>
        {
            using var content = new ByteArrayContent(request.Body);
            content.Headers.ContentType = new("application/json");
            using var response = host.Http.PostAsync(request.Path, content).GetAwaiter().GetResult();
            string body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            AssertAnswered(response.StatusCode, body, $"{request.Path} {Encoding.UTF8.GetString(request.Body)}");
        }, print: r => $"{r.Path} {Encoding.UTF8.GetString(r.Body)}");
    }
}
