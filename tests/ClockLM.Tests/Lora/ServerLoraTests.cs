using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tests.Cli;
using ClockLM.Tests.Server;

namespace ClockLM.Tests.Lora;

/// <summary>llama-server's LoRA API: <c>GET/POST /lora-adapters</c> and a completion's own <c>"lora"</c> scales, on
/// stories260K with two random adapters written to disk.</summary>
public sealed class ServerLoraTests
{
    private const string Prompt = "Once upon a time, there was a little";
    private const int Tokens = 16;

    [Fact]
    public async Task ARequestAtScaleZeroIsBitIdenticalToAServerWithoutAdapters()
    {
        using var dir = new TempDir();
        var adapters = Adapters(dir);
        string plain, plainLogprobs;
        await using (var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1 }))
            (plain, plainLogprobs) = await CompleteAsync(host.Http, null);
        await using (var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, Lora = adapters }))
        {
            var (withAdapters, _) = await CompleteAsync(host.Http, null);
            Assert.NotEqual(plain, withAdapters); // the adapters at their starting scales change the text
            Assert.Equal((plain, plainLogprobs), await CompleteAsync(host.Http, [new { id = 0, scale = 0 }, new { id = 1, scale = 0.0 }]));
            Assert.Equal((plain, plainLogprobs), await CompleteAsync(host.Http, [])); // adapters not named run at 0
        }
    }

    [Fact]
    public async Task ARequestAtScaleSEqualsAServerStartedWithThoseScales()
    {
        using var dir = new TempDir();
        var adapters = Adapters(dir);
        (string, string) started;
        // clocklm serve --lora-scaled a.gguf 0.7 --lora-scaled b.gguf -0.4
        await using (var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, Lora = [adapters[0] with { Scale = 0.7f }, adapters[1] with { Scale = -0.4f }] }))
            started = await CompleteAsync(host.Http, null);
        await using (var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, Lora = adapters }))
        {
            Assert.Equal(started, await CompleteAsync(host.Http, [new { id = 1, scale = -0.4 }, new { id = 0, scale = 0.7 }]));
            // clocklm run --lora-scaled ...: the model's own adapters, no scheduler.
            host.Model.UseLora([adapters[0] with { Scale = 0.7f }, adapters[1] with { Scale = -0.4f }]);
            Assert.Equal(started.Item1, RunAlone(host.Model, null));
            host.Model.Lora = null;
        }
    }

    [Fact]
    public async Task TwoRequestsWithDifferentScalesInTheSameBatchedStepsEachEqualTheirRunAlone()
    {
        using var dir = new TempDir();
        var adapters = Adapters(dir);
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 2, Lora = adapters });
        object[] half = [new { id = 0, scale = 0.5 }];
        object[] both = [new { id = 0, scale = 1.5 }, new { id = 1, scale = 1 }];
        // Both wait in the queue, then enter the two slots in one round: the same prompt and length, so every decoding
        // step runs them together.
        host.Scheduler.Pause();
        var first = CompleteAsync(host.Http, half);
        var second = CompleteAsync(host.Http, both);
        for (int i = 0; i < 500 && host.Scheduler.Stats.QueueDepth < 2; i++) await Task.Delay(10);
        Assert.Equal(2, host.Scheduler.Stats.QueueDepth);
        host.Scheduler.Resume();
        var answers = await Task.WhenAll(first, second);
        Assert.True(host.Scheduler.Stats.BatchedTokens >= 2 * (Tokens - 1), $"only {host.Scheduler.Stats.BatchedTokens} tokens were decoded in batched steps");

        Assert.Equal(RunAlone(host.Model, host.Model.CreateLora([adapters[0] with { Scale = 0.5f }, adapters[1] with { Scale = 0 }])), answers[0].Text);
        Assert.Equal(RunAlone(host.Model, host.Model.CreateLora([adapters[0] with { Scale = 1.5f }, adapters[1] with { Scale = 1 }])), answers[1].Text);
        Assert.NotEqual(answers[0].Text, answers[1].Text);
        // Each alone through the server: the same bits as beside the other.
        Assert.Equal(answers[0], await CompleteAsync(host.Http, half));
        Assert.Equal(answers[1], await CompleteAsync(host.Http, both));
    }

    [Fact]
    public async Task GetListsTheAdaptersAndPostSetsTheScalesOfRequestsThatNameNone()
    {
        using var dir = new TempDir();
        var adapters = Adapters(dir);
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, Lora = [adapters[0], adapters[1] with { Scale = 0 }] });
        Assert.Equal($$"""[{"id":0,"path":{{JsonSerializer.Serialize(adapters[0].Adapter.Path)}},"scale":1},{"id":1,"path":{{JsonSerializer.Serialize(adapters[1].Adapter.Path)}},"scale":0}]""",
            await host.Http.GetStringAsync("/lora-adapters"));
        var started = await CompleteAsync(host.Http, null);

        using (var set = await host.Http.PostAsync("/lora-adapters", Json("""[{"id": 1, "scale": 0.25}]""")))
        {
            Assert.Equal(HttpStatusCode.OK, set.StatusCode);
            Assert.Equal("""{"success":true}""", await set.Content.ReadAsStringAsync());
        }
        var list = JsonDocument.Parse(await host.Http.GetStringAsync("/lora-adapters")).RootElement;
        Assert.Equal([0f, 0.25f], list.EnumerateArray().Select(a => a.GetProperty("scale").GetSingle()));
        var (text, _) = await CompleteAsync(host.Http, null);
        Assert.Equal(RunAlone(host.Model, host.Model.CreateLora([adapters[0] with { Scale = 0 }, adapters[1] with { Scale = 0.25f }])), text);
        Assert.NotEqual(started.Text, text);
        // A request's own list still wins, and the old scales come back the same bits.
        Assert.Equal(started, await CompleteAsync(host.Http, [new { id = 0, scale = 1 }]));
    }

    [Fact]
    public async Task OtherScalesDoNotReuseASlotsCachedPrompt()
    {
        using var dir = new TempDir();
        var adapters = Adapters(dir);
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, Lora = adapters });
        async Task<(string Text, int Cached)> Run(float scale)
        {
            string body = JsonSerializer.Serialize(new { prompt = Prompt, max_tokens = Tokens, temperature = 0, lora = new[] { new { id = 0, scale } } });
            using var response = await host.Http.PostAsync("/v1/completions", Json(body));
            var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            return (root.GetProperty("choices")[0].GetProperty("text").GetString()!,
                root.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        }
        var one = await Run(1);
        var half = await Run(0.5f);
        Assert.Equal(0, half.Cached); // the slot's keys and values were computed at scale 1
        Assert.Equal(RunAlone(host.Model, host.Model.CreateLora([adapters[0] with { Scale = 0.5f }, adapters[1] with { Scale = 0 }])), half.Text);
        Assert.True((await Run(0.5f)).Cached > 0); // the same scales reuse them
        Assert.Equal(one.Text, (await Run(1)).Text);
    }

    [Fact]
    public async Task ASlotSavedUnderARequestsScalesIsRestoredOnlyUnderThoseScales()
    {
        using var dir = new TempDir();
        var adapters = Adapters(dir);
        string folder = Directory.CreateDirectory(dir.File("slots")).FullName;
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, Lora = adapters }, new ClockLM.Server.ServerOptions { SlotSavePath = folder });
        object[] half = [new { id = 0, scale = 0.5 }];
        var expected = await CompleteAsync(host.Http, half);
        using (var save = await host.Http.PostAsync("/slots/0?action=save", Json("""{"filename": "half.bin"}""")))
            Assert.Equal(HttpStatusCode.OK, save.StatusCode);
        // The server's scales are (1, 1): the file's keys and values were computed under (0.5, 0).
        using (var refused = await host.Http.PostAsync("/slots/0?action=restore", Json("""{"filename": "half.bin"}""")))
        {
            string text = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, text);
            Assert.Contains("invalid_slot_file", text);
        }
        using (var set = await host.Http.PostAsync("/lora-adapters", Json("""[{"id": 0, "scale": 0.5}]""")))
            Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        using (var restored = await host.Http.PostAsync("/slots/0?action=restore", Json("""{"filename": "half.bin"}""")))
            Assert.True(restored.StatusCode == HttpStatusCode.OK, await restored.Content.ReadAsStringAsync());
        // A request under the server's scales (now those) reuses the restored prompt and gives the same bits.
        string body = JsonSerializer.Serialize(new { prompt = Prompt, max_tokens = Tokens, temperature = 0, logprobs = 5 });
        using var response = await host.Http.PostAsync("/v1/completions", Json(body));
        var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.True(root.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32() > 0);
        Assert.Equal(expected.Text, root.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(expected.Logprobs, root.GetProperty("choices")[0].GetProperty("logprobs").GetRawText());
    }

    [Fact]
    public async Task BadLoraIsA400NamingTheField()
    {
        using var dir = new TempDir();
        var adapters = Adapters(dir);
        (string Lora, string Param, string Message)[] cases =
        [
            ("""[{"id": 2, "scale": 1}]""", "lora[0].id", "lora[0].id is 2; expected an adapter id from 0 to 1"),
            ("""[{"id": -1, "scale": 1}]""", "lora[0].id", "lora[0].id is -1; expected an integer from 0"),
            ("""[{"id": 0}]""", "lora[0].scale", "lora[0].scale is required"),
            ("""[{"scale": 1}]""", "lora[0].id", "lora[0].id is required"),
            ("""[{"id": 0, "scale": "big"}]""", "lora[0].scale", "must be a number"),
            ("""[{"id": 0, "scale": 1e9}]""", "lora[0].scale", "expected a number from -1000000 to 1000000"),
            ("""[{"id": 0.5, "scale": 1}]""", "lora[0].id", "must be an integer"),
            ("""[{"id": 0, "scale": 1}, {"id": 0, "scale": 2}]""", "lora[1].id", "an earlier entry already names"),
            ("""[{"id": 0, "scale": 1, "path": "/etc/passwd"}]""", "lora[0].path", "is not a field of a LoRA entry"),
            ("""{"id": 0, "scale": 1}""", "lora", "must be an array"),
            ("""[0]""", "lora[0]", "must be an object"),
        ];
        await using (var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, Lora = adapters }))
        {
            foreach (var (lora, param, message) in cases)
            {
                foreach (string path in new[] { "/v1/completions", "/v1/chat/completions" })
                {
                    string body = path == "/v1/completions"
                        ? $$"""{"prompt": "Once", "max_tokens": 2, "lora": {{lora}}}"""
                        : $$"""{"messages": [{"role": "user", "content": "Once"}], "max_tokens": 2, "lora": {{lora}}}""";
                    await AssertBadRequest(await host.Http.PostAsync(path, Json(body)), param, message);
                }
                // POST /lora-adapters: the body is the list itself.
                if (lora.StartsWith('[')) await AssertBadRequest(await host.Http.PostAsync("/lora-adapters", Json(lora)), param[4..], message[4..]);
            }
            await AssertBadRequest(await host.Http.PostAsync("/lora-adapters", Json("""{"lora": []}""")), null, "must be a JSON array");
            Assert.Equal([1f, 1f], JsonDocument.Parse(await host.Http.GetStringAsync("/lora-adapters")).RootElement.EnumerateArray().Select(a => a.GetProperty("scale").GetSingle()));
            Assert.Equal(0, host.Scheduler.Stats.Completed + host.Scheduler.Stats.Failed);
        }
        await using (var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1 }))
        {
            Assert.Equal("[]", await host.Http.GetStringAsync("/lora-adapters"));
            await AssertBadRequest(await host.Http.PostAsync("/v1/completions", Json("""{"prompt": "Once", "max_tokens": 2, "lora": [{"id": 0, "scale": 1}]}""")),
                "lora[0].id", "no LoRA adapter was loaded");
        }
    }

    private static async Task AssertBadRequest(HttpResponseMessage response, string? param, string message)
    {
        using (response)
        {
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            if (param is not null) Assert.Equal(param, error.GetProperty("param").GetString());
            Assert.Contains(message, error.GetProperty("message").GetString());
        }
    }

    /// <summary>Two random adapters of stories260K (every product and the output head), saved and read back, at scale 1.</summary>
    private static List<ScaledLora> Adapters(TempDir dir)
    {
        using var model = Model.Load(SharedData.Stories260K);
        var loaded = new List<ScaledLora>();
        for (int i = 0; i < 2; i++)
        {
            string path = dir.File($"adapter{i}.gguf");
            LoraTestAdapters.Random(model, rank: 4, alpha: 8, seed: 40 + (ulong)i, std: 0.2f).Save(path);
            loaded.Add(new ScaledLora(LoraAdapter.Load(path), 1f));
        }
        return loaded;
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>A greedy completion's text and its logprobs (the chosen tokens' and the top 5 at every step), as JSON.</summary>
    private static async Task<(string Text, string Logprobs)> CompleteAsync(HttpClient http, object[]? lora)
    {
        string body = JsonSerializer.Serialize(new { prompt = Prompt, max_tokens = Tokens, temperature = 0, logprobs = 5, lora });
        using var response = await http.PostAsync("/v1/completions", Json(body));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var choice = JsonDocument.Parse(text).RootElement.GetProperty("choices")[0];
        return (choice.GetProperty("text").GetString()!, choice.GetProperty("logprobs").GetRawText());
    }

    /// <summary>The same generation by the plain generation loop, with <paramref name="lora"/> on its processor.</summary>
    private static string RunAlone(Model model, LoraAdapters? lora)
    {
        var generator = new Generator(model);
        generator.Transformer.Lora = lora;
        var ids = model.Tokenizer.Encode(Prompt, addSpecial: true).ToArray();
        return generator.Generate(ids, new GenerationOptions { MaxNewTokens = Tokens, Sampler = new SamplerOptions { Temperature = 0 } }).Text;
    }
}
