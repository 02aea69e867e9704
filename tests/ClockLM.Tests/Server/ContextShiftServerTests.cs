using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Models;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Tests.Server;

/// <summary>
/// A request for more tokens than its slot's context holds: finish_reason "length" where the context ends, or, with
/// the server's context shift, every token asked for, counted on /metrics; n_keep and the chat default (the system
/// prompt) say what a shift keeps.
/// </summary>
public sealed class ContextShiftServerTests
{
    private const string LongRequest = """{"prompt":"Once upon a time","max_tokens":150,"temperature":0,"clocklm":{"ignore_eos":true}}""";

    private static async Task<JsonElement> PostAsync(HttpClient http, string path, string json)
    {
        using var response = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement;
    }

    [Fact]
    public async Task WithoutAShiftTheAnswerEndsWithLengthWhereTheContextEnds()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, ContextLength = 48 });
        var answer = await PostAsync(host.Http, "/v1/completions", LongRequest);
        Assert.Equal("length", answer.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        var usage = answer.GetProperty("usage");
        // Every position of the context is used: the last token is sampled from position 47's logits.
        Assert.Equal(48 + 1, usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task WithAShiftTheAnswerGetsEveryTokenAskedFor()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, ContextLength = 48, ContextShift = true });
        var answer = await PostAsync(host.Http, "/v1/completions", LongRequest.Replace("\"temperature\"", "\"n_keep\":2,\"temperature\""));
        Assert.Equal("length", answer.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(150, answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.True(host.Scheduler.Stats.ContextShifts >= 3, $"{host.Scheduler.Stats.ContextShifts} shifts");
        string metrics = await host.Http.GetStringAsync("/metrics");
        Assert.Contains($"clocklm_context_shifts_total {host.Scheduler.Stats.ContextShifts}", metrics);
    }

    [Fact]
    public void AChatShiftKeepsTheSystemPromptByDefault()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var prompt = new ChatPrompt(model); // ChatML: stories260K has no template
        TemplateMessage[] messages = [new("system", "Be kind."), new("user", "Tell me a story")];
        int[] ids = prompt.Encode(messages);
        int kept = prompt.SystemPromptTokens(messages, ids);
        Assert.Equal(model.Tokenizer.BosId, ids[0]);
        Assert.Equal("<|im_start|>system\nBe kind.<|im_end|>\n", model.Tokenizer.Decode(ids[1..(1 + kept)]));
        Assert.Equal(0, prompt.SystemPromptTokens(messages[1..], prompt.Encode(messages[1..])));
    }
}
