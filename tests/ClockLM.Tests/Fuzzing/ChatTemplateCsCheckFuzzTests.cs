using ClockLM.Tests.ChatTemplates;
using ClockLM.Tokenizers.ChatTemplates;
using CsCheck;
using Xunit.Abstractions;

namespace ClockLM.Tests.Fuzzing;

/// <summary>The chat-template lexer, parser and renderer on random Jinja fragments and random characters: a template
/// parses and renders, or fails with a <see cref="ChatTemplateException"/>, within the sandbox's limits.</summary>
public sealed class ChatTemplateCsCheckFuzzTests(ITestOutputHelper output)
{
    private static readonly Gen<string> Templates = Gen.OneOf<string>(
        Gen.OneOf<string>(ChatTemplateFuzzTests.Fragments).Array[1, 40].Select(f => string.Join(" ", f)),
        Gen.OneOf<string>(ChatTemplateFuzzTests.Fragments).Array[1, 40].Select(string.Concat),
        Gen.Char[char.MinValue, char.MaxValue].Array[0, 60].Select(c => "{{ " + new string(c) + " }}"),
        Gen.String);

    private static readonly Gen<ChatMessage[]> Conversations =
        Gen.Select(Gen.OneOf<string>("system", "user", "assistant", "tool", "", "\ud800"), Gen.String)
            .Select((role, content) => new ChatMessage(role, content)).Array[0, 6];

    [Fact]
    public void TemplatesParseAndRenderOrFailWithTheTemplateError()
    {
        FuzzBudget.Run(output, "chat templates", Gen.Select(Templates, Conversations, Gen.Bool), input =>
        {
            var (source, messages, generationPrompt) = input;
            try
            {
                ChatTemplate.Parse(source, ChatTemplateFuzzTests.Small).Render(messages, generationPrompt, "<s>", "</s>");
            }
            catch (ChatTemplateException) { }
        }, print: i => $"template: {i.Item1}\nmessages: {string.Join(" | ", i.Item2.Select(m => m.Role + ": " + m.Content))}");
    }
}
