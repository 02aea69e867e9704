using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Server;
using ClockLM.Tensors;

namespace ClockLM.Tests.Server;

/// <summary>llama.cpp's slot API: save a slot's KV cache, restore it (here or in another server of the same model), erase
/// it; continuations after a restore are the same bits as reading the prompt again.</summary>
public sealed class SavedSlotTests
{
    private const string Story = "Once upon a time there was a little girl named Lily. She loved to play outside in the sun.";

    private static async Task<JsonElement> PostAsync(HttpClient http, string path, object body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await http.PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement;
    }

    /// <summary>A text completion of token ids: (text, cached tokens, logprobs as JSON).</summary>
    private static async Task<(string Text, int Cached, string Logprobs)> CompleteAsync(HttpClient http, int[] prompt, bool cache = true)
    {
        var answer = await PostAsync(http, "/v1/completions", new { prompt, max_tokens = 16, seed = 9, temperature = 1.0, logprobs = 2, cache_prompt = cache });
        var choice = answer.GetProperty("choices")[0];
        return (choice.GetProperty("text").GetString()!, answer.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32(),
            choice.GetProperty("logprobs").GetRawText());
    }

    private static Task<ServerHost> StartAsync(string folder, GgmlType cacheType = GgmlType.F16) =>
        ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, KvCache = KvCacheOptions.Both(cacheType) }, new ServerOptions { SlotSavePath = folder });

    [Theory]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    public async Task ARestoredSlotContinuesBitForBitHereAndInAnotherServer(GgmlType cacheType)
    {
        using var dir = new TempDir();
        int[] story, next;
        (string, int, string) expected;
        await using (var host = await StartAsync(dir.Path, cacheType))
        {
            story = host.Model.Tokenizer.Encode(Story).ToArray();
            next = [.. story, .. host.Model.Tokenizer.Encode(" One day she found a cat.", addSpecial: false)];
            await CompleteAsync(host.Http, story);
            var saved = await PostAsync(host.Http, "/slots/0?action=save", new { filename = "lily.bin" });
            int held = saved.GetProperty("n_saved").GetInt32();
            Assert.Equal(story.Length + 15, held); // the prompt and every generated token but the last
            Assert.Equal(new FileInfo(dir.File("lily.bin")).Length, saved.GetProperty("n_written").GetInt64());
            Assert.Single(Directory.GetFiles(dir.Path)); // no partial file left beside it

            var (text, _, logprobs) = await CompleteAsync(host.Http, next, cache: false);
            expected = (text, story.Length, logprobs);
            // The slot now holds another prompt; erase it, check the list, restore the file and continue.
            await CompleteAsync(host.Http, host.Model.Tokenizer.Encode("Tom had a big red ball.").ToArray());
            Assert.True((await PostAsync(host.Http, "/slots/0?action=erase", new { })).GetProperty("n_erased").GetInt32() > 0);
            var list = JsonDocument.Parse(await host.Http.GetStringAsync("/slots")).RootElement;
            Assert.Equal(0, list[0].GetProperty("n_tokens").GetInt32());
            Assert.False(list[0].GetProperty("is_processing").GetBoolean());
            var restored = await PostAsync(host.Http, "/slots/0?action=restore", new { filename = "lily.bin" });
            Assert.Equal(held, restored.GetProperty("n_restored").GetInt32());
            Assert.Equal(held, JsonDocument.Parse(await host.Http.GetStringAsync("/slots")).RootElement[0].GetProperty("n_tokens").GetInt32());
            Assert.Equal(expected, await CompleteAsync(host.Http, next));
        }
        // A new server of the same model reads the file: the continuation reuses the prompt and is the same bits.
        await using (var other = await StartAsync(dir.Path, cacheType))
        {
            await PostAsync(other.Http, "/slots/0?action=restore", new { filename = "lily.bin" });
            Assert.Equal(expected, await CompleteAsync(other.Http, next));
        }
    }

    [Fact]
    public async Task AFileOfAnotherCacheTypeIsRefusedAndLeavesTheSlotEmpty()
    {
        using var dir = new TempDir();
        await using (var f16 = await StartAsync(dir.Path, GgmlType.F16))
        {
            await CompleteAsync(f16.Http, f16.Model.Tokenizer.Encode(Story).ToArray());
            await PostAsync(f16.Http, "/slots/0?action=save", new { filename = "f16.bin" });
        }
        await using var q8 = await StartAsync(dir.Path, GgmlType.Q8_0);
        int[] story = q8.Model.Tokenizer.Encode(Story).ToArray();
        await CompleteAsync(q8.Http, story);
        var refused = await PostAsync(q8.Http, "/slots/0?action=restore", new { filename = "f16.bin" }, HttpStatusCode.BadRequest);
        Assert.Equal("f16.bin: KV cache data: key type is F16, this cache stores Q8_0", refused.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(0, JsonDocument.Parse(await q8.Http.GetStringAsync("/slots")).RootElement[0].GetProperty("n_tokens").GetInt32());
        Assert.Equal(0, (await CompleteAsync(q8.Http, story)).Cached);
    }

    [Fact]
    public async Task FileNamesStayInTheFolderAndOtherModelsFilesAreRefused()
    {
        using var dir = new TempDir();
        string folder = Directory.CreateDirectory(dir.File("slots")).FullName;
        await using (var host = await StartAsync(folder))
        {
            await CompleteAsync(host.Http, host.Model.Tokenizer.Encode(Story).ToArray());
            foreach (string bad in new[] { "../escape.bin", "..", "/tmp/abs.bin", "a/b.bin", "a\\b.bin", ".hidden", "x..y", "", new string('a', 201) })
            {
                var error = await PostAsync(host.Http, "/slots/0?action=save", new { filename = bad }, HttpStatusCode.BadRequest);
                Assert.Equal("filename", error.GetProperty("error").GetProperty("param").GetString());
            }
            Assert.Empty(Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories));
            await PostAsync(host.Http, "/slots/0?action=save", new { filename = "story.bin" });
            await PostAsync(host.Http, "/slots/0?action=restore", new { filename = "missing.bin" }, HttpStatusCode.NotFound);
            await PostAsync(host.Http, "/slots/3?action=save", new { filename = "x.bin" }, HttpStatusCode.BadRequest);
            await PostAsync(host.Http, "/slots/0?action=copy", new { filename = "x.bin" }, HttpStatusCode.BadRequest);

            // A file cut short is refused and leaves the slot empty.
            byte[] whole = File.ReadAllBytes(Path.Combine(folder, "story.bin"));
            File.WriteAllBytes(Path.Combine(folder, "cut.bin"), whole[..(whole.Length - 100)]);
            var cut = await PostAsync(host.Http, "/slots/0?action=restore", new { filename = "cut.bin" }, HttpStatusCode.BadRequest);
            Assert.Contains("cut.bin: KV cache data: ends in the values of layer", cut.GetProperty("error").GetProperty("message").GetString());
            Assert.Equal(0, JsonDocument.Parse(await host.Http.GetStringAsync("/slots")).RootElement[0].GetProperty("n_tokens").GetInt32());
        }

        // The same slot file offered to a server of another model.
        string path = dir.File("other.gguf");
        var config = new LlamaConfig(Dim: 64, HiddenDim: 128, Layers: 5, Heads: 8, KvHeads: 4, VocabSize: 512, ContextLength: 512);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(512), GgmlType.F32, seed: 2);
        using var model = Model.Load(path);
        using var scheduler = new SlotScheduler(model, new SlotSchedulerOptions { Slots = 1 });
        var server = new ClockLMServer(scheduler, new ServerOptions { Host = "127.0.0.1", Port = 0, SlotSavePath = folder });
        await server.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = server.Address };
            var refused = await PostAsync(http, "/slots/0?action=restore", new { filename = "story.bin" }, HttpStatusCode.BadRequest);
            Assert.Contains("saved with another model", refused.GetProperty("error").GetProperty("message").GetString());
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task ABusySlotAndAServerWithoutAFolderRefuseClearly()
    {
        await using var host = await ServerHost.StartAsync(new SlotSchedulerOptions { Slots = 1, ContextLength = 4096 });
        await PostAsync(host.Http, "/slots/0?action=save", new { filename = "x.bin" }, HttpStatusCode.NotImplemented);
        using var cancel = new CancellationTokenSource();
        var job = host.Scheduler.Submit(new CompletionRequest { PromptIds = [1, 403], MaxTokens = 4000, IgnoreEndOfGeneration = true }, cancel.Token);
        await job.Updates.ReadAsync();
        var busy = await PostAsync(host.Http, "/slots/0?action=erase", new { }, HttpStatusCode.Conflict);
        Assert.Equal("slot_busy", busy.GetProperty("error").GetProperty("code").GetString());
        Assert.True(JsonDocument.Parse(await host.Http.GetStringAsync("/slots")).RootElement[0].GetProperty("is_processing").GetBoolean());
        cancel.Cancel();
        await job.Result;
    }
}
