namespace ClockLM.Sampling.Grammars;

/// <summary>
/// Turns a set of code points into the UTF-8 byte sequences that spell exactly those code points, as runs of byte
/// ranges: U+0080..U+07FF is <c>[C2-DF][80-BF]</c>, U+4E00..U+9FA5 (<c>[一-龥]</c>) is
/// <c>E4 [B8-BF] [80-BF] | [E5-E8] [80-BF] [80-BF] | E9 [80-BD] [80-BF] | E9 BE [80-A5]</c>.
/// The grammar then matches bytes, so a token that ends inside a character, or spans several, needs no special case.
/// </summary>
internal static class Utf8Ranges
{
    /// <summary>Largest code point.</summary>
    public const int MaxCodePoint = 0x10FFFF;

    /// <summary>The inclusive, sorted, non-overlapping ranges of <paramref name="ranges"/> (complemented when
    /// <paramref name="negated"/>), without the surrogates U+D800..U+DFFF, which UTF-8 cannot spell.</summary>
    public static List<(int Low, int High)> Normalize(IEnumerable<(int Low, int High)> ranges, bool negated)
    {
        var sorted = ranges.OrderBy(r => r.Low).ToList();
        var merged = new List<(int Low, int High)>();
        foreach (var (low, high) in sorted)
        {
            if (merged.Count > 0 && low <= merged[^1].High + 1)
                merged[^1] = (merged[^1].Low, Math.Max(merged[^1].High, high));
            else
                merged.Add((low, high));
        }
        if (negated)
        {
            var complement = new List<(int, int)>();
            int next = 0;
            foreach (var (low, high) in merged)
            {
                if (low > next) complement.Add((next, low - 1));
                next = high + 1;
            }
            if (next <= MaxCodePoint) complement.Add((next, MaxCodePoint));
            merged = complement;
        }
        var result = new List<(int, int)>();
        foreach (var (low, high) in merged)
        {
            if (high < 0xD800 || low > 0xDFFF) { result.Add((low, high)); continue; }
            if (low < 0xD800) result.Add((low, 0xD7FF));
            if (high > 0xDFFF) result.Add((0xE000, high));
        }
        return result;
    }

    /// <summary>The byte sequences of code points <paramref name="low"/>..<paramref name="high"/> (no surrogates inside):
    /// each sequence is a list of inclusive byte ranges, one per byte position.</summary>
    public static void Sequences(int low, int high, List<(byte Low, byte High)[]> output)
    {
        // First split where the encoded length changes.
        foreach (int limit in new[] { 0x7F, 0x7FF, 0xFFFF })
            if (low <= limit && high > limit)
            {
                Sequences(low, limit, output);
                Sequences(limit + 1, high, output);
                return;
            }
        int length = Length(low);
        if (length == 1)
        {
            output.Add([((byte)low, (byte)high)]);
            return;
        }
        // Then split until low and high differ only in trailing bytes that run over their whole range (80..BF), so that
        // every byte position is an independent range. With i trailing bytes (6 bits each) that must be full:
        for (int i = 1; i < length; i++)
        {
            int mask = (1 << (6 * i)) - 1;
            if ((low & ~mask) == (high & ~mask)) continue;
            if ((low & mask) != 0)
            {
                Sequences(low, low | mask, output);
                Sequences((low | mask) + 1, high, output);
                return;
            }
            if ((high & mask) != mask)
            {
                Sequences(low, (high & ~mask) - 1, output);
                Sequences(high & ~mask, high, output);
                return;
            }
        }
        Span<byte> a = stackalloc byte[4], b = stackalloc byte[4];
        Encode(low, a);
        Encode(high, b);
        var sequence = new (byte, byte)[length];
        for (int k = 0; k < length; k++) sequence[k] = (a[k], b[k]);
        output.Add(sequence);
    }

    private static int Length(int cp) => cp <= 0x7F ? 1 : cp <= 0x7FF ? 2 : cp <= 0xFFFF ? 3 : 4;

    private static void Encode(int cp, Span<byte> bytes)
    {
        new System.Text.Rune(cp).EncodeToUtf8(bytes);
    }
}
