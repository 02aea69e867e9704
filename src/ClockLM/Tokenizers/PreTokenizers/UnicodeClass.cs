using System.Globalization;
using System.Text;

namespace ClockLM.Tokenizers.PreTokenizers;

/// <summary>The classes of a code point that tokenizer splitting rules test, grouped as regex
/// <c>\p{..}</c> classes: N, L, Z, M, P, S, C, plus white space (Unicode White_Space).
/// Unassigned code points count as <see cref="Other"/> (<c>\p{C}</c>), so every code point has at least one bit;
/// <see cref="None"/> marks "outside the text".</summary>
[Flags]
public enum UnicodeClass : ushort
{
    /// <summary>Outside the text being split.</summary>
    None = 0,
    /// <summary><c>\p{N}</c>: Nd, Nl, No.</summary>
    Number = 1 << 0,
    /// <summary><c>\p{L}</c>: Lu, Ll, Lt, Lm, Lo.</summary>
    Letter = 1 << 1,
    /// <summary><c>\p{Z}</c>: Zs, Zl, Zp.</summary>
    Separator = 1 << 2,
    /// <summary><c>\p{M}</c>: Mn, Mc, Me.</summary>
    Mark = 1 << 3,
    /// <summary><c>\p{P}</c>: Pc, Pd, Ps, Pe, Pi, Pf, Po.</summary>
    Punctuation = 1 << 4,
    /// <summary><c>\p{S}</c>: Sm, Sc, Sk, So.</summary>
    Symbol = 1 << 5,
    /// <summary><c>\p{C}</c>: Cc, Cf, Cs, Co, Cn.</summary>
    Other = 1 << 6,
    /// <summary>Unicode White_Space: U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A,
    /// U+2028, U+2029, U+202F, U+205F, U+3000.</summary>
    Whitespace = 1 << 7,
}

/// <summary>Code point classification, lower-casing and accent stripping as llama.cpp's tokenizers do them.</summary>
public static class UnicodeClasses
{
    // Classes of the Basic Multilingual Plane, looked up for every code point of every text.
    private static readonly UnicodeClass[] Bmp = BuildBmp();

    /// <summary>The classes of <paramref name="codepoint"/> (never <see cref="UnicodeClass.None"/> for a valid code point).</summary>
    public static UnicodeClass Of(int codepoint) =>
        (uint)codepoint < 0x10000 ? Bmp[codepoint] : (uint)codepoint <= 0x10FFFF ? Classify(codepoint) : UnicodeClass.Other;

    /// <summary>Whether <paramref name="codepoint"/> is Unicode White_Space.</summary>
    public static bool IsWhitespace(int codepoint) => (Of(codepoint) & UnicodeClass.Whitespace) != 0;

    /// <summary>The first code point of the lower-case form (U+0130 İ becomes i, as full case mapping gives "i̇").</summary>
    public static int ToLower(int codepoint)
    {
        if (codepoint == 0x130)
            return 'i';
        return Rune.IsValid(codepoint) ? Rune.ToLowerInvariant(new Rune(codepoint)).Value : codepoint;
    }

    /// <summary>The first code point of the canonical decomposition (NFD): é becomes e, ǘ becomes u, 가 becomes ᄀ.</summary>
    public static int NfdBase(int codepoint)
    {
        if (codepoint < 0xC0)
            return codepoint;
        ReadOnlySpan<int> table = NfdFirstTable.Ranges;
        int lo = 0, hi = table.Length / 3 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            int first = table[mid * 3], last = table[mid * 3 + 1];
            if (codepoint < first) hi = mid - 1;
            else if (codepoint > last) lo = mid + 1;
            else return table[mid * 3 + 2];
        }
        return codepoint;
    }

    /// <summary>Decodes UTF-16 text into code points; unpaired surrogates become U+FFFD, as UTF-8 encoding would make them.</summary>
    public static int[] ToCodepoints(ReadOnlySpan<char> text)
    {
        var result = new List<int>(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            Rune.DecodeFromUtf16(text[i..], out Rune rune, out int used);
            result.Add(rune.Value);
            i += used;
        }
        return [.. result];
    }

    private static UnicodeClass[] BuildBmp()
    {
        var table = new UnicodeClass[0x10000];
        for (int c = 0; c < table.Length; c++)
            table[c] = Classify(c);
        return table;
    }

    private static UnicodeClass Classify(int codepoint)
    {
        UnicodeClass cls = CharUnicodeInfo.GetUnicodeCategory(codepoint) switch
        {
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => UnicodeClass.Number,
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => UnicodeClass.Letter,
            UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator => UnicodeClass.Separator,
            UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark => UnicodeClass.Mark,
            UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
                or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => UnicodeClass.Punctuation,
            UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
                or UnicodeCategory.OtherSymbol => UnicodeClass.Symbol,
            _ => UnicodeClass.Other,
        };
        if (IsWhiteSpaceProperty(codepoint))
            cls |= UnicodeClass.Whitespace;
        return cls;
    }

    private static bool IsWhiteSpaceProperty(int c) =>
        c is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or >= 0x2000 and <= 0x200A
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;
}
