using ClockLM.Gguf;

namespace ClockLM.Tokenizers.ChatTemplates;

/// <summary>
/// A chat template: the Jinja program a model file carries (<c>tokenizer.chat_template</c>) that turns a
/// conversation into the prompt text the model was trained on. Rendered by ClockLM's own sandboxed interpreter
/// with the settings Hugging Face's <c>apply_chat_template</c> uses (<c>trim_blocks</c>, <c>lstrip_blocks</c>,
/// <c>tojson</c> with <c>ensure_ascii=False</c>, <c>raise_exception</c>, <c>strftime_now</c>, loop controls).
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>
    /// The ChatML template used when a model file has none. An assistant turn's tool calls follow its content as the
    /// model is asked to write them (<c>&lt;tool_call&gt;\n{"name": …, "arguments": …}\n&lt;/tool_call&gt;</c>, the system
    /// message of <see cref="ClockLM.Chat.Tools.ToolCallFormat.ToolSystemMessage"/>), so a conversation that goes on
    /// after a call still shows the call.
    /// </summary>
    public const string ChatMLSource =
        "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] }}" +
        "{%- if message.tool_calls is defined %}{%- for call in message.tool_calls %}" +
        "{{- '<tool_call>\\n{\"name\": ' + (call.function.name | tojson) + ', \"arguments\": ' + (call.function.arguments | tojson) + '}\\n</tool_call>\\n' }}" +
        "{%- endfor %}{%- endif %}{{- '<|im_end|>\\n' }}{%- endfor %}" +
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    private readonly List<Node> _body;
    private readonly SourceMap _map;

    private ChatTemplate(string source, List<Node> body, SourceMap map, ChatTemplateOptions options)
    {
        Source = source;
        _body = body;
        _map = map;
        Options = options;
    }

    /// <summary>The template text as given.</summary>
    public string Source { get; }

    /// <summary>The sandbox limits this template renders under.</summary>
    public ChatTemplateOptions Options { get; }

    /// <summary>Text of the beginning-of-sequence token, when read from a model file.</summary>
    public string? BosToken { get; init; }

    /// <summary>Text of the end-of-sequence token, when read from a model file.</summary>
    public string? EosToken { get; init; }

    /// <summary>True when the model file had no template and <see cref="Fallback"/> is in use.</summary>
    public bool IsFallback { get; init; }

    /// <summary>The built-in ChatML template (<see cref="ChatMLSource"/>).</summary>
    public static ChatTemplate Fallback { get; } = Parse(ChatMLSource);

    /// <summary>Parses template source.</summary>
    /// <exception cref="ChatTemplateSyntaxException">The text is not valid (line:column and what was expected).</exception>
    /// <exception cref="ChatTemplateLimitException">The text is longer than <see cref="ChatTemplateOptions.MaxTemplateChars"/> or nests too deeply.</exception>
    public static ChatTemplate Parse(string source, ChatTemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= ChatTemplateOptions.Default;
        if (source.Length > options.MaxTemplateChars)
            throw new ChatTemplateLimitException(0, 0, nameof(ChatTemplateOptions.MaxTemplateChars),
                $"template is {source.Length} characters; MaxTemplateChars = {options.MaxTemplateChars}");
        string normalized = TemplateLexer.Normalize(source);
        var map = new SourceMap(normalized);
        var tokens = TemplateLexer.Tokenize(normalized, map);
        var body = TemplateParser.Parse(tokens, map, options.MaxNestingDepth);
        return new ChatTemplate(source, body, map, options);
    }

    /// <summary>
    /// The template of a GGUF model: <c>tokenizer.chat_template</c> (or <see cref="Fallback"/> when absent), with the
    /// BOS/EOS texts looked up in <c>tokenizer.ggml.tokens</c> by <c>tokenizer.ggml.bos_token_id</c>/<c>eos_token_id</c>.
    /// <paramref name="name"/> selects a named variant instead, <c>tokenizer.chat_template.NAME</c> (e.g. <c>tool_use</c>),
    /// which must exist.
    /// </summary>
    /// <exception cref="GgufFormatException">A token id is outside the vocabulary, or the named template is missing.</exception>
    public static ChatTemplate FromGguf(GgufFile file, ChatTemplateOptions? options = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        string key = name == null ? "tokenizer.chat_template" : $"tokenizer.chat_template.{name}";
        string? source = file.GetStringOrNull(key);
        if (source == null && name != null)
            throw new GgufFormatException(file.Path, $"{key} is missing; the file has no chat template named '{name}'");
        string[]? tokens = file.Has("tokenizer.ggml.tokens") ? file.GetArray<string>("tokenizer.ggml.tokens") : null;
        string? TokenText(string key)
        {
            if (!file.Has(key) || tokens == null) return null;
            long id = file.GetInteger(key);
            if (id < 0 || id >= tokens.Length)
                throw new GgufFormatException(file.Path, $"{key} is {id}; expected an id below the vocabulary size {tokens.Length}");
            return tokens[id];
        }
        var template = source == null ? Parse(ChatMLSource, options) : Parse(source, options);
        return new ChatTemplate(template.Source, template._body, template._map, template.Options)
        {
            BosToken = TokenText("tokenizer.ggml.bos_token_id"),
            EosToken = TokenText("tokenizer.ggml.eos_token_id"),
            IsFallback = source == null,
        };
    }

    /// <summary>Renders with the BOS/EOS texts read by <see cref="FromGguf"/>.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, IReadOnlyDictionary<string, object?>? extra = null) =>
        Render(messages, addGenerationPrompt, BosToken, EosToken, extra);

    /// <summary>
    /// Renders the prompt for <paramref name="messages"/>. The template sees <c>messages</c>,
    /// <c>add_generation_prompt</c>, <c>bos_token</c>, <c>eos_token</c> (empty when null), <c>tools</c> and
    /// <c>documents</c> (none unless given), and every entry of <paramref name="extra"/> (e.g. <c>tools</c> as JSON,
    /// <c>enable_thinking</c>, <c>date_string</c>), converted from strings, numbers, bools, lists, dictionaries or
    /// System.Text.Json nodes.
    /// </summary>
    /// <exception cref="ChatTemplateRaisedException">The template rejected the conversation.</exception>
    /// <exception cref="ChatTemplateLimitException">A sandbox limit was hit.</exception>
    /// <exception cref="ChatTemplateException">Any other render error (type errors, undefined values).</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string? bosToken, string? eosToken,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var globals = new Scope(null);
        globals.Set("messages", messages.Select(MessageValue).ToList());
        globals.Set("add_generation_prompt", addGenerationPrompt);
        globals.Set("bos_token", bosToken ?? "");
        globals.Set("eos_token", eosToken ?? "");
        globals.Set("tools", null);
        globals.Set("documents", null);
        if (extra != null)
            foreach (var (key, value) in extra)
                globals.Set(key, PyValue.FromDotNet(value));
        return new TemplateRenderer(Options, _map).Render(_body, globals);
    }

    private static object? MessageValue(ChatMessage m)
    {
        var d = new OrderedDictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content };
        if (m.ToolCalls != null) d["tool_calls"] = PyValue.FromDotNet(m.ToolCalls);
        if (m.ToolCallId != null) d["tool_call_id"] = m.ToolCallId;
        if (m.Name != null) d["name"] = m.Name;
        if (m.ReasoningContent != null) d["reasoning_content"] = m.ReasoningContent;
        return d;
    }
}
