using System.Text;
using System.Text.Json;
using ClockLM.Sampling;

namespace ClockLM.Tests.Server;

/// <summary>Many streaming clients at once: every answer equals the same request run alone with the same seed.</summary>
public sealed class ConcurrencyTests
{
    [Fact]
    public async Task SixteenConcurrentStreamingClientsEachGetTheirOwnAnswer()
    {
        await using var host = await ServerHost.StartAsync(new ClockLM.Chat.SlotSchedulerOptions { Slots = 4, QueueCapacity = 64 });
        string[] prompts = ["Once upon a time", "Tom had a red ball", "The sun was hot", "Lily liked to sing"];
        var jobs = Enumerable.Range(0, 32).Select(i => (Prompt: prompts[i % 4], Seed: 100 + i, Max: 20 + i % 13)).ToList();
        using var gate = new SemaphoreSlim(16); // 16 clients, two requests each
        var answers = await Task.WhenAll(jobs.Select(async job =>
        {
            await gate.WaitAsync();
            try { return await StreamAsync(host.Http, job.Prompt, job.Seed, job.Max); }
            finally { gate.Release(); }
        }));
        for (int i = 0; i < jobs.Count; i++)
        {
            var (prompt, seed, max) = jobs[i];
            string alone = ServerHost.RunAlone(host.Model, host.Model.Tokenizer.Encode(prompt).ToArray(), max,
                new SamplerOptions { Temperature = 1.0f, Seed = (ulong)seed });
            Assert.Equal(alone, answers[i]);
        }
        Assert.Equal(32, host.Scheduler.Stats.Completed);
        long batched = host.Scheduler.Stats.BatchedTokens;
        Assert.True(batched > 0, "no decoding step ran several slots together");
        // /metrics reports the same count (nothing runs any more).
        string metrics = await host.Http.GetStringAsync("/metrics");
        Assert.Contains($"clocklm_batched_tokens_total {batched}\n", metrics);
    }

    /// <summary>Reads an SSE stream of text completion chunks and joins their text.</summary>
    internal static async Task<string> StreamAsync(HttpClient http, string prompt, int seed, int max)
    {
        string body = JsonSerializer.Serialize(new { prompt, seed, max_tokens = max, temperature = 1.0, stream = true });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        bool done = false;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            string data = line[6..];
            if (data == "[DONE]") { done = true; break; }
            var choices = JsonDocument.Parse(data).RootElement.GetProperty("choices");
            if (choices.GetArrayLength() > 0) text.Append(choices[0].GetProperty("text").GetString());
        }
        Assert.True(done, "the stream ended without [DONE]");
        return text.ToString();
    }
}
