using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ClockLM.Server;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Server;

/// <summary>A key-less server on a laptop: where it listens, who may call it (Host, Content-Type, CORS), text that is
/// not text, and the status codes of wrong methods.</summary>
public sealed class ServerHardeningTests
{
    private static ByteArrayContent JsonBytes(byte[] body, string type = "application/json")
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
        return content;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Error)> SendAsync(HttpClient http, HttpRequestMessage request)
    {
        using var response = await http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        var body = JsonDocument.Parse(text).RootElement;
        return (response.StatusCode, body.TryGetProperty("error", out var e) ? e : body);
    }

    private static Task<(HttpStatusCode Status, JsonElement Error)> PostAsync(HttpClient http, string path, byte[] body, string type = "application/json") =>
        SendAsync(http, new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonBytes(body, type) });

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("::1", true)]
    [InlineData("[::1]", true)]
    [InlineData("0.0.0.0", true)]
    [InlineData("localhost", true)]
    [InlineData("localhst", false)]
    [InlineData("not a host", false)]
    [InlineData("999.1.1.1", false)]
    [InlineData("127.1", false)]
    [InlineData("", false)]
    public void HostMustBeAnIpAddressOrLocalhost(string host, bool accepted)
    {
        Assert.Equal(accepted, ServerOptions.CheckHost(host) is null);
        if (!accepted) Assert.Contains($"'{host}'", ServerOptions.CheckHost(host));
    }

    [Fact]
    public void ServeRefusesAMistypedHost()
    {
        var result = ClockLMProcess.Run(TimeSpan.FromSeconds(60), "serve", "-m", SharedData.Stories260K, "--host", "localhst", "--port", "0", "-t", "1");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--host: the host is 'localhst'; expected an IP address", result.StdErr);
        Assert.DoesNotContain("listening", result.StdOut);
    }

    [Fact]
    public async Task ServeWarnsWhenListeningOffLoopbackWithoutAnApiKey()
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "clocklm.dll"));
        foreach (var a in new[] { "serve", "-m", SharedData.Stories260K, "--host", "0.0.0.0", "--port", "0", "-t", "1", "--parallel", "1" })
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        try
        {
            string? warning = await process.StandardError.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Assert.StartsWith("warning: listening on 0.0.0.0, which other machines can reach, without --api-key", warning);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
    }

    [Fact]
    public async Task ForeignHostHeaderIsRefusedAndLoopbackNamesAreServed()
    {
        await using var host = await ServerHost.StartAsync();
        foreach (string name in new[] { "evil.example", "evil.example:8080", "127.0.0.1.evil.example", "attacker" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
            request.Headers.Host = name;
            var (status, error) = await SendAsync(host.Http, request);
            Assert.Equal(HttpStatusCode.Forbidden, status);
            Assert.Equal("host_not_allowed", error.GetProperty("code").GetString());
            Assert.Contains($"'{name}'", error.GetProperty("message").GetString());
        }
        foreach (string name in new[] { "localhost", $"localhost:{host.Address.Port}", "127.0.0.1", "[::1]:80" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
            request.Headers.Host = name;
            using var ok = await host.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
    }

    [Fact]
    public async Task AllowedHostsOptionAddsNames()
    {
        await using var host = await ServerHost.StartAsync(server: new ServerOptions { AllowedHosts = ["my-box.lan"] });
        using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
        request.Headers.Host = "my-box.lan:8080";
        Assert.Equal(HttpStatusCode.OK, (await host.Http.SendAsync(request)).StatusCode);
        using var loopback = new HttpRequestMessage(HttpMethod.Get, "/health");
        Assert.Equal(HttpStatusCode.Forbidden, (await host.Http.SendAsync(loopback)).StatusCode); // the list replaces the default
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    [InlineData("application/json; charset=latin1")]
    public async Task PostBodiesMustBeDeclaredJson(string type)
    {
        await using var host = await ServerHost.StartAsync();
        var (status, error) = await PostAsync(host.Http, "/v1/completions", """{"prompt":"hi","max_tokens":1}"""u8.ToArray(), type);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, status);
        Assert.Equal("unsupported_media_type", error.GetProperty("code").GetString());
        Assert.Equal(0, host.Scheduler.Stats.Completed);
        using var untyped = new HttpRequestMessage(HttpMethod.Post, "/tokenize") { Content = new ByteArrayContent("""{"content":"a"}"""u8.ToArray()) };
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await SendAsync(host.Http, untyped)).Status);
        var (okStatus, _) = await PostAsync(host.Http, "/tokenize", """{"content":"a"}"""u8.ToArray(), "application/json; charset=utf-8");
        Assert.Equal(HttpStatusCode.OK, okStatus);
    }

    [Fact]
    public async Task CorsIsOffUnlessAnOriginIsGiven()
    {
        await using (var host = await ServerHost.StartAsync())
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Origin", "http://evil.example" } } };
            using var response = await host.Http.SendAsync(request);
            Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
            using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions")
            {
                Headers = { { "Origin", "http://evil.example" }, { "Access-Control-Request-Method", "POST" } },
            };
            using var refused = await host.Http.SendAsync(preflight);
            Assert.False(refused.Headers.Contains("Access-Control-Allow-Origin"));
            Assert.Equal(HttpStatusCode.MethodNotAllowed, refused.StatusCode);
        }
        await using (var host = await ServerHost.StartAsync(server: new ServerOptions { CorsOrigin = "http://localhost:3000", ApiKey = "k" }))
        {
            using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions")
            {
                Headers = { { "Origin", "http://localhost:3000" }, { "Access-Control-Request-Method", "POST" } },
            };
            using var allowed = await host.Http.SendAsync(preflight);
            Assert.Equal(HttpStatusCode.NoContent, allowed.StatusCode); // before the API key: browsers send none in a preflight
            Assert.Equal("http://localhost:3000", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
            Assert.Contains("Authorization", allowed.Headers.GetValues("Access-Control-Allow-Headers").Single());
            using var other = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Origin", "http://evil.example" }, { "Authorization", "Bearer k" } } };
            using var otherResponse = await host.Http.SendAsync(other);
            Assert.False(otherResponse.Headers.Contains("Access-Control-Allow-Origin"));
        }
    }

    /// <summary>UTF-8 text and raw bytes, in order.</summary>
    private static byte[] Raw(params object[] parts) =>
        parts.SelectMany(p => p is string s ? Encoding.UTF8.GetBytes(s) : [(byte)(int)p]).ToArray();

    public static TheoryData<string, byte[], string> NotText => new()
    {
        { "/v1/chat/completions", """{"messages":[{"role":"user","content":"a\ud800b"}]}"""u8.ToArray(), "messages[0].content" },
        { "/v1/chat/completions", """{"messages":[{"role":"user","content":[{"type":"text","text":"\udc00"}]}]}"""u8.ToArray(), "text" },
        { "/v1/chat/completions", Raw("{\"messages\":[{\"role\":\"user\",\"content\":\"a", 0xFF, 0xFE, "\"}]}"), "messages[0].content" },
        { "/v1/completions", """{"prompt":"\ud83d","max_tokens":1}"""u8.ToArray(), "prompt" },
        { "/v1/completions", """{"prompt":["ok","\udfff"],"max_tokens":1}"""u8.ToArray(), "prompt" },
        { "/v1/completions", """{"prompt":"hi","stop":"\ud800","max_tokens":1}"""u8.ToArray(), "stop" },
        { "/v1/embeddings", """{"input":"\ud800"}"""u8.ToArray(), "input" },
        { "/tokenize", """{"content":"\ud83d"}"""u8.ToArray(), "content" },
        { "/tokenize", Raw("{\"content\":\"x", 0xC3, 0x28, "\"}"), "content" },
        { "/v1/completions", """{"model":"\ud800","prompt":"hi"}"""u8.ToArray(), "model" },
    };

    [Theory]
    [MemberData(nameof(NotText))]
    public async Task LoneSurrogatesAndInvalidUtf8AreA400NamingTheField(string path, byte[] body, string field)
    {
        await using var host = await ServerHost.StartAsync();
        var (status, error) = await PostAsync(host.Http, path, body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        string message = error.GetProperty("message").GetString()!;
        Assert.Contains(field, message);
        Assert.DoesNotContain("Exception", message);
    }

    [Fact]
    public async Task WrongMethodsHeadAndEmptyInputGetTheirStatus()
    {
        await using var host = await ServerHost.StartAsync();
        foreach (string path in new[] { "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize", "/detokenize" })
        {
            using var get = await host.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.MethodNotAllowed, get.StatusCode);
            Assert.Equal("POST", get.Content.Headers.Allow.Single());
            Assert.Equal("method_not_allowed", JsonDocument.Parse(await get.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        using (var delete = await host.Http.DeleteAsync("/health"))
            Assert.Equal(HttpStatusCode.MethodNotAllowed, delete.StatusCode);
        foreach (string path in new[] { "/health", "/v1/models", "/v1/models/stories260K", "/metrics" })
        {
            using var head = await host.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }
        using (var missing = await host.Http.GetAsync("/v2/nothing"))
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        var (status, error) = await PostAsync(host.Http, "/v1/embeddings", """{"input":[]}"""u8.ToArray());
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("input", error.GetProperty("param").GetString());
    }
}
