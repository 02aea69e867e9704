using ClockLM.Chat;
using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tensors;
using Microsoft.Extensions.AI;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Tests.Server;

/// <summary>A conversation's next turn evaluates only its new part, with the same answers as reading it all again.</summary>
public sealed class ChatReuseTests
{
    private static readonly ChatOptions Options = new() { MaxOutputTokens = 16, Temperature = 0.9f, Seed = 7 };

    /// <summary>Three turns through the client; each answer is checked against the engine run alone on the whole prompt.</summary>
    private static async Task<List<(ChatResponse Response, int[] Prompt)>> ConverseAsync(Model model, ClockLMChatClient client, params string[] questions)
    {
        var messages = new List<ChatMessage>();
        var prompt = new ChatPrompt(model);
        var turns = new List<(ChatResponse, int[])>();
        foreach (string question in questions)
        {
            messages.Add(new ChatMessage(ChatRole.User, question));
            int[] ids = prompt.Encode([.. messages.Select(m => new TemplateMessage(m.Role.Value, m.Text))]);
            var response = await client.GetResponseAsync(messages, Options);
            string alone = ServerHost.RunAlone(model, ids, 16, new SamplerOptions { Temperature = 0.9f, Seed = 7 });
            int cut = prompt.TemplateStops.Select(s => alone.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(alone.Length).Min();
            Assert.Equal(alone[..cut], response.Text);
            Assert.Equal(ids.Length, response.Usage!.InputTokenCount);
            messages.Add(new ChatMessage(ChatRole.Assistant, response.Text));
            turns.Add((response, ids));
        }
        return turns;
    }

    [Fact]
    public async Task TheClientsNextTurnsReuseEveryTokenOfThePreviousPrompt()
    {
        using var model = Model.Load(SharedData.Stories260K);
        using var client = new ClockLMChatClient(model, new SlotSchedulerOptions { Slots = 2 });
        var turns = await ConverseAsync(model, client, "Tell me about a frog.", "What did the frog eat?", "Where did it sleep?");
        Assert.Equal(0, turns[0].Response.Usage!.CachedInputTokenCount);
        for (int t = 1; t < turns.Count; t++)
        {
            long cached = turns[t].Response.Usage!.CachedInputTokenCount!.Value;
            Assert.True(cached >= turns[t - 1].Prompt.Length, $"turn {t + 1} reused {cached} tokens; the previous prompt had {turns[t - 1].Prompt.Length}");
            Assert.True(cached < turns[t].Prompt.Length);
        }
        Assert.Equal((2, 0), (client.Turns.Extended, client.Turns.Rewritten));
    }

    [Fact]
    public async Task ATemplateThatRewritesEarlierTurnsIsReadAgainAndCounted()
    {
        using var dir = new TempDir();
        string plain = dir.File("plain.gguf"), path = dir.File("counting.gguf");
        var config = new LlamaConfig(Dim: 64, HiddenDim: 128, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 300, ContextLength: 512);
        TestModels.WriteRandomLlama(plain, config, TestModels.SmallVocabulary(300), GgmlType.F32, seed: 5, std: 0.1f);
        // The template opens with the number of messages, so every turn changes the prompt's first tokens.
        WithTemplate(plain, path, "{{ messages|length }} messages\n{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}" +
            "{% if add_generation_prompt %}assistant:{% endif %}");
        using var model = Model.Load(path);
        using var client = new ClockLMChatClient(model, new SlotSchedulerOptions { Slots = 1 });
        var turns = await ConverseAsync(model, client, "the cat", "a dog", "the sun");
        for (int t = 1; t < turns.Count; t++)
            Assert.True(turns[t].Response.Usage!.CachedInputTokenCount < 4, $"turn {t + 1} reused {turns[t].Response.Usage!.CachedInputTokenCount} tokens");
        Assert.Equal((0, 2), (client.Turns.Extended, client.Turns.Rewritten));
    }

    [Fact]
    public void TurnsBelongToTheConversationTheyExtend()
    {
        var turns = new ConversationPrompts(capacity: 2);
        TemplateMessage a = new("user", "a"), b = new("assistant", "b"), c = new("user", "c"), x = new("user", "x");
        Assert.Equal(TurnPrompt.New, turns.Add([a], [1, 2, 3]));
        Assert.Equal(TurnPrompt.New, turns.Add([x], [1, 9]));
        Assert.Equal(TurnPrompt.Extends, turns.Add([a, b, c], [1, 2, 3, 4, 5]));
        Assert.Equal(TurnPrompt.Rewritten, turns.Add([x, b, c], [1, 8, 4, 5]));
        Assert.Equal(TurnPrompt.New, turns.Add([new("user", "edited"), b, c], [1, 2, 3, 4, 5, 6])); // history edited
        // Capacity 2: the oldest conversation ([a, b, c]) is forgotten.
        Assert.Equal(TurnPrompt.New, turns.Add([a, b, c, b, c], [1, 2, 3, 4, 5, 6, 7]));
        Assert.Equal((1, 1), (turns.Extended, turns.Rewritten));
    }

    [Fact]
    public void ChatCommandEvaluatesOnlyEachTurnsNewTokens()
    {
        var result = ClockLM.Tests.Cli.ClockLMProcess.RunWithInput("Tom ran\nHe fell\nHe cried\n", TimeSpan.FromMinutes(1),
            "chat", "-m", SharedData.Stories260K, "--temp", "0", "-n", "10", "-t", "1");
        Assert.True(result.ExitCode == 0, result.StdErr);

        // The three prompts the conversation rendered, rebuilt here; every turn after the first reuses at least the
        // previous prompt, and the totals add up to the last prompt's tokens plus the answers' re-evaluated tails.
        using var model = Model.Load(SharedData.Stories260K);
        var prompt = new ChatPrompt(model);
        var history = new List<TemplateMessage>();
        var prompts = new List<int[]>();
        foreach (string line in new[] { "Tom ran", "He fell", "He cried" })
        {
            history.Add(new("user", line));
            int[] ids = prompt.Encode(history);
            prompts.Add(ids);
            string answer = ServerHost.RunAlone(model, ids, 10, SamplerOptions.Greedy);
            int cut = prompt.TemplateStops.Select(s => answer.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(answer.Length).Min();
            history.Add(new("assistant", answer[..cut]));
        }
        var numbers = System.Text.RegularExpressions.Regex.Match(result.StdErr,
            @"prompt tokens: (\d+) evaluated, (\d+) reused from the cache; 2 of 3 turns extended the previous prompt, 0 re-read it");
        Assert.True(numbers.Success, result.StdErr);
        long evaluated = long.Parse(numbers.Groups[1].Value), reused = long.Parse(numbers.Groups[2].Value);
        Assert.Equal(prompts.Sum(p => (long)p.Length), evaluated + reused);
        Assert.True(reused >= prompts[0].Length + prompts[1].Length, $"{reused} tokens reused");
    }

    /// <summary>Copies a GGUF file with <c>tokenizer.chat_template</c> set.</summary>
    private static void WithTemplate(string input, string output, string template)
    {
        using var file = GgufFile.Open(input);
        var writer = new GgufWriter { Alignment = file.Alignment };
        writer.CopyMetadata(file, key => key != "general.alignment");
        writer.Set("tokenizer.chat_template", template);
        foreach (var tensor in file.Tensors)
            writer.AddTensor(tensor.Name, tensor.Type, tensor.Dimensions, file.GetTensorData(tensor).ToArray());
        writer.Write(output);
    }
}
