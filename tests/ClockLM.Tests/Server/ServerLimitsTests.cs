using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Server;

namespace ClockLM.Tests.Server;

/// <summary>Safety: authentication, body and token limits, malformed input, the queue limit, and disconnects.</summary>
public sealed class ServerLimitsTests
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<(HttpStatusCode Status, JsonElement Error)> PostAsync(HttpClient http, string path, string json)
    {
        using var response = await http.PostAsync(path, Json(json));
        var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return (response.StatusCode, body.TryGetProperty("error", out var e) ? e : body);
    }

    [Fact]
    public async Task ApiKeyIsRequiredOnEveryEndpoint()
    {
        await using var host = await ServerHost.StartAsync(server: new ServerOptions { ApiKey = "s3cret" });
        foreach (string path in new[] { "/health", "/v1/models", "/metrics" })
        {
            using var none = await host.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Equal("authentication_error", JsonDocument.Parse(await none.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("type").GetString());
        }
        var (status, _) = await PostAsync(host.Http, "/v1/completions", """{"prompt":"hi","max_tokens":2}""");
        Assert.Equal(HttpStatusCode.Unauthorized, status);

        using var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer s3cres" } } };
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.Http.SendAsync(wrong)).StatusCode);
        using var right = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer s3cret" } } };
        using var ok = await host.Http.SendAsync(right);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("stories260K", JsonDocument.Parse(await ok.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task BodyOverTheLimitGets413AndTheServerGoesOn()
    {
        await using var host = await ServerHost.StartAsync(server: new ServerOptions { MaxRequestBodyBytes = 2000 });
        string big = new('a', 5000);
        var (status, error) = await PostAsync(host.Http, "/v1/completions", $$"""{"prompt":"{{big}}","max_tokens":2}""");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Equal("request_too_large", error.GetProperty("code").GetString());
        Assert.Contains("2000", error.GetProperty("message").GetString());

        // Chunked (no Content-Length): the limit is enforced while reading. Kestrel closes the connection after the
        // 413 since the rest of the body is unread, so the client may see the close before the answer: either way the
        // request is refused.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes($$"""{"prompt":"{{big}}"}""")));
        chunked.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        try
        {
            using var response = await host.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        }
        catch (HttpRequestException e) when (e.InnerException is HttpIOException or IOException)
        {
        }
        Assert.Equal(0, host.Scheduler.Stats.PromptTokens); // nothing of the refused body reached the model

        var (after, _) = await PostAsync(host.Http, "/v1/completions", """{"prompt":"hi","max_tokens":2}""");
        Assert.Equal(HttpStatusCode.OK, after);
    }

    [Fact]
    public async Task BadRequestsGet400InOpenAiErrorShapeNamingTheField()
    {
        await using var host = await ServerHost.StartAsync();
        var cases = new (string Path, string Body, string? Param, string MessagePart)[]
        {
            ("/v1/chat/completions", "{\"messages\": [", null, "not valid JSON"),
            ("/v1/chat/completions", "[1,2]", null, "JSON object"),
            ("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"temperature":"hot"}""", "temperature", "a number"),
            ("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"temperature":3}""", "temperature", "0 to 2"),
            ("/v1/chat/completions", """{"messages":[{"role":"wizard","content":"hi"}]}""", "messages[0].role", "wizard"),
            ("/v1/chat/completions", """{"messages":[]}""", "messages", "at least one"),
            ("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_tokens":0}""", "max_tokens", "from 1"),
            ("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"n_keep":-2}""", "n_keep", "from -1"),
            ("/v1/completions", $$"""{"prompt":"{{string.Concat(Enumerable.Repeat("and the dog ", 300))}}"}""", "prompt", "context holds 512"),
            ("/v1/completions", """{"prompt":[1,2,99999]}""", "prompt", "99999"),
            ("/detokenize", """{"tokens":[-1]}""", "tokens", "-1"),
        };
        foreach (var c in cases)
        {
            var (status, error) = await PostAsync(host.Http, c.Path, c.Body);
            Assert.True(status == HttpStatusCode.BadRequest, $"{c.Body[..Math.Min(60, c.Body.Length)]}: {status}");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal(c.Param, error.GetProperty("param").GetString());
            Assert.Contains(c.MessagePart, error.GetProperty("message").GetString());
        }
        var (missing, notFound) = await PostAsync(host.Http, "/v1/nothing", "{}");
        Assert.Equal(HttpStatusCode.NotFound, missing);
        Assert.Equal("unknown_url", notFound.GetProperty("code").GetString());
        using var health = await host.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task FullQueueGets503WithRetryAfterAndQueuedRequestsFinishLater()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, QueueCapacity = 2 },
            new ServerOptions { RetryAfterSeconds = 3 });
        host.Scheduler.Pause(); // nothing leaves the queue, so it fills deterministically
        const string body = """{"prompt":"Once upon a time","max_tokens":5,"temperature":0}""";
        var queued = new[] { host.Http.PostAsync("/v1/completions", Json(body)), host.Http.PostAsync("/v1/completions", Json(body)) };
        for (int i = 0; i < 200 && host.Scheduler.Stats.QueueDepth < 2; i++) await Task.Delay(25);
        Assert.Equal(2, host.Scheduler.Stats.QueueDepth);

        using var rejected = await host.Http.PostAsync("/v1/completions", Json(body));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, rejected.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(3), rejected.Headers.RetryAfter?.Delta);
        var error = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("queue_full", error.GetProperty("code").GetString());

        host.Scheduler.Resume();
        foreach (var t in queued)
        {
            using var r = await t;
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        Assert.Equal(1, host.Scheduler.Stats.Rejected);
        string metrics = await host.Http.GetStringAsync("/metrics");
        Assert.Contains("clocklm_requests_rejected_total 1\n", metrics);
        Assert.Contains("clocklm_http_requests_total{path=\"/v1/completions\",status=\"503\"} 1\n", metrics);
    }

    [Fact]
    public async Task ClientThatDisconnectsCancelsItsGenerationAndFreesTheSlot()
    {
        // ignore_eos keeps the story going to max_tokens: 16000 steps, far longer than the client stays, even on a
        // machine busy with other tests (4000 could finish before the server saw the connection close).
        const int maxTokens = 16000;
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, ContextLength = 16384 });
        const string body = """{"prompt":"Once upon a time","max_tokens":16000,"stream":true,"clocklm":{"ignore_eos":true}}""";
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Json(body) })
        using (var response = await host.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            string? first = await reader.ReadLineAsync();
            Assert.StartsWith("data: ", first);
        } // disposing the response closes the connection

        var stats = host.Scheduler.Stats;
        for (int i = 0; i < 400 && (stats.Cancelled == 0 || stats.ActiveSlots > 0); i++)
        {
            await Task.Delay(10);
            stats = host.Scheduler.Stats;
        }
        Assert.Equal(1, stats.Cancelled);
        Assert.Equal(0, stats.Completed);
        Assert.Equal(0, stats.ActiveSlots);
        Assert.True(stats.GeneratedTokens < maxTokens, $"{stats.GeneratedTokens} tokens were generated after the client left");

        // The slot is free for the next request.
        using var next = await host.Http.PostAsync("/v1/completions", Json("""{"prompt":"Once","max_tokens":3}"""));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task SchedulerCancellationEndsAJobWithinARoundAndReportsCancelled()
    {
        using var model = ClockLM.Models.Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 1, ContextLength = 4096 });
        using var cancel = new CancellationTokenSource();
        var job = scheduler.Submit(new CompletionRequest { PromptIds = [1, 403], MaxTokens = 4000, IgnoreEndOfGeneration = true }, cancel.Token);
        await job.Updates.ReadAsync(); // the first token is out
        cancel.Cancel();
        var result = await job.Result.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(FinishReason.Cancelled, result.Finish);
        Assert.InRange(result.CompletionTokens, 1, 3999);
        Assert.Equal(0, scheduler.Stats.ActiveSlots);
    }
}
