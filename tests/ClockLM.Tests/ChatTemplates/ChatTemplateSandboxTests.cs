using System.Diagnostics;
using ClockLM.Gguf;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Tests.ChatTemplates;

/// <summary>Hostile or broken templates end with typed, positioned exceptions; model files supply the template.</summary>
public class ChatTemplateSandboxTests
{
    private static readonly ChatMessage[] Hello = [new("user", "Hello")];

    private static string Render(string template, ChatTemplateOptions? options = null) =>
        ChatTemplate.Parse(template, options).Render(Hello, true, "<s>", "</s>");

    private static ChatTemplateLimitException Limit(string template, ChatTemplateOptions? options = null)
    {
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<ChatTemplateLimitException>(() => Render(template, options));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
        return e;
    }

    [Fact]
    public void HugeLoopStopsAtTheIterationLimit()
    {
        var e = Limit("text\n  {% for i in range(100000000) %}{% endfor %}");
        Assert.Equal(nameof(ChatTemplateOptions.MaxLoopIterations), e.Limit);
        Assert.Equal((2, 3), (e.Line, e.Column));
        Assert.Contains("2:3", e.Message);
        Assert.Contains("1000000", e.Message);
    }

    [Fact]
    public void NestedLoopsCountTogether()
    {
        var options = ChatTemplateOptions.Default with { MaxLoopIterations = 10_000 };
        var e = Limit("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}", options);
        Assert.Equal(nameof(ChatTemplateOptions.MaxLoopIterations), e.Limit);
        Assert.Equal("10000", ChatTemplate.Parse("{% set ns = namespace(n=0) %}{% for i in range(100) %}{% for j in range(99) %}{% set ns.n = ns.n + 1 %}{% endfor %}{% endfor %}{{ ns.n + 100 }}",
            options).Render(Hello, true, "", ""));
    }

    [Fact]
    public void HugeStringStopsAtTheOutputLimit()
    {
        var e = Limit("{{ 'x' * 1000000000 }}");
        Assert.Equal(nameof(ChatTemplateOptions.MaxOutputChars), e.Limit);
        Assert.Equal((1, 8), (e.Line, e.Column));
    }

    [Fact]
    public void GrowingOutputStopsAtTheOutputLimit()
    {
        var e = Limit("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", ChatTemplateOptions.Default with { MaxOutputChars = 1_000_000 });
        Assert.Equal(nameof(ChatTemplateOptions.MaxOutputChars), e.Limit);
        var small = Limit("{% for i in range(100) %}abcdefghij{% endfor %}", ChatTemplateOptions.Default with { MaxOutputChars = 500 });
        Assert.Equal(nameof(ChatTemplateOptions.MaxOutputChars), small.Limit);
        Assert.Equal(1000, Render("{% for i in range(100) %}abcdefghij{% endfor %}").Length);
    }

    [Fact]
    public void ExponentialValuesStopAtTheOutputLimit()
    {
        // Each step doubles the printed size of ns.x: 2^40 characters if it were printed.
        var options = ChatTemplateOptions.Default with { MaxOutputChars = 1_000_000 };
        var e = Limit("{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}", options);
        Assert.Equal(nameof(ChatTemplateOptions.MaxOutputChars), e.Limit);
        var cycle = Limit("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns }}");
        Assert.Equal(nameof(ChatTemplateOptions.MaxOutputChars), cycle.Limit);
    }

    [Fact]
    public void ListsAreBounded()
    {
        var e = Limit("{{ range(100000000)|list|length }}");
        Assert.Equal(nameof(ChatTemplateOptions.MaxListLength), e.Limit);
        Assert.Equal(nameof(ChatTemplateOptions.MaxListLength), Limit("{{ ([1] * 100000000)|length }}").Limit);
    }

    [Fact]
    public void FiltersDoNotWalkHugeRanges()
    {
        Assert.Equal(nameof(ChatTemplateOptions.MaxListLength), Limit("{{ range(10**12)|sum }}").Limit);
        Assert.Equal(nameof(ChatTemplateOptions.MaxListLength), Limit("{{ range(10**12)|select('odd')|first }}").Limit);
        Assert.Equal("499999500000", Render("{{ range(1000000)|sum }}"));
        Assert.Equal("True", Render("{{ 10**11 in range(10**12) }}"));
    }

