using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Server;
using ClockLM.Steering;
using ClockLM.Tests.Server;

namespace ClockLM.Tests.Steering;

/// <summary>Per-request steering in the server (<c>"clocklm": {"steer": [...]}</c>) with vectors loaded by name.</summary>
public sealed class ServerSteeringTests
{
    private const string Prompt = HappySadSteeringTests.Prompt;

    [Fact]
    public async Task TwoRequestsSteeredDifferentlyInTheSameBatchedStepsEachEqualTheirRunAlone()
    {
        var (vectors, happy) = Loaded.Value;
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 2 }, new ServerOptions { SteeringVectors = vectors });
        var c = host.Model.Config;
        object[] up = [new { vector = "happy", scale = 4, layers = new[] { 3, 3 } }];
        object[] down = [new { vector = "happy", scale = -2 }, new { vector = "noise", scale = 0.5, layers = new[] { 1, 2 } }];

        // Both wait in the queue, then enter the two slots in one round: same prompt, same length, so every decoding
        // step runs them together.
        host.Scheduler.Pause();
        var first = CompleteAsync(host.Http, up);
        var second = CompleteAsync(host.Http, down);
        for (int i = 0; i < 500 && host.Scheduler.Stats.QueueDepth < 2; i++) await Task.Delay(10);
        Assert.Equal(2, host.Scheduler.Stats.QueueDepth);
        host.Scheduler.Resume();
        string[] answers = await Task.WhenAll(first, second);
        Assert.True(host.Scheduler.Stats.BatchedTokens >= 2 * 10, $"only {host.Scheduler.Stats.BatchedTokens} tokens were decoded in batched steps");

        string aloneUp = RunAlone(host.Model, ResidualSteering.Create(c, [new SteeringTerm(happy.Directions, 4, 3, 3)]));
        string aloneDown = RunAlone(host.Model, ResidualSteering.Create(c,
            [new SteeringTerm(happy.Directions, -2), new SteeringTerm(vectors["noise"].Directions, 0.5f, 1, 2)]));
        Assert.Equal(aloneUp, answers[0]);
        Assert.Equal(aloneDown, answers[1]);
        Assert.NotEqual(answers[0], answers[1]);
        Assert.NotEqual(RunAlone(host.Model, null), answers[0]);
        Assert.Contains("happy", answers[0]);
        // A request without steering is not steered.
        Assert.Equal(RunAlone(host.Model, null), await CompleteAsync(host.Http, null));
    }

    [Fact]
    public async Task BadSteeringIsA400NamingTheField()
    {
        (string Extension, string Param, string Message)[] cases =
        [
            ("""{"steer": [{"vector": "sad"}]}""", "clocklm.steer[0].vector", "'sad', which this server has not loaded (loaded: happy, noise)"),
            ("""{"steer": [{"scale": 2}]}""", "clocklm.steer[0].vector", "clocklm.steer[0].vector is required"),
            ("""{"steer": [{"vector": "happy", "layers": [2, 9]}]}""", "clocklm.steer[0].layers", "[2, 9]; expected 0 <= first <= last <= 4"),
            ("""{"steer": [{"vector": "happy", "layers": [2]}]}""", "clocklm.steer[0].layers", "must be [first, last]"),
            ("""{"steer": [{"vector": "happy", "layers": ["a", 2]}]}""", "clocklm.steer[0].layers", "must be [first, last]"),
            ("""{"steer": [{"vector": "happy", "scale": "big"}]}""", "clocklm.steer[0].scale", "must be a number"),
            ("""{"steer": [{"vector": "happy", "scale": 1e9}]}""", "clocklm.steer[0].scale", "expected a number from -1000 to 1000"),
            ("""{"steer": [{"vector": "happy"}, {"vector": "happy", "path": "/etc/passwd"}]}""", "clocklm.steer[1].path", "is not supported"),
            ("""{"steer": {"vector": "happy"}}""", "clocklm.steer", "must be an array"),
            ("""{"steer": ["happy"]}""", "clocklm.steer[0]", "must be an object"),
        ];
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1 }, new ServerOptions { SteeringVectors = Loaded.Value.Vectors });
        foreach (var (extension, param, message) in cases)
        {
            string body = $$"""{"prompt": "Once", "max_tokens": 2, "clocklm": {{extension}}}""";
            using var response = await host.Http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal(param, error.GetProperty("param").GetString());
            Assert.Contains(message, error.GetProperty("message").GetString());
        }
        Assert.Equal(0, host.Scheduler.Stats.Completed + host.Scheduler.Stats.Failed);
    }

    [Fact]
    public async Task TheServersOwnVectorSteersEveryRequestAndARequestsSteeringAddsToIt()
    {
        var (vectors, happy) = Loaded.Value;
        LlamaConfig config;
        using (var m = Model.Load(SharedData.Stories260K)) config = m.Config;
        // clocklm serve --control-vector-scaled happy.gguf 4 --control-vector-layer-range 3 3 --steer-dir ...
        var serverTerm = new SteeringTerm(happy.Directions, 4, 3, 3);
        var serverSteering = ResidualSteering.Create(config, [serverTerm]);
        await using (var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, Steering = serverSteering }, new ServerOptions { SteeringVectors = vectors }))
        {
            string steered = RunAlone(host.Model, serverSteering);
            Assert.Equal(steered, await CompleteAsync(host.Http, null));
            Assert.Equal(RunAlone(host.Model, ResidualSteering.Create(config, [serverTerm, new SteeringTerm(vectors["noise"].Directions, 0.5f)])),
                await CompleteAsync(host.Http, [new { vector = "noise", scale = 0.5 }]));
            // Ollama's API runs on the same scheduler, so its requests are steered by the server's vector too.
            string body = JsonSerializer.Serialize(new { model = "stories260K", prompt = Prompt, raw = true, stream = false, options = new { temperature = 0, num_predict = 20 } });
            using var ollama = await host.Http.PostAsync("/api/generate", new StringContent(body, Encoding.UTF8, "application/json"));
            string answer = await ollama.Content.ReadAsStringAsync();
            Assert.True(ollama.IsSuccessStatusCode, answer);
            Assert.Equal(steered, JsonDocument.Parse(answer).RootElement.GetProperty("response").GetString());
        }
        await using (var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1 }))
        {
            string body = """{"prompt": "Once", "max_tokens": 2, "clocklm": {"steer": [{"vector": "happy"}]}}""";
            using var response = await host.Http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("none: start the server with --steer-dir DIR", await response.Content.ReadAsStringAsync());
        }
    }

    /// <summary>"happy" (the happy-vs-sad vector of stories260K) and "noise" (random directions of layers 1 and 2).</summary>
    private static readonly Lazy<(Dictionary<string, ControlVector> Vectors, ControlVector Happy)> Loaded = new(Vectors);

    private static (Dictionary<string, ControlVector> Vectors, ControlVector Happy) Vectors()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var happy = ControlVectorMaker.Make(model, HappySadSteeringTests.Happy, HappySadSteeringTests.Sad);
        var noise = Oracle.ControlVectorOracleTests.RandomVector(model.Config, [1, 2], 9, "llama");
        return (new() { ["happy"] = happy, ["noise"] = noise }, happy);
    }

    private static async Task<string> CompleteAsync(HttpClient http, object[]? steer)
    {
        string body = JsonSerializer.Serialize(new { prompt = Prompt, max_tokens = 20, temperature = 0, clocklm = steer is null ? (object?)null : new { steer } });
        using var response = await http.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
    }

    private static string RunAlone(Model model, ResidualSteering? steering)
    {
        var generator = new Generator(model);
        generator.Transformer.Steering = steering;
        var ids = model.Tokenizer.Encode(Prompt, addSpecial: true).ToArray();
        return generator.Generate(ids, new GenerationOptions { MaxNewTokens = 20, Sampler = new SamplerOptions { Temperature = 0 } }).Text;
    }
}
