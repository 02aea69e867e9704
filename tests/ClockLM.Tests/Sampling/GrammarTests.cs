using System.Text;
using System.Text.RegularExpressions;
using ClockLM.Sampling.Grammars;

namespace ClockLM.Tests.Sampling;

/// <summary>GBNF parsing, compilation to bytes and matching, against .NET's regular expressions as the reference.</summary>
public sealed class GrammarTests
{
    /// <summary>True when the whole of <paramref name="text"/> is a sentence of the grammar.</summary>
    internal static bool Matches(Grammar grammar, string text) => Matches(grammar, Encoding.UTF8.GetBytes(text));

    internal static bool Matches(Grammar grammar, byte[] bytes)
    {
        var automaton = new GrammarAutomaton(grammar);
        int state = automaton.Step(automaton.Start, bytes);
        return state >= 0 && automaton.Accepts(state);
    }

    /// <summary>True when <paramref name="text"/> can be continued into a sentence (or is one).</summary>
    internal static bool IsPrefix(Grammar grammar, byte[] bytes)
    {
        var automaton = new GrammarAutomaton(grammar);
        return automaton.Step(automaton.Start, bytes) >= 0;
    }

    [Theory]
    [InlineData("root ::= \"a\" | ", "|a|aa|b", "1100")]
    [InlineData("root ::= (\"ab\" | \"c\")* \"d\"", "d|abd|cabcd|abcab|abc d", "11100")]
    [InlineData("root ::= [a-c]{2,3} [^a-c]?", "ab|abc|abcd|abcc|a|abz", "111001")]
    [InlineData("root ::= x{0}\nx ::= \"q\"", "|q", "10")]
    [InlineData("root ::= ((\"a\" \"b\"?)+ \",\")* end\nend ::= \"!\"", "!|a,!|ab,aab,!|b,!|a,a!", "11100")]
    [InlineData("root ::= [\\x41-\\x43] \"\\u00e9\" \"\\n\" [\\]\\[] # comment\n", "Aé\n]|Cé\n[|Dé\n]", "110")]
    [InlineData("root ::= .+", "x|é|一二|", "1110")]
    public void MatchesWholeSentences(string gbnf, string texts, string expected)
    {
        var grammar = Grammar.Parse(gbnf);
        var cases = texts.Split('|');
        for (int i = 0; i < cases.Length; i++)
            Assert.True(expected[i] == '1' == Matches(grammar, cases[i]), $"'{cases[i]}' should {(expected[i] == '1' ? "" : "not ")}match {gbnf}");
    }

    /// <summary>The same language written as GBNF and as a .NET regex agree on every string of a random sample, each
    /// string also cut at every byte (prefixes of sentences must be alive, other prefixes dead).</summary>
    [Fact]
    public void AgreesWithRegexOnRandomStrings()
    {
        var grammar = Grammar.Parse("""
            root ::= item ("," ws item)* | "[]"
            item ::= [0-9]{1,3} | "\"" [^"\\]* "\"" | han+
            han ::= [一-龥]
            ws ::= " "?
            """);
        var regex = new Regex("^(?:(?:[0-9]{1,3}|\"[^\"\\\\]*\"|[\u4e00-\u9fa5]+)(?:, ?(?:[0-9]{1,3}|\"[^\"\\\\]*\"|[\u4e00-\u9fa5]+))*|\\[\\])$");
        string alphabet = "0123,\" []x一龥\u4dff\u9fa6\\é";
        var rng = new Random(7);
        int matched = 0;
        for (int n = 0; n < 3000; n++)
        {
            var sb = new StringBuilder();
            int length = rng.Next(0, 8);
            for (int i = 0; i < length; i++) sb.Append(alphabet[rng.Next(alphabet.Length)]);
            string text = sb.ToString();
            bool expected = regex.IsMatch(text);
            matched += expected ? 1 : 0;
            Assert.True(expected == Matches(grammar, text), $"'{text}': regex says {expected}");
        }
        Assert.True(matched > 100, $"only {matched} of the random strings matched: the sample tests too little");
    }

    [Fact]
    public void CjkRangeIsMatchedByteByByteIncludingPartialCharacters()
    {
        var grammar = Grammar.Parse("root ::= [一-龥]+");
        Assert.True(Matches(grammar, "一"));
        Assert.True(Matches(grammar, "龥"));
        Assert.True(Matches(grammar, "中文"));
        Assert.False(Matches(grammar, "\u4dff"));  // just below 一
        Assert.False(Matches(grammar, "\u9fa6"));  // just above 龥
        byte[] zhong = Encoding.UTF8.GetBytes("中"); // E4 B8 AD
        Assert.True(IsPrefix(grammar, zhong[..1]));
        Assert.True(IsPrefix(grammar, zhong[..2]));
        Assert.False(Matches(grammar, zhong[..2]));   // half a character is not a sentence
        Assert.False(IsPrefix(grammar, [0xE4, 0xB7])); // U+4DC0.. is below the range
        Assert.False(IsPrefix(grammar, [0xC3]));       // a two-byte lead cannot start a CJK character
    }

