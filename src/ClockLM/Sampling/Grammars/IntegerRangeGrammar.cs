using System.Text;

namespace ClockLM.Sampling.Grammars;

/// <summary>
/// GBNF for the decimal integers in a range, written as JSON writes them (no leading zeros, no <c>-0</c>):
/// 15..250 is <c>"1" [5-9] | [2-9] [0-9] | "1" [0-9] [0-9] | "2" ([0-4] [0-9] | "50")</c>. Either bound may be open.
/// </summary>
internal static class IntegerRangeGrammar
{
    /// <summary>Digits a number with an open upper bound may have (longs have at most 19).</summary>
    private const int MaxDigits = 19;

    /// <summary>The integers from <paramref name="min"/> to <paramref name="max"/> (null: unbounded on that side).</summary>
    public static string Expression(long? min, long? max)
    {
        if (min is { } lo && max is { } hi)
        {
            if (lo > hi) throw new ArgumentException($"the range {lo}..{hi} is empty");
            if (lo >= 0) return NonNegative(lo, hi);
            if (hi < 0) return $"\"-\" ({NonNegative(-hi, -lo)})";
            return $"\"-\" ({NonNegative(1, -lo)}) | {NonNegative(0, hi)}";
        }
        if (min is { } low)
        {
            if (low >= 0) return AtLeast(low);
            return $"\"-\" ({NonNegative(1, -low)}) | {AtLeast(0)}";
        }
        if (max is { } high)
        {
            if (high >= 0) return $"\"-\" ({AtLeast(1)}) | {NonNegative(0, high)}";
            return $"\"-\" ({AtLeast(-high)})";
        }
        return "\"-\"? (\"0\" | [1-9] [0-9]{0,18})";
    }

    /// <summary>Integers of at least <paramref name="low"/> (≥ 0).</summary>
    private static string AtLeast(long low)
    {
        int digits = low.ToString().Length;
        string same = NonNegative(low, LargestOf(digits));
        return digits >= MaxDigits ? same : $"{same} | [1-9] [0-9]{{{digits},{MaxDigits - 1}}}";
    }

    private static long Pow10(int digits) => (long)Math.Pow(10, digits);

    /// <summary>The largest number of <paramref name="digits"/> digits (capped at long.MaxValue).</summary>
    private static long LargestOf(int digits) => digits >= 19 ? long.MaxValue : Pow10(digits) - 1;

    /// <summary>0 ≤ <paramref name="low"/> ≤ <paramref name="high"/>: split by digit count, then digit by digit.</summary>
    private static string NonNegative(long low, long high)
    {
        var parts = new List<string>();
        for (int d = low.ToString().Length; d <= high.ToString().Length; d++)
        {
            long a = Math.Max(low, d == 1 ? 0 : Pow10(d - 1));
            long b = Math.Min(high, LargestOf(d));
            if (a <= b) parts.Add(SameLength(a.ToString(), b.ToString()));
        }
        return string.Join(" | ", parts);
    }

    /// <summary>Digit strings from <paramref name="a"/> to <paramref name="b"/>, both of the same length.</summary>
    private static string SameLength(string a, string b)
    {
        int n = a.Length;
        if (a == b) return $"\"{a}\"";
        if (n == 1) return $"[{a}-{b}]";
        if (a[0] == b[0]) return $"\"{a[0]}\" ({SameLength(a[1..], b[1..])})";
        var parts = new List<string>();
        char lowFirst = a[0], highFirst = b[0];
        if (a[1..].Any(c => c != '0'))
        {
            parts.Add($"\"{a[0]}\" ({SameLength(a[1..], new string('9', n - 1))})");
            lowFirst++;
        }
        bool highFull = b[1..].All(c => c == '9');
        if (lowFirst <= (highFull ? highFirst : (char)(highFirst - 1)))
        {
            char top = highFull ? highFirst : (char)(highFirst - 1);
            var sb = new StringBuilder(lowFirst == top ? $"\"{lowFirst}\"" : $"[{lowFirst}-{top}]");
            sb.Append(n - 1 == 1 ? " [0-9]" : $" [0-9]{{{n - 1}}}");
            parts.Add(sb.ToString());
        }
        if (!highFull) parts.Add($"\"{b[0]}\" ({SameLength(new string('0', n - 1), b[1..])})");
        return string.Join(" | ", parts);
    }
}
