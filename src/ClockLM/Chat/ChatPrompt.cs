using System.Text.Json.Nodes;
using ClockLM.Chat.Tools;
using ClockLM.Models;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Chat;

/// <summary>
/// Turns a conversation into prompt ids for a model: its chat template (or ChatML when the file has none) rendered with
/// a generation prompt, then tokenized with special tokens parsed, and BOS added unless the template already wrote it.
/// </summary>
public sealed class ChatPrompt
{
    private readonly Model _model;

    /// <summary>The prompt format of <paramref name="model"/>: the GGUF file's template, or <see cref="ChatTemplate.Fallback"/>.</summary>
    /// <exception cref="ClockLM.Gguf.GgufFormatException">The file's template does not parse.</exception>
    public ChatPrompt(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        try
        {
            Template = model.Gguf is { } gguf ? ChatTemplate.FromGguf(gguf) : ChatTemplate.Fallback;
        }
        catch (ChatTemplateException e)
        {
            string at = e.Line > 0 ? $" (line {e.Line}, column {e.Column})" : "";
            throw new ClockLM.Gguf.GgufFormatException(model.Path, $"tokenizer.chat_template cannot be used{at}: {e.Reason}");
        }
        ToolFormat = ToolCallFormat.For(Template);
    }

    /// <summary>The template in use.</summary>
    public ChatTemplate Template { get; }

    /// <summary>How this template's model writes tool calls.</summary>
    public ToolCallFormat ToolFormat { get; }

    /// <summary>
    /// Stop texts the template implies: with the ChatML fallback, <c>&lt;|im_end|&gt;</c> and <c>&lt;|im_start|&gt;</c> (a model
    /// that was not trained on ChatML writes them as plain text); none otherwise (the model's end-of-turn token stops it).
    /// </summary>
    public IReadOnlyList<string> TemplateStops => Template.IsFallback || Template.Source == ChatTemplate.ChatMLSource
        ? ["<|im_end|>", "<|im_start|>"]
        : [];

    /// <summary>Renders and tokenizes <paramref name="messages"/>, ending with the assistant's turn opened.</summary>
    /// <exception cref="ChatTemplateException">The template rejected the conversation.</exception>
    public int[] Encode(IReadOnlyList<ChatMessage> messages) => Encode(messages, tools: null);

    /// <summary>
    /// Renders and tokenizes <paramref name="messages"/> with <paramref name="tools"/> offered: the template sees them
    /// as <c>tools</c> (OpenAI's shape, as the published templates expect); a template that does not show tools gets
    /// them described in a system message (<see cref="ToolCallFormat.ToolSystemMessage"/>).
    /// </summary>
    /// <exception cref="ChatTemplateException">The template rejected the conversation.</exception>
    public int[] Encode(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition>? tools)
    {
        Dictionary<string, object?>? extra = null;
        if (tools is { Count: > 0 })
        {
            extra = new() { ["tools"] = new JsonArray(tools.Select(t => (JsonNode)t.ToTemplateJson()).ToArray()) };
            if (ToolFormat.ToolSystemMessage(tools) is { } described)
                messages = messages.Count > 0 && messages[0].Role == "system"
                    ? [messages[0] with { Content = messages[0].Content + "\n\n" + described }, .. messages.Skip(1)]
                    : [new ChatMessage("system", described), .. messages];
        }
        return Encode(Template.Render(messages, addGenerationPrompt: true, extra));
    }

    /// <summary>
    /// How many tokens of <paramref name="prompt"/> (the encoding of <paramref name="messages"/>) after BOS hold the
    /// leading system messages: what a context shift keeps by default. The system messages are rendered alone and the
    /// tokens they share with the prompt counted, so a template that renders them otherwise on their own costs only
    /// their differing tail; 0 without system messages or when the template refuses them alone.
    /// </summary>
    public int SystemPromptTokens(IReadOnlyList<ChatMessage> messages, ReadOnlySpan<int> prompt)
    {
        int count = 0;
        while (count < messages.Count && messages[count].Role == "system") count++;
        if (count == 0) return 0;
        int[] system;
        try
        {
            system = Encode(Template.Render(messages.Take(count).ToList(), addGenerationPrompt: false));
        }
        catch (ChatTemplateException)
        {
            return 0;
        }
        int common = 0;
        while (common < system.Length && common < prompt.Length && system[common] == prompt[common]) common++;
        bool bos = prompt.Length > 0 && prompt[0] == _model.Tokenizer.BosId;
        return Math.Max(0, common - (bos ? 1 : 0));
    }

    private int[] Encode(string text)
    {
        var tokenizer = _model.Tokenizer;
        var ids = tokenizer.Encode(text, addSpecial: true, parseSpecial: true);
        // Templates that write the BOS text themselves would otherwise get BOS twice.
        if (ids.Count >= 2 && tokenizer.BosId >= 0 && ids[0] == tokenizer.BosId && ids[1] == tokenizer.BosId)
            ids.RemoveAt(0);
        return ids.ToArray();
    }
}
