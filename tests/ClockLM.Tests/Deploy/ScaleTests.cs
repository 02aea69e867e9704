using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace ClockLM.Tests.Deploy;

/// <summary>
/// Three replicas of `clocklm serve` behind HAProxy with deploy/haproxy/haproxy.cfg as shipped: twelve conversations
/// run at once while one replica is restarted (SIGTERM mid-stream, drain, start again); half name their session in the
/// X-Session-Id header, half in the OpenAI "user" field. Opt-in:
/// <c>CLOCKLM_SCALE_TEST=1</c>; needs /usr/sbin/haproxy (Debian's haproxy package).
/// </summary>
public sealed class ScaleTests(ITestOutputHelper output)
{
    private const int Conversations = 12, Turns = 5, MaxTokens = 200;
    private const string Haproxy = "/usr/sbin/haproxy";

    /// <summary>One answered turn: which replica served it, when it was sent, and what came back.</summary>
    private sealed record Turn(int Conversation, int Index, string Server, long SentAt, int PromptTokens, int CachedTokens,
        string Text, string? Finish, bool Done, string? Error);

    [OptInFact("CLOCKLM_SCALE_TEST", "3 replicas behind HAProxy")]
    public async Task TwelveConversationsKeepTheirReplicaAndCacheWhileOneReplicaRestarts()
    {
        Assert.True(File.Exists(Haproxy), $"{Haproxy} is missing: apt-get install haproxy");
        var replicas = new ServeProcess[3];
        Process? haproxy = null;
        try
        {
            for (int i = 0; i < replicas.Length; i++) replicas[i] = await ServeProcess.StartAsync(0, ServeProcess.Replica(Conversations));
            int listen = FreePort();
            haproxy = StartHaproxy(listen, replicas.Select(r => r.Port).ToArray());
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{listen}/"), Timeout = TimeSpan.FromMinutes(2) };
            await WaitUntilAsync(async () => (await TryGetAsync(http, "health")) == HttpStatusCode.OK, "HAProxy to answer");
            await Task.Delay(5000); // two health checks (rise 2, inter 1s) bring every replica up, with room for a busy machine

            var turns = new ConcurrentBag<Turn>();
            var firstTurns = new CountdownEvent(Conversations);
            var targetStreaming = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            string? target = null; // the replica to restart, chosen once every conversation has had its first turn
            long sigtermAt = long.MaxValue;

            async Task Converse(int c)
            {
                var messages = new JsonArray { Message("system", "You tell short stories."), Message("user", Opening(c)) };
                for (int t = 0; t < Turns; t++)
                {
                    var turn = await TurnAsync(http, c, t, messages, onFirstChunk: server =>
                    {
                        if (t >= 1 && server == Volatile.Read(ref target)) targetStreaming.TrySetResult();
                    });
                    turns.Add(turn);
                    if (t == 0) firstTurns.Signal();
                    if (turn.Error is not null) return;
                    messages.Add(Message("assistant", turn.Text));
                    messages.Add(Message("user", $"And then what happened on day {t + 2}?"));
                    await Task.Delay(150);
                }
            }

            async Task RestartOne()
            {
                await Task.Run(() => firstTurns.Wait(TimeSpan.FromMinutes(2)));
                if (turns.FirstOrDefault(x => x.Error is not null) is { } failed)
                    throw new InvalidOperationException($"conversation {failed.Conversation} turn {failed.Index + 1} on {failed.Server}: {failed.Error}");
                // The replica that serves the most conversations.
                string chosen = turns.Where(x => x.Index == 0).GroupBy(x => x.Server).OrderByDescending(g => g.Count()).First().Key;
                Volatile.Write(ref target, chosen);
                await targetStreaming.Task.WaitAsync(TimeSpan.FromMinutes(2));
                int index = int.Parse(chosen["replica".Length..]) - 1;
                int port = replicas[index].Port;
                Interlocked.Exchange(ref sigtermAt, Stopwatch.GetTimestamp());
                replicas[index].Terminate();
                var (exitCode, stderr) = await replicas[index].WaitForExitAsync(TimeSpan.FromMinutes(1));
                Assert.True(exitCode == 0, $"{chosen} exited with {exitCode}: {stderr}");
                Assert.Contains("draining", stderr);
                await replicas[index].DisposeAsync();
                replicas[index] = await ServeProcess.StartAsync(port, ServeProcess.Replica(Conversations));
            }

            await Task.WhenAll([.. Enumerable.Range(0, Conversations).Select(Converse), RestartOne()]);

            // No failed or truncated answer.
            var all = turns.OrderBy(x => x.Conversation).ThenBy(x => x.Index).ToList();
            Assert.All(all, x => Assert.True(x.Error is null && x.Done && x.Finish is not null,
                $"conversation {x.Conversation} turn {x.Index + 1} on {x.Server}: {x.Error ?? (x.Done ? "no finish reason" : "no [DONE]")}"));
            Assert.Equal(Conversations * Turns, all.Count);

            // Every turn served by the same replica process as the one before reused that turn's whole prompt. A turn may
            // change process only in a conversation of the restarted replica.
            string table = string.Join("\n", all.Select(x => $"conversation {x.Conversation} turn {x.Index + 1}: {x.Server} " +
                $"(process {(x.Server == target && x.SentAt > sigtermAt ? "new" : "first")}), prompt {x.PromptTokens}, cached {x.CachedTokens}"));
            output.WriteLine($"restarted {target}\n{table}");
            int moved = 0;
            int Instance(Turn x) => x.Server == target && x.SentAt > sigtermAt ? 1 : 0;
            foreach (var conversation in all.GroupBy(x => x.Conversation))
            {
                var list = conversation.ToList();
                for (int t = 1; t < list.Count; t++)
                {
                    Turn before = list[t - 1], now = list[t];
                    if (now.Server == before.Server && Instance(now) == Instance(before))
                        Assert.True(now.CachedTokens >= before.PromptTokens,
                            $"conversation {now.Conversation} turn {t + 1} on {now.Server} reused {now.CachedTokens} tokens; the turn before had {before.PromptTokens}\n{table}");
                    else
                    {
                        moved++;
                        Assert.True(before.Server == target || now.Server == target,
                            $"conversation {now.Conversation} moved from {before.Server} to {now.Server} though neither was restarted\n{table}");
                    }
                }
            }
            Assert.True(moved > 0, "no conversation changed replica: the restart did not happen during the run");
            output.WriteLine($"{moved} turns changed replica process");

            // The same conversations on one replica, one after another, give the same answers.
            await using var single = await ServeProcess.StartAsync(0, ServeProcess.Replica(1));
            using var direct = new HttpClient { BaseAddress = single.Address, Timeout = TimeSpan.FromMinutes(2) };
            foreach (var conversation in all.GroupBy(x => x.Conversation))
            {
                int c = conversation.Key;
                var messages = new JsonArray { Message("system", "You tell short stories."), Message("user", Opening(c)) };
                foreach (var scaled in conversation)
                {
                    var alone = await TurnAsync(direct, c, scaled.Index, messages, _ => { });
                    Assert.Equal(alone.Text, scaled.Text);
                    messages.Add(Message("assistant", alone.Text));
                    messages.Add(Message("user", $"And then what happened on day {scaled.Index + 2}?"));
                }
            }
        }
        finally
        {
            if (haproxy is { HasExited: false }) haproxy.Kill();
            haproxy?.Dispose();
            foreach (var r in replicas) if (r is not null) await r.DisposeAsync();
        }
    }

