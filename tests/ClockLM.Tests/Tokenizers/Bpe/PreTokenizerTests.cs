using ClockLM.Tokenizers.PreTokenizers;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>The word splitters: hand-written rules against the general regex machinery, known splits, and coverage.</summary>
public sealed class PreTokenizerTests
{
    private const string Llama3Pattern =
        @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    [Fact]
    public void HandWrittenGpt2SplitEqualsTheRegex()
    {
        // GPT-2's full pattern ends in "|\s+"; the hand-written rule lets lone white space stand alone, which is the same.
        var byHand = new PreTokenizer("hand", new Gpt2SplitRule());
        var byRegex = new PreTokenizer("regex", new RegexSplitRule(PreTokenizer.Gpt2Pattern + @"|\s+"));
        AssertSameSplits(byHand, byRegex, seed: 1);
    }

    [Fact]
    public void HandWrittenLlama3SplitEqualsTheRegex()
    {
        var byHand = new PreTokenizer("hand", new Llama3SplitRule());
        var byRegex = new PreTokenizer("regex", new RegexSplitRule(Llama3Pattern));
        AssertSameSplits(byHand, byRegex, seed: 2);
    }

    private static void AssertSameSplits(PreTokenizer a, PreTokenizer b, int seed)
    {
        var random = new Random(seed);
        for (int i = 0; i < 2000; i++)
        {
            string text = RandomText.Next(random);
            Assert.Equal(b.SplitToStrings(text), a.SplitToStrings(text));
        }
    }

    [Theory]
    [InlineData("gpt-2", "Hello world's  end\n\n x", new[] { "Hello", " world", "'s", " ", " end", "\n\n", " x" })]
    [InlineData("gpt-2", "I'LL 12345!!", new[] { "I", "'", "LL", " 12345", "!!" })]
    [InlineData("llama-bpe", "Hello 123456 world's\n\n  x", new[] { "Hello", " ", "123", "456", " world", "'s", "\n\n", " ", " x" })]
    [InlineData("llama-bpe", "I'LL ...\n\nok", new[] { "I", "'LL", " ...\n\n", "ok" })]
    [InlineData("qwen2", "abc 2024 x", new[] { "abc", " ", "2", "0", "2", "4", " x" })]
    [InlineData("starcoder", "x=12 y", new[] { "x", "=", "1", "2", " y" })]
    [InlineData("falcon", "a+b 12345", new[] { "a", "+", "b", " ", "123", "45" })]
    [InlineData("deepseek-coder", "foo(12)\nbar", new[] { "foo", "(", "1", "2", ")", "\n", "bar" })]
    [InlineData("deepseek-llm", "Hi 我想 123 ok  ", new[] { "Hi", " ", "我想", " ", "123", " ok", "  " })]
    public void KnownSplits(string name, string text, string[] expected)
    {
        PreTokenizer pre = PreTokenizer.ForName(name)!;
        Assert.Equal(expected, pre.SplitToStrings(text));
    }

    [Fact]
    public void EveryPreTokenizerCoversTheTextExactly()
    {
        var random = new Random(3);
        var texts = Enumerable.Range(0, 300).Select(_ => RandomText.Next(random)).ToList();
        foreach (string name in PreTokenizer.KnownNames)
        {
            PreTokenizer pre = PreTokenizer.ForName(name)!;
            foreach (string text in texts)
            {
                List<string> words = pre.SplitToStrings(text);
                Assert.Equal(text, string.Concat(words));
                Assert.DoesNotContain("", words);
            }
        }
    }

    [Fact]
    public void UnknownNameIsNull() => Assert.Null(PreTokenizer.ForName("no-such-pre-tokenizer"));

    [Fact]
    public void EmptyOrMissingNameIsDefault() => Assert.Equal("default", PreTokenizer.ForName(null)!.Name);

    [Fact]
    public void ClassesFollowUnicodeCategories()
    {
        Assert.Equal(UnicodeClass.Letter, UnicodeClasses.Of('a'));
        Assert.Equal(UnicodeClass.Number, UnicodeClasses.Of('٣'));
        Assert.Equal(UnicodeClass.Separator | UnicodeClass.Whitespace, UnicodeClasses.Of(' '));
        Assert.Equal(UnicodeClass.Other | UnicodeClass.Whitespace, UnicodeClasses.Of('\t'));
        Assert.Equal(UnicodeClass.Symbol, UnicodeClasses.Of(0x1F999));
        Assert.Equal(UnicodeClass.Other, UnicodeClasses.Of(0x200D));
        Assert.Equal(UnicodeClass.Mark, UnicodeClasses.Of(0x301));
        Assert.Equal('e', UnicodeClasses.NfdBase('é'));
        Assert.Equal(0x1100, UnicodeClasses.NfdBase('가'));
        Assert.Equal('a', UnicodeClasses.NfdBase('a'));
    }
}
