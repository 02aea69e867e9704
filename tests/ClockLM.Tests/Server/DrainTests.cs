using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;

namespace ClockLM.Tests.Server;

/// <summary>A draining server fails its health check, refuses new requests and finishes the streams in flight.</summary>
public sealed class DrainTests
{
    private const int Tokens = 1500;

    private static HttpRequestMessage StreamRequest(string prompt) => new(HttpMethod.Post, "/v1/completions")
    {
        Content = new StringContent(JsonSerializer.Serialize(new { prompt, max_tokens = Tokens, seed = 4, stream = true, stream_options = new { include_usage = true }, clocklm = new { ignore_eos = true } }),
            Encoding.UTF8, "application/json"),
    };

    /// <summary>Reads an SSE stream: after its first chunk calls <paramref name="started"/>, and returns the joined text,
    /// the tokens the usage reports and whether it ended with [DONE].</summary>
    private static async Task<(string Text, int Tokens, bool Done)> ReadStreamAsync(HttpResponseMessage response, Func<Task> started)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        int tokens = -1;
        bool first = true;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            if (line == "data: [DONE]") return (text.ToString(), tokens, true);
            var chunk = JsonDocument.Parse(line[6..]).RootElement;
            var choices = chunk.GetProperty("choices");
            if (choices.GetArrayLength() > 0) text.Append(choices[0].GetProperty("text").GetString());
            if (chunk.TryGetProperty("usage", out var usage)) tokens = usage.GetProperty("completion_tokens").GetInt32();
            if (first) { first = false; await started(); }
        }
        return (text.ToString(), tokens, false);
    }

    /// <remarks>The built-in model, not stories260K: its 1,500 tokens take most of a second, so the stream is surely
    /// still running while the checks inside it make their requests (stories260K's take ~50 ms, and the first requests
    /// of a process can take longer than that).</remarks>
    [Fact]
    public async Task ADrainingServerFailsHealthRefusesNewRequestsAndFinishesItsStreams()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 2, ContextLength = 2048 }, modelPath: ClockLM.Models.BuiltInModel.Path);
        Assert.Equal(HttpStatusCode.OK, (await host.Http.GetAsync("/health")).StatusCode);
        using var response = await host.Http.SendAsync(StreamRequest("Once upon a time"), HttpCompletionOption.ResponseHeadersRead);
        Task<int>? drain = null;
        var (text, tokens, done) = await ReadStreamAsync(response, async () =>
        {
            drain = host.Server.DrainAsync(TimeSpan.FromSeconds(60));
            using var health = await host.Http.GetAsync("/health");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
            Assert.Contains("\"draining\"", await health.Content.ReadAsStringAsync());
            using var refused = await host.Http.PostAsync("/v1/completions", new StringContent("""{"prompt":"Hi","max_tokens":2}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.True(refused.Headers.ConnectionClose, "a refused request should close its connection");
            Assert.Contains("server_draining", await refused.Content.ReadAsStringAsync());
            Assert.False(drain.IsCompleted, "the drain ended while a stream was running");
        });
        Assert.True(done, "the stream in flight was cut off");
        Assert.Equal(Tokens, tokens);
        // The same request answered by a server that never drained.
        await using var other = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, ContextLength = 2048 }, modelPath: ClockLM.Models.BuiltInModel.Path);
        using var again = await other.Http.SendAsync(StreamRequest("Once upon a time"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(text, (await ReadStreamAsync(again, () => Task.CompletedTask)).Text);
        Assert.Equal(0, await drain!.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task ServeExitsOnSigtermAfterItsStreamsEnd()
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "clocklm.dll"));
        foreach (var a in new[] { "serve", "-m", SharedData.Stories260K, "--port", "0", "-t", "1", "--parallel", "1", "--ctx", "2048" })
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            string? firstLine = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            var match = System.Text.RegularExpressions.Regex.Match(firstLine ?? "", @"listening on (http://127\.0\.0\.1:\d+/)");
            Assert.True(match.Success, firstLine);
            using var http = new HttpClient { BaseAddress = new Uri(match.Groups[1].Value), Timeout = TimeSpan.FromSeconds(60) };
            using var response = await http.SendAsync(StreamRequest("Once upon a time"), HttpCompletionOption.ResponseHeadersRead);
            var (text, tokens, done) = await ReadStreamAsync(response, () =>
            {
                using var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                kill.WaitForExit();
                return Task.CompletedTask;
            });
            Assert.True(done, "the stream was cut off by SIGTERM");
            Assert.Equal(Tokens, tokens);
            Assert.True(process.WaitForExit(30_000), "the server did not exit after its stream ended");
            Assert.Equal(0, process.ExitCode);
            Assert.Contains("draining", await stderr);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