    [Fact]
    public void NegatedClassCoversAllOfUnicodeButItsMembers()
    {
        var grammar = Grammar.Parse("root ::= [^a\\n]");
        foreach (int cp in new[] { 0, 'b', 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF })
            Assert.True(Matches(grammar, char.ConvertFromUtf32(cp)), $"U+{cp:X4}");
        Assert.False(Matches(grammar, "a"));
        Assert.False(Matches(grammar, "\n"));
        Assert.False(IsPrefix(grammar, [0xED, 0xA0])); // a surrogate's encoding is not UTF-8
        Assert.False(IsPrefix(grammar, [0xF4, 0x90])); // beyond U+10FFFF
        Assert.False(IsPrefix(grammar, [0xC0]));       // overlong
    }

    [Fact]
    public void RepetitionDoesNotGrowTheStack()
    {
        var grammar = Grammar.Parse("root ::= (\"ab\" | [0-9])*");
        var automaton = new GrammarAutomaton(grammar);
        int state = automaton.Start;
        for (int i = 0; i < 2000; i++) state = automaton.Step(state, Encoding.ASCII.GetBytes(i % 2 == 0 ? "ab" : "7"));
        Assert.True(automaton.Accepts(state));
        Assert.True(automaton.StateCount < 10, $"{automaton.StateCount} states for a loop: the stack grew");
        Assert.True(automaton.FrameCount < 10, $"{automaton.FrameCount} frames for a loop: the stack grew");
    }

    [Fact]
    public void RecursiveRulesNestAndUnwind()
    {
        var grammar = Grammar.Parse("root ::= list\nlist ::= \"[\" (list (\",\" list)*)? \"]\"");
        Assert.True(Matches(grammar, "[]"));
        Assert.True(Matches(grammar, "[[],[[]],[[[]]]]"));
        Assert.False(Matches(grammar, "[[]"));
        Assert.False(Matches(grammar, "[],[]"));
        Assert.True(Matches(grammar, new string('[', 300) + new string(']', 300)));
    }

    [Theory]
    [InlineData("root ::= \"a\"\nroot ::= \"b\"", 2, 1, "defined twice")]
    [InlineData("root ::= foo", 1, 10, "'foo' is not defined")]
    [InlineData("rot ::= \"a\"", 1, 1, "no 'root' rule")]
    [InlineData("", 1, 1, "empty")]
    [InlineData("root ::= \"abc", 1, 10, "unterminated literal")]
    [InlineData("root ::= [a-", 1, 10, "unterminated")]
    [InlineData("root ::= (\"a\" | \"b\"\n", 2, 1, "expected ')'")]
    [InlineData("root ::= \"a\" )", 1, 14, "unexpected ')'")]
    [InlineData("root ::= * \"a\"", 1, 10, "must follow an item")]
    [InlineData("root ::= \"a\"{3,2}", 1, 13, "maximum below its minimum")]
    [InlineData("root ::= \"a\"{99999}", 1, 14, "above the limit")]
    [InlineData("root ::= \"\\q\"", 1, 11, "unknown escape")]
    [InlineData("root ::= [z-a]", 1, 11, "ends below its start")]
    [InlineData("root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"", 2, 1, "left recursion: 'expr' -> 'expr'")]
    [InlineData("root ::= a\na ::= b? a \"x\" | \"y\"\nb ::= \"z\"", 2, 1, "left recursion")]
    [InlineData("root ::= <[42]>", 1, 10, "token references")]
    [InlineData("root  \"a\"", 1, 7, "expected '::='")]
    public void ErrorsGiveLineAndColumn(string gbnf, int line, int column, string problem)
    {
        var e = Assert.Throws<GrammarException>(() => Grammar.Parse(gbnf));
        Assert.Contains(problem, e.Message);
        Assert.Equal((line, column), (e.Line, e.Column));
        Assert.StartsWith($"grammar {line}:{column}: ", e.Message);
    }

    [Fact]
    public void RulesContinueOverLinesInsideGroupsAndAfterBars()
    {
        var grammar = Grammar.Parse("""
            # a comment line
            root ::= (
                "a"   # first
              | "b"
            ) tail
                | "c"
            tail ::= "!"
            """);
        Assert.True(Matches(grammar, "a!"));
        Assert.True(Matches(grammar, "b!"));
        Assert.True(Matches(grammar, "c"));
        Assert.False(Matches(grammar, "c!"));
    }
}
