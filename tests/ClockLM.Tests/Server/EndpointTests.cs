using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Sampling;

namespace ClockLM.Tests.Server;

/// <summary>Text completions, logprobs, the clock summary, embeddings, tokenize/detokenize and metrics, checked against the engine.</summary>
public sealed class EndpointTests : IAsyncLifetime
{
    private ServerHost _host = null!;

    public async Task InitializeAsync() => _host = await ServerHost.StartAsync();
    public async Task DisposeAsync() => await _host.DisposeAsync();

    private async Task<JsonElement> PostAsync(string path, string json)
    {
        using var response = await _host.Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement;
    }

    [Fact]
    public async Task CompletionEqualsTheGenerationRunAloneWithLogprobsOfTheChosenTokens()
    {
        var answer = await PostAsync("/v1/completions", """{"prompt":"One day, a little","max_tokens":25,"seed":3,"logprobs":2}""");
        int[] ids = _host.Model.Tokenizer.Encode("One day, a little").ToArray();
        string expected = ServerHost.RunAlone(_host.Model, ids, 25, new SamplerOptions { Seed = 3 });
        var choice = answer.GetProperty("choices")[0];
        Assert.Equal(expected, choice.GetProperty("text").GetString());
        Assert.Equal(ids.Length, answer.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        // The first token's logprob is log-softmax of the prompt's logits, computed here on a fresh processor.
        var logprobs = choice.GetProperty("logprobs");
        var t = _host.Model.CreateTransformer();
        float[] logits = t.Evaluate(ids, 0).ToArray();
        double max = logits.Max(), logSum = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
        int firstId = new ClockLM.Generation.Generator(_host.Model).Generate(ids,
            new ClockLM.Generation.GenerationOptions { MaxNewTokens = 1, Sampler = new SamplerOptions { Seed = 3 } }).GeneratedIds[0];
        Assert.Equal(logits[firstId] - logSum, logprobs.GetProperty("token_logprobs")[0].GetDouble(), 3);
        int best = Array.IndexOf(logits, logits.Max());
        var top = logprobs.GetProperty("top_logprobs")[0];
        Assert.Equal(2, top.EnumerateObject().Count());
        Assert.Equal(logits[best] - logSum, top.EnumerateObject().Max(p => p.Value.GetDouble()), 3);
        Assert.Equal(answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), logprobs.GetProperty("tokens").GetArrayLength());
    }

    [Fact]
    public async Task ClockSummaryTopKEndsWithTheLastGreedyToken()
    {
        var answer = await PostAsync("/v1/chat/completions",
            """{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":12,"temperature":0,"clocklm":{"clock_summary":true,"top_k":5},"logprobs":true}""");
        var clock = answer.GetProperty("clocklm");
        Assert.Equal(_host.Model.Config.Layers, clock.GetProperty("layers").GetInt32());
        Assert.True(clock.GetProperty("cycle_us").GetDouble() > 0);
        var top = clock.GetProperty("final_top_k").EnumerateArray().ToList();
        Assert.Equal(5, top.Count);
        var probs = top.Select(e => e.GetProperty("prob").GetDouble()).ToList();
        Assert.Equal(probs.OrderByDescending(p => p), probs);
        Assert.True(probs.Sum() <= 1.0001);
        // Greedy and stopped by length: the last token generated is the final distribution's most likely one.
        Assert.Equal("length", answer.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var tokens = answer.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("content");
        Assert.Equal(tokens[tokens.GetArrayLength() - 1].GetProperty("token").GetString(), top[0].GetProperty("token").GetString());

        // Per cycle: stage times, and a logit lens whose last cycle is the model's real output distribution.
        var cycles = clock.GetProperty("per_cycle").EnumerateArray().ToList();
        Assert.Equal(_host.Model.Config.Layers, cycles.Count);
        for (int l = 0; l < cycles.Count; l++)
        {
            Assert.Equal(l, cycles[l].GetProperty("layer").GetInt32());
            var stages = cycles[l].GetProperty("stages_us").EnumerateObject().ToList();
            Assert.Equal(["fetch", "decode", "memory", "execute", "write-back"], stages.Select(p => p.Name));
            Assert.All(stages, p => Assert.True(p.Value.GetDouble() >= 0));
            Assert.True(stages.Sum(p => p.Value.GetDouble()) <= cycles[l].GetProperty("us_per_token").GetDouble() + 1e-6);
            Assert.Equal(5, cycles[l].GetProperty("logit_lens").GetArrayLength());
        }
        var lastLens = cycles[^1].GetProperty("logit_lens").EnumerateArray().ToList();
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(top[i].GetProperty("id").GetInt32(), lastLens[i].GetProperty("id").GetInt32());
            Assert.Equal(top[i].GetProperty("prob").GetDouble(), lastLens[i].GetProperty("prob").GetDouble(), 4);
        }
    }