    [Fact]
    public void ComparisonsOfSharedOrDeepValuesAreBounded()
    {
        // ns.a and ns.b are distinct lists whose expansion has 2^40 leaves.
        var e = Limit("{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}");
        Assert.Equal("MaxCompareSteps", e.Limit);
        var deep = Limit("{% set ns = namespace(a=[], b=[]) %}{% for i in range(1000) %}{% set ns.a = [ns.a] %}{% set ns.b = [ns.b] %}{% endfor %}{{ ns.a == ns.b }}");
        Assert.Equal("MaxCompareSteps", deep.Limit);
        Assert.Equal("True", Render("{{ [[1, [2]], {'a': [3]}] == [[1, [2]], {'a': [3]}] }}"));
    }

    [Fact]
    public void DeepMacroRecursionStops()
    {
        var e = Limit("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}");
        Assert.Equal(nameof(ChatTemplateOptions.MaxCallDepth), e.Limit);
        Assert.Contains("'f'", e.Message);
        // Mutual recursion too, and within the limit recursion works.
        Assert.Equal(nameof(ChatTemplateOptions.MaxCallDepth),
            Limit("{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{% endmacro %}{{ a(1) }}").Limit);
        Assert.Equal("3210", Render("{% macro down(n) %}{{ n }}{% if n > 0 %}{{ down(n - 1) }}{% endif %}{% endmacro %}{{ down(3) }}"));
    }

    [Fact]
    public void DeepNestingInTheSourceIsRejectedWithoutStackOverflow()
    {
        var parens = Limit("{{ " + new string('(', 100_000) + "1" + new string(')', 100_000) + " }}");
        Assert.Equal(nameof(ChatTemplateOptions.MaxNestingDepth), parens.Limit);
        var ifs = Limit(string.Concat(Enumerable.Repeat("{% if true %}", 10_000)) + string.Concat(Enumerable.Repeat("{% endif %}", 10_000)));
        Assert.Equal(nameof(ChatTemplateOptions.MaxNestingDepth), ifs.Limit);
        var nots = Limit("{{ " + string.Concat(Enumerable.Repeat("not ", 100_000)) + "x }}");
        Assert.Equal(nameof(ChatTemplateOptions.MaxNestingDepth), nots.Limit);
        Assert.Equal("1", Render("{{ " + new string('(', 50) + "1" + new string(')', 50) + " }}"));
    }

    [Fact]
    public void TemplateSizeAndTimeAreBounded()
    {
        var size = Assert.Throws<ChatTemplateLimitException>(() =>
            ChatTemplate.Parse(new string('x', 200), ChatTemplateOptions.Default with { MaxTemplateChars = 100 }));
        Assert.Equal(nameof(ChatTemplateOptions.MaxTemplateChars), size.Limit);
        var time = Limit("{% for i in range(100000) %}{{ i }}{% endfor %}", ChatTemplateOptions.Default with { Timeout = TimeSpan.Zero });
        Assert.Equal(nameof(ChatTemplateOptions.Timeout), time.Limit);
    }

    [Theory]
    [InlineData("{% if x %}\nabc", 2, 4, "expected '{% elif' or '{% else' or '{% endif %}' to close the block opened at 1:1")]
    [InlineData("Hello\n  {{ 1 + }}", 2, 10, "expected an expression, found '}}'")]
    [InlineData("{% for x y %}{% endfor %}", 1, 10, "expected 'in' in for loop, found 'y'")]
    [InlineData("{{ x | nosuchfilter }}", 1, 8, "unknown filter 'nosuchfilter'")]
    [InlineData("{{ x is nosuchtest }}", 1, 9, "unknown test 'nosuchtest'")]
    [InlineData("ab\n{% include 'x.jinja' %}", 2, 4, "unknown tag 'include'")]
    [InlineData("{{ 'abc }}", 1, 4, "string literal is never closed")]
    [InlineData("{{ x ", 1, 1, "tag is never closed; expected '}}'")]
    [InlineData("{# never closed", 1, 1, "comment '{#' is never closed")]
    [InlineData("{% break %}", 1, 4, "'break' outside of a for loop")]
    [InlineData("{{ a b }}", 1, 6, "expected '}}', found 'b'")]
    [InlineData("{% set x = [1, 2 %}", 1, 12, "'[' is never closed before '%}' at 1:18")]
    public void SyntaxErrorsNameLineColumnAndExpectation(string template, int line, int column, string reason)
    {
        var e = Assert.Throws<ChatTemplateSyntaxException>(() => ChatTemplate.Parse(template));
        Assert.Equal((line, column), (e.Line, e.Column));
        Assert.Contains(reason, e.Message);
        Assert.StartsWith($"chat template {line}:{column}: ", e.Message);
    }

