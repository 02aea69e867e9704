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
    }

    /// <summary>The template in use.</summary>
    public ChatTemplate Template { get; }

    /// <summary>
    /// Stop texts the template implies: with the ChatML fallback, <c>&lt;|im_end|&gt;</c> and <c>&lt;|im_start|&gt;</c> (a model
    /// that was not trained on ChatML writes them as plain text); none otherwise (the model's end-of-turn token stops it).
    /// </summary>
    public IReadOnlyList<string> TemplateStops => Template.IsFallback || Template.Source == ChatTemplate.ChatMLSource
        ? ["<|im_end|>", "<|im_start|>"]
        : [];

    /// <summary>Renders and tokenizes <paramref name="messages"/>, ending with the assistant's turn opened.</summary>
    /// <exception cref="ChatTemplateException">The template rejected the conversation.</exception>
    public int[] Encode(IReadOnlyList<ChatMessage> messages)
    {
        string text = Template.Render(messages, addGenerationPrompt: true);
        var tokenizer = _model.Tokenizer;
        var ids = tokenizer.Encode(text, addSpecial: true, parseSpecial: true);
        // Templates that write the BOS text themselves would otherwise get BOS twice.
        if (ids.Count >= 2 && tokenizer.BosId >= 0 && ids[0] == tokenizer.BosId && ids[1] == tokenizer.BosId)
            ids.RemoveAt(0);
        return ids.ToArray();
    }
}