    [Fact]
    public async Task EmbeddingIsTheNormalisedMeanOfFinalHiddenStatesInFloatAndBase64()
    {
        var answer = await PostAsync("/v1/embeddings", """{"input":["The cat sat", "A big red ball"]}""");
        var data = answer.GetProperty("data");
        Assert.Equal(2, data.GetArrayLength());
        var model = _host.Model;
        int[] ids = model.Tokenizer.Encode("The cat sat").ToArray();
        // Independent computation: run each prefix, normalise its residual with the final norm, average, scale to length 1.
        var t = model.CreateTransformer();
        var mean = new double[model.Config.Dim];
        for (int pos = 0; pos < ids.Length; pos++)
        {
            t.Evaluate(ids.AsSpan(pos, 1), pos);
            var x = t.Residual;
            double rms = Math.Sqrt(x.ToArray().Sum(v => (double)v * v) / x.Length + model.Config.RmsEpsilon);
            for (int i = 0; i < mean.Length; i++) mean[i] += model.Weights.FinalNorm[i] * x[i] / rms;
        }
        double norm = Math.Sqrt(mean.Sum(v => v * v));
        var got = data[0].GetProperty("embedding").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(model.Config.Dim, got.Length);
        for (int i = 0; i < got.Length; i++) Assert.Equal(mean[i] / norm, got[i], 4);
        Assert.Equal(1.0, Math.Sqrt(got.Sum(v => v * v)), 4);

        var b64 = await PostAsync("/v1/embeddings", """{"input":"The cat sat","encoding_format":"base64"}""");
        float[] decoded = new float[model.Config.Dim];
        Convert.FromBase64String(b64.GetProperty("data")[0].GetProperty("embedding").GetString()!).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(decoded.AsSpan()));
        for (int i = 0; i < got.Length; i++) Assert.Equal((float)got[i], decoded[i]);
    }

    [Fact]
    public async Task TokenizeAndDetokenizeMatchTheTokenizer()
    {
        const string text = "Lily and Ben went to the park.";
        var tokens = await PostAsync("/tokenize", $$"""{"content":"{{text}}"}""");
        int[] ids = tokens.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(_host.Model.Tokenizer.Encode(text, addSpecial: false), ids);
        var back = await PostAsync("/detokenize", JsonSerializer.Serialize(new { tokens = ids }));
        Assert.Equal(text, back.GetProperty("content").GetString());
    }

    [Fact]
    public async Task MetricsCountTokensOfTheRequestsServed()
    {
        var a = await PostAsync("/v1/completions", """{"prompt":"Once","max_tokens":7,"temperature":0}""");
        var b = await PostAsync("/v1/completions", """{"prompt":"The dog","max_tokens":9,"temperature":0}""");
        long prompt = a.GetProperty("usage").GetProperty("prompt_tokens").GetInt64() + b.GetProperty("usage").GetProperty("prompt_tokens").GetInt64();
        long generated = a.GetProperty("usage").GetProperty("completion_tokens").GetInt64() + b.GetProperty("usage").GetProperty("completion_tokens").GetInt64();
        string metrics = await _host.Http.GetStringAsync("/metrics");
        Assert.Contains($"clocklm_prompt_tokens_total {prompt}\n", metrics);
        Assert.Contains($"clocklm_generated_tokens_total {generated}\n", metrics);
        Assert.Contains("clocklm_http_requests_total{path=\"/v1/completions\",status=\"200\"} 2\n", metrics);
        Assert.Contains("clocklm_kv_cache_capacity_positions 2048\n", metrics); // 4 slots × 512
        Assert.Contains("clocklm_queue_depth 0\n", metrics);
        Assert.Contains($"clocklm_kernel_fallbacks {_host.Model.Weights.KernelFallbacks.Count}\n", metrics);
        Assert.Contains("clocklm_kv_exact_half_widenings_total 0\n", metrics); // finite halves: the fast widening throughout
    }
}