    [Fact]
    public void FromGgufReadsTemplateAndSpecialTokenTexts()
    {
        using var dir = new TempDir();
        string path = dir.File("chat.gguf");
        new GgufWriter()
            .Set("general.architecture", "llama")
            .Set("tokenizer.ggml.model", "llama")
            .Set("tokenizer.ggml.tokens", GgufValue.From(["<unk>", "<s>", "</s>", "hi"]))
            .Set("tokenizer.ggml.bos_token_id", 1u)
            .Set("tokenizer.ggml.eos_token_id", 2u)
            .Set("tokenizer.chat_template", PublishedTemplates.Llama2Chat)
            .Set("tokenizer.chat_template.tool_use", "{{ bos_token }}tools:{{ tools|tojson }}")
            .Write(path);
        using var file = GgufFile.Open(path);
        Assert.Equal("<s>tools:[1, 2]", ChatTemplate.FromGguf(file, name: "tool_use").Render([], true, new Dictionary<string, object?> { ["tools"] = new[] { 1, 2 } }));
        var missing = Assert.Throws<GgufFormatException>(() => ChatTemplate.FromGguf(file, name: "rag"));
        Assert.Contains("tokenizer.chat_template.rag is missing", missing.Message);
        var template = ChatTemplate.FromGguf(file);
        Assert.False(template.IsFallback);
        Assert.Equal("<s>", template.BosToken);
        Assert.Equal("</s>", template.EosToken);
        Assert.Equal("<s>[INST] Hi [/INST] Hello </s><s>[INST] Again [/INST]",
            template.Render([new("user", "Hi"), new("assistant", "Hello"), new("user", "Again")]));
    }

    [Fact]
    public void FromGguf_Phi3VocabularyFromLlamaCpp()
    {
        // llama.cpp's models/ggml-vocab-phi-3.gguf carries Phi-3-mini's original template (which drops system turns).
        using var file = GgufFile.Open(SharedData.Vocab("ggml-vocab-phi-3.gguf"));
        var template = ChatTemplate.FromGguf(file);
        Assert.False(template.IsFallback);
        Assert.Equal(("<s>", "<|endoftext|>"), (template.BosToken, template.EosToken));
        ChatMessage[] conversation =
        [
            new("system", "You are a helpful assistant"), new("user", "Hello"), new("assistant", "Hi there"),
            new("user", "Who are you"), new("assistant", "   I am an assistant   "), new("user", "Another question"),
        ];
        // Rendered by Jinja2 3.1.6 with transformers' settings.
        Assert.Equal(
            "<s><|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n" +
            "<|user|>\nAnother question<|end|>\n<|assistant|>\n",
            template.Render(conversation));
    }

    [Fact]
    public void FromGguf_UsesChatMLWhenTheFileHasNoTemplate()
    {
        using var dir = new TempDir();
        string path = dir.File("plain.gguf");
        new GgufWriter()
            .Set("general.architecture", "llama")
            .Set("tokenizer.ggml.tokens", GgufValue.From(["<unk>", "<|im_start|>", "<|im_end|>"]))
            .Set("tokenizer.ggml.eos_token_id", 2u)
            .Write(path);
        using var file = GgufFile.Open(path);
        var template = ChatTemplate.FromGguf(file);
        Assert.True(template.IsFallback);
        Assert.Null(template.BosToken);
        Assert.Equal("<|im_end|>", template.EosToken);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", template.Render([new("user", "Hi")]));
    }

    [Fact]
    public void FromGguf_RejectsTokenIdsOutsideTheVocabulary()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.gguf");
        new GgufWriter()
            .Set("general.architecture", "llama")
            .Set("tokenizer.ggml.tokens", GgufValue.From(["<unk>"]))
            .Set("tokenizer.ggml.bos_token_id", 7u)
            .Write(path);
        using var file = GgufFile.Open(path);
        var e = Assert.Throws<GgufFormatException>(() => ChatTemplate.FromGguf(file));
        Assert.Contains("tokenizer.ggml.bos_token_id is 7", e.Message);
    }
}