    [OptInFact("CLOCKLM_SCALE_TEST", "the container build's publish step")]
    public async Task ThePublishedImageContentsServeWithTheDockerfilesEntrypoint()
    {
        // What deploy/Dockerfile runs, without a container engine: its publish step (restored already here), then its
        // entrypoint from the published folder, on loopback and a free port instead of 0.0.0.0:8080.
        string dockerfile = File.ReadAllText(Path.Combine(SharedData.RepoRoot, "deploy", "Dockerfile"));
        string publish = System.Text.RegularExpressions.Regex.Match(dockerfile, @"^RUN (dotnet publish .*) -o /app$", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value;
        string[] entrypoint = JsonSerializer.Deserialize<string[]>(System.Text.RegularExpressions.Regex.Match(dockerfile, @"^ENTRYPOINT (\[.*\])$", System.Text.RegularExpressions.RegexOptions.Multiline).Groups[1].Value)!;
        using var dir = new TempDir();
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = SharedData.RepoRoot, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in publish.Split(' ')[1..]) info.ArgumentList.Add(a);
        foreach (var a in new[] { "-o", dir.Path, "--no-restore" }) info.ArgumentList.Add(a);
        using (var build = Process.Start(info)!)
        {
            var log = build.StandardOutput.ReadToEndAsync();
            _ = build.StandardError.ReadToEndAsync();
            await build.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(8));
            Assert.True(build.ExitCode == 0, await log);
        }
        Assert.Equal(["dotnet", "/app/clocklm.dll", "serve", "--host", "0.0.0.0", "--port", "8080"], entrypoint);
        string[] arguments = [.. entrypoint[2..^4], "--host", "127.0.0.1", "-m", SharedData.Stories260K, "-t", "1"];
        await using var server = await ServeProcess.StartAsync(0, arguments, dll: Path.Combine(dir.Path, "clocklm.dll"));
        using var http = new HttpClient { BaseAddress = server.Address };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
        using var answer = await http.PostAsync("v1/completions", new StringContent("""{"prompt":"Once upon a time","max_tokens":8}""", Encoding.UTF8, "application/json"));
        Assert.True(answer.IsSuccessStatusCode, await answer.Content.ReadAsStringAsync());
        Assert.True(File.Exists(Path.Combine(dir.Path, "models", "clocklm-kjv.gguf")), "the built-in model is not in the image");
    }

    private static string Opening(int c) => $"Tell me about a {(c % 3 == 0 ? "cat" : c % 3 == 1 ? "dog" : "bird")} named {(char)('A' + c)}ob.";

    private static JsonObject Message(string role, string content) => new() { ["role"] = role, ["content"] = content };

    /// <summary>One streamed chat turn through <paramref name="http"/> with the conversation's session header.</summary>
    private static async Task<Turn> TurnAsync(HttpClient http, int c, int t, JsonArray messages, Action<string> onFirstChunk)
    {
        long sent = Stopwatch.GetTimestamp();
        var body = new JsonObject
        {
            ["messages"] = messages.DeepClone(),
            ["max_tokens"] = MaxTokens,
            ["temperature"] = 1.0,
            ["seed"] = 100 * c + t,
            ["stream"] = true,
            ["stream_options"] = new JsonObject { ["include_usage"] = true },
        };
        if (c % 2 == 1) body["user"] = $"conversation-{c}";
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        if (c % 2 == 0) request.Headers.Add("X-Session-Id", $"conversation-{c}");
        string server = "";
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            server = response.Headers.TryGetValues("X-Served-By", out var names) ? names.Single() : "direct";
            if (!response.IsSuccessStatusCode)
                return new Turn(c, t, server, sent, 0, 0, "", null, false, $"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var text = new StringBuilder();
            string? finish = null;
            int prompt = -1, cached = -1;
            bool first = true;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                if (line == "data: [DONE]") return new Turn(c, t, server, sent, prompt, cached, text.ToString(), finish, true, null);
                var chunk = JsonNode.Parse(line[6..])!;
                if (first) { first = false; onFirstChunk(server); }
                if (chunk["choices"] is JsonArray { Count: > 0 } choices)
                {
                    text.Append(choices[0]!["delta"]?["content"]?.GetValue<string>());
                    finish ??= choices[0]!["finish_reason"]?.GetValue<string>();
                }
                if (chunk["usage"] is JsonObject usage)
                    (prompt, cached) = (usage["prompt_tokens"]!.GetValue<int>(), usage["prompt_tokens_details"]!["cached_tokens"]!.GetValue<int>());
            }
            return new Turn(c, t, server, sent, prompt, cached, text.ToString(), finish, false, "the stream ended without [DONE]");
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException)
        {
            return new Turn(c, t, server, sent, 0, 0, "", null, false, e.Message);
        }
    }

    private static Process StartHaproxy(int listen, int[] ports)
    {
        var info = new ProcessStartInfo(Haproxy) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-db", "-f", Path.Combine(SharedData.RepoRoot, "deploy", "haproxy", "haproxy.cfg") }) info.ArgumentList.Add(a);
        info.Environment["CLOCKLM_LISTEN"] = $"127.0.0.1:{listen}";
        for (int i = 0; i < ports.Length; i++) info.Environment[$"CLOCKLM_REPLICA_{i + 1}"] = $"127.0.0.1:{ports[i]}";
        var process = Process.Start(info)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return process;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<HttpStatusCode?> TryGetAsync(HttpClient http, string path)
    {
        try
        {
            using var response = await http.GetAsync(path);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60)) throw new TimeoutException($"waited a minute for {what}");
            await Task.Delay(200);
        }
    }
}
