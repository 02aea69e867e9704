using System.Text;

namespace ClockLM.Tests.Tokenizers.Bpe;

/// <summary>Seeded random text mixing the things tokenizers split on: words in several scripts and cases,
/// contractions, punctuation, digit runs, runs of spaces, tabs and line breaks, symbols and emoji.</summary>
public static class RandomText
{
    private static readonly string[] Parts =
    [
        "the", "The", "THE", "hello", "world", "token", "Tokenizer", "clock", "cycle", "llama", "a", "I", "x",
        "don't", "it's", "we'll", "they're", "I've", "she'd", "I'm", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL",
        ".", ",", "!", "?", ";", ":", "...", "--", "-", "(", ")", "[", "]", "{", "}", "\"", "'", "`", "/", "\\", "@", "#",
        "$", "%", "^", "&", "*", "+", "=", "<", ">", "|", "~", "_",
        "0", "7", "42", "123", "2024", "3.14", "1,000", "99999",
        " ", " ", " ", "  ", "   ", "    ", "\t", "\n", "\n\n", "\r\n", " \n", "\t\t", "\u00A0", "\u3000",
        "нещо", "Български", "Ελληνικά", "αβγ", "日本語", "我想在", "工作", "한국어", "العربية", "עברית", "हिन्दी", "ไทย",
        "Führer", "Cửa", "Việt", "naïve", "café", "e\u0301", "ß", "Ωmega", "ǅemal",
        "€", "©", "™", "∑", "√", "°", "±", "→", "½", "²", "①", "Ⅻ",
        "🦙", "🚀", "😁", "😶\u200D🌫\uFE0F", "👍🏽", "✅", "❤️", "🇺🇳", "\U0001F9D1\u200D\U0001F4BB",
    ];

    public static string Next(Random random, int maxParts = 24)
    {
        var sb = new StringBuilder();
        int count = random.Next(1, maxParts + 1);
        for (int i = 0; i < count; i++)
        {
            string part = Parts[random.Next(Parts.Length)];
            sb.Append(part);
            if (random.Next(3) == 0)
                sb.Append(' ');
        }
        return sb.ToString();
    }
}
