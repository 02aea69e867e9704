using System.Collections.Concurrent;

namespace ClockLM.Tokenizers.PreTokenizers;

/// <summary>
/// Cuts text into words before byte-pair merging, as llama.cpp does for each <c>tokenizer.ggml.pre</c> value:
/// a sequence of <see cref="SplitRule"/>s, each refining the pieces the previous ones produced.
/// </summary>
public sealed class PreTokenizer
{
    /// <summary>GPT-2's pattern as written in its tokenizer (without the final <c>|\s+</c>).</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    private const string Llama3LikePattern = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    private const string CjkPattern = "[一-龥ࠀ-一가-퟿]+";
    private const string DeepSeekLetters = "A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃";

    private static readonly ConcurrentDictionary<string, PreTokenizer> Cache = new();

    private readonly SplitRule[] _rules;

    /// <summary>Creates a pre-tokenizer that applies <paramref name="rules"/> in order.</summary>
    public PreTokenizer(string name, params SplitRule[] rules)
    {
        Name = name;
        _rules = rules;
    }

    /// <summary>The <c>tokenizer.ggml.pre</c> name this pre-tokenizer was made for.</summary>
    public string Name { get; }

    /// <summary>The rules, in the order they are applied.</summary>
    public IReadOnlyList<SplitRule> Rules => _rules;

    /// <summary>The <c>tokenizer.ggml.pre</c> values ClockLM knows.</summary>
    public static IReadOnlyList<string> KnownNames { get; } =
    [
        "default", "llama3", "llama-v3", "llama-bpe", "falcon3", "deepseek-llm", "deepseek-coder", "falcon", "mpt",
        "starcoder", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de",
        "jina-v2-code", "roberta-bpe", "refact", "command-r", "qwen2", "megrez", "stablelm2", "olmo", "dbrx", "smaug-bpe",
        "poro-chat", "chatglm-bpe", "viking", "jais", "smollm", "codeshell", "bloom", "gpt3-finnish", "exaone", "minerva-7b", "tekken", "chameleon",
    ];

    /// <summary>The pre-tokenizer for a <c>tokenizer.ggml.pre</c> value (an empty or missing value means "default"),
    /// or null when the name is unknown.</summary>
    public static PreTokenizer? ForName(string? name)
    {
        name = string.IsNullOrEmpty(name) ? "default" : name;
        if (!KnownNames.Contains(name))
            return null;
        return Cache.GetOrAdd(name, n => new PreTokenizer(n, RulesFor(n)));
    }

    /// <summary>Whether this pre-tokenizer's vocabularies look a whole word up before merging (llama.cpp's
    /// <c>ignore_merges</c>, set for Llama 3).</summary>
    public bool IgnoresMerges => Name is "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "tekken";

    /// <summary>Splits <paramref name="codepoints"/> into words; returns their lengths in code points, in order.</summary>
    public List<int> Split(int[] codepoints)
    {
        var lengths = new List<int>();
        if (codepoints.Length == 0)
            return lengths;
        lengths.Add(codepoints.Length);
        var text = new SplitText(codepoints);
        foreach (SplitRule rule in _rules)
        {
            var next = new List<int>(lengths.Count * 2);
            int start = 0;
            foreach (int length in lengths)
            {
                rule.Split(text, start, start + length, next);
                start += length;
            }
            lengths = next;
        }
        return lengths;
    }

    /// <summary>Splits <paramref name="text"/> into words (convenience for inspection and tests).</summary>
    public List<string> SplitToStrings(string text)
    {
        int[] cps = UnicodeClasses.ToCodepoints(text);
        var words = new List<string>();
        int start = 0;
        foreach (int length in Split(cps))
        {
            var sb = new System.Text.StringBuilder();
            for (int i = start; i < start + length; i++)
                sb.Append(char.ConvertFromUtf32(cps[i]));
            words.Add(sb.ToString());
            start += length;
        }
        return words;
    }

    private static SplitRule[] RulesFor(string name) => name switch
    {
        "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "dbrx" or "smaug-bpe" or "chatglm-bpe" =>
            [new Llama3SplitRule()],
        "deepseek-llm" =>
        [
            new RegexSplitRule("[\r\n]"),
            new RegexSplitRule(@"\s?[" + DeepSeekLetters + "]+"),
            new RegexSplitRule(@"\s?[!-/:-~！-／：-～‘-‟　-。]+"),
            new RegexSplitRule(@"\s+$"),
            new RegexSplitRule(CjkPattern),
            new RegexSplitRule(@"\p{N}+"),
        ],
        "deepseek-coder" =>
        [
            new RegexSplitRule("[\r\n]"),
            new RegexSplitRule(@"\s?\p{L}+"),
            new RegexSplitRule(@"\s?\p{P}+"),
            new RegexSplitRule(CjkPattern),
            new RegexSplitRule(@"\p{N}"),
        ],
        "falcon" =>
        [
            new RegexSplitRule(@"[\p{P}\$\+<=>\^~\|`]+"),
            new Gpt2SplitRule(),
            new RegexSplitRule("[0-9][0-9][0-9]"),
        ],
        "starcoder" or "refact" or "command-r" or "smollm" or "codeshell" or "exaone" or "minerva-7b" =>
            [new RegexSplitRule(@"\p{N}"), new Gpt2SplitRule()],
        "gpt-2" or "phi-2" or "jina-es" or "jina-de" or "gigachat" or "jina-v1-en" or "jina-v2-es" or "jina-v2-de"
            or "jina-v2-code" or "roberta-bpe" or "mpt" or "olmo" or "jais" =>
            [new Gpt2SplitRule()],
        "qwen2" or "megrez" or "stablelm2" => [new RegexSplitRule(Llama3LikePattern)],
        "poro-chat" or "bloom" or "gpt3-finnish" => [new RegexSplitRule(@" ?[^(\s|.,!?…。，、।۔،)]+")],
        "viking" => [new RegexSplitRule(@" ?[^(\s|.,!?…。，、।۔،)]+"), new RegexSplitRule(@"\p{N}")],
        // Mistral's Tekken: words split at lower-to-upper case changes (written with look-aheads, as the
        // collapsed classes have no \p{Lu}/\p{Ll}).
        "tekken" =>
        [
            new RegexSplitRule(@"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
        ],
        "chameleon" =>
        [
            new RegexSplitRule("<sentinel:[0-9]+>"),
            new RegexSplitRule("(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z"),
            new RegexSplitRule(@"([\t\n]|    |  )"),
            new RegexSplitRule(@"\p{N}"),
            new RegexSplitRule(@"[\p{P}!-/:-@\[-`{-~]"),
            new Gpt2SplitRule(),
        ],
        _ =>
        [
            new RegexSplitRule(@"[\p{P}\$\+<=>\^~\|]+"),
            new Gpt2SplitRule(),
            new RegexSplitRule(@"\p{N}+"),
            new RegexSplitRule("[0-9][0-9][0-9]"),
        ],
    };
}
