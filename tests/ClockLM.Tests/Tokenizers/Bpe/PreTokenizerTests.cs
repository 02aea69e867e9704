using System.Text;
using System.Text.RegularExpressions;
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

    private const string Gpt2Full = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private const string Cjk = "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+";

    /// <summary>Each preset against the same patterns run by .NET's regex engine directly on the text, without
    /// ClockLM's collapsed classes or hand-written splits.</summary>
    [Theory]
    [InlineData("gpt-2", new[] { Gpt2Full })]
    [InlineData("llama-bpe", new[] { Llama3Pattern })]
    [InlineData("qwen2", new[] { @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+" })]
    [InlineData("default", new[] { @"[\p{P}\$\+<=>\^~\|]+", Gpt2Full, @"\p{N}+", "[0-9][0-9][0-9]" })]
    [InlineData("falcon", new[] { @"[\p{P}\$\+<=>\^~\|`]+", Gpt2Full, "[0-9][0-9][0-9]" })]
    [InlineData("starcoder", new[] { @"\p{N}", Gpt2Full })]
    [InlineData("deepseek-coder", new[] { "[\r\n]", @"\s?\p{L}+", @"\s?\p{P}+", Cjk, @"\p{N}" })]
    [InlineData("tekken", new[] { @"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+" })]
    [InlineData("chameleon", new[] { "<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", @"([\t\n]|    |  )", @"\p{N}", @"[\p{P}!-/:-@\[-`{-~]", Gpt2Full })]
    public void PresetEqualsPlainRegexesOnTheText(string name, string[] patterns)
    {
        var reference = new PreTokenizer("reference", [.. patterns.Select(p => new PlainRegexRule(p))]);
        AssertSameSplits(PreTokenizer.ForName(name)!, reference, seed: name.Length);
    }

    /// <summary>A regex split run by .NET on the text itself, for reference. Like llama.cpp, non-ASCII white space
    /// is shown to the regex as U+000B; a code point beyond U+FFFF (which .NET would see as two chars) is shown as a
    /// BMP character of the same Unicode category, so that the regex sees one char per code point.</summary>
    private sealed class PlainRegexRule(string pattern) : SplitRule
    {
        private readonly Regex _regex = new(pattern, RegexOptions.CultureInvariant);

        internal override void Split(SplitText text, int start, int end, List<int> lengths)
        {
            var chars = new char[end - start];
            for (int i = start; i < end; i++)
            {
                int c = text.Codepoints[i];
                chars[i - start] = c > 0x7F && UnicodeClasses.IsWhitespace(c) ? '\v'
                    : c > 0xFFFF ? Representative(System.Globalization.CharUnicodeInfo.GetUnicodeCategory(c))
                    : (char)c;
            }
            int last = 0;
            foreach (Match m in _regex.Matches(new string(chars)))
            {
                if (m.Index > last) lengths.Add(m.Index - last);
                if (m.Length > 0) lengths.Add(m.Length);
                last = Math.Max(last, m.Index + m.Length);
            }
            if (last < chars.Length) lengths.Add(chars.Length - last);
        }

        // A non-ASCII, non-space BMP character of the category, outside the CJK ranges the patterns name.
        private static char Representative(System.Globalization.UnicodeCategory category)
        {
            for (int c = 0xA1; c < 0xFFFF; c++)
                if (c is < 0x800 or > 0xD7FF && !char.IsSurrogate((char)c) && !UnicodeClasses.IsWhitespace(c)
                    && System.Globalization.CharUnicodeInfo.GetUnicodeCategory(c) == category)
                    return (char)c;
            throw new InvalidOperationException($"no BMP character of category {category}");
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
