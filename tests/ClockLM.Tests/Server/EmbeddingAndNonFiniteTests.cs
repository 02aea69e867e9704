using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Sampling;

namespace ClockLM.Tests.Server;

/// <summary>Embeddings run in the scheduler's slots (queue limit, 503, cancellation between chunks of one input), and
/// a model that computes NaN gets a clear error instead of a 500 about JSON.</summary>
public sealed class EmbeddingAndNonFiniteTests
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task EmbeddingsWaitInTheQueueAndGet503WhenItIsFull()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, QueueCapacity = 0 });
        // One long generation holds the only slot.
        var running = host.Scheduler.Submit(new CompletionRequest
        {
            PromptIds = host.Model.Tokenizer.Encode("Once").ToArray(),
            MaxTokens = 400,
            IgnoreEndOfGeneration = true,
            Sampler = new SamplerOptions { Temperature = 0 },
        });
        await running.Updates.WaitToReadAsync();
        using var busy = await host.Http.PostAsync("/v1/embeddings", Json("""{"input":"The cat sat"}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
        Assert.Equal("queue_full", JsonDocument.Parse(await busy.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.True(busy.Headers.Contains("Retry-After"));
        Assert.Equal(FinishReason.Length, (await running.Result).Finish);
        using var served = await host.Http.PostAsync("/v1/embeddings", Json("""{"input":"The cat sat"}"""));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task AnEmbeddingIsCancelledBetweenChunksOfItsInput()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 1, PrefillChunk = 1 });
        int[] input = Enumerable.Range(0, 511).Select(i => 100 + i % 300).ToArray();
        using var cancel = new CancellationTokenSource();
        var job = scheduler.Submit(new CompletionRequest { PromptIds = input, Embed = true }, cancel.Token);
        while (scheduler.Stats.ActiveSlots == 0) await Task.Delay(1);
        cancel.Cancel();
        var result = await job.Result.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(FinishReason.Cancelled, result.Finish);
        Assert.Null(result.Embedding);
        Assert.Equal(0, scheduler.Stats.PromptTokens); // the 511 tokens were never all read
        Assert.Equal(1, scheduler.Stats.Cancelled);

        // The slot is free for the next request, whose embedding is the one computed alone.
        var next = await scheduler.Submit(new CompletionRequest { PromptIds = input[..20], Embed = true }).Result;
        Assert.Equal(FinishReason.Stop, next.Finish);
        Assert.Equal(model.Config.Dim, next.Embedding!.Length);
        Assert.Equal(1.0, Math.Sqrt(next.Embedding.Sum(v => (double)v * v)), 5);
    }

    [Fact]
    public async Task NaNWeightsGiveAClearErrorForLogprobsEmbeddingsClockSummaryAndStreams()
    {
        using var dir = new TempDir();
        string good = dir.File("good.gguf"), bad = dir.File("nan.gguf");
        TestModels.WriteSmallLlama(good);
        TestModels.WriteNaNNorm(good, bad);
        await using var host = await ServerHost.StartAsync(modelPath: bad);
        foreach (string body in new[]
        {
            """{"prompt":"hi","max_tokens":3,"logprobs":2}""",
            """{"prompt":"hi","max_tokens":3,"clocklm":{"clock_summary":true}}""",
        })
        {
            using var response = await host.Http.PostAsync("/v1/completions", Json(body));
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("non_finite_output", error.GetProperty("code").GetString());
            Assert.StartsWith("the model computed NaN for a logit", error.GetProperty("message").GetString());
        }
        using (var embedding = await host.Http.PostAsync("/v1/embeddings", Json("""{"input":"hi"}""")))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, embedding.StatusCode);
            Assert.Contains("NaN for a hidden state", await embedding.Content.ReadAsStringAsync());
        }
        using (var stream = await host.Http.PostAsync("/v1/chat/completions", Json("""{"messages":[{"role":"user","content":"hi"}],"stream":true,"logprobs":true}""")))
        {
            string events = await stream.Content.ReadAsStringAsync();
            Assert.Contains("data: {\"error\":{\"message\":\"the model computed NaN for a logit", events);
        }
        using var health = await host.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }
}
