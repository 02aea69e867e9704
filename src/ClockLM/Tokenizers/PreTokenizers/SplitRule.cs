namespace ClockLM.Tokenizers.PreTokenizers;

/// <summary>One pass of a pre-tokenizer: cuts each piece of the text further. Every code point of a piece ends up
/// in exactly one output piece, in order (text a rule does not match becomes a piece of its own).</summary>
public abstract class SplitRule
{
    /// <summary>Appends the lengths (in code points) of the pieces that <c>text[start..end]</c> splits into.
    /// The rule sees only that range: look-aheads and anchors stop at its ends.</summary>
    internal abstract void Split(SplitText text, int start, int end, List<int> lengths);
}

/// <summary>The text being split, as code points with their classes, plus the string views that
/// <see cref="RegexSplitRule"/> matches against (built on first use).</summary>
internal sealed class SplitText
{
    public SplitText(int[] codepoints)
    {
        Codepoints = codepoints;
        Classes = new UnicodeClass[codepoints.Length];
        for (int i = 0; i < codepoints.Length; i++)
            Classes[i] = UnicodeClasses.Of(codepoints[i]);
    }

    public int[] Codepoints { get; }
    public UnicodeClass[] Classes { get; }

    /// <summary>Code point at <paramref name="i"/> when it lies in [start, end), else -1.</summary>
    public int At(int i, int start, int end) => i >= start && i < end ? Codepoints[i] : -1;

    /// <summary>Classes at <paramref name="i"/> when it lies in [start, end), else <see cref="UnicodeClass.None"/>.</summary>
    public UnicodeClass ClassAt(int i, int start, int end) => i >= start && i < end ? Classes[i] : UnicodeClass.None;

    private string? _collapsed;
    private string? _wide;
    private int[]? _wideStart;
    private int[]? _wideToCodepoint;

    /// <summary>One char per code point: ASCII kept, other white space as U+000B, other numbers, letters and
    /// punctuation as the markers <see cref="RegexSplitRule.NumberMarker"/> etc., everything else U+00D0.</summary>
    public string Collapsed => _collapsed ??= BuildCollapsed();

    /// <summary>The text as UTF-16 with non-ASCII white space replaced by U+000B.</summary>
    public string Wide
    {
        get
        {
            if (_wide == null)
                BuildWide();
            return _wide!;
        }
    }

    /// <summary>UTF-16 index in <see cref="Wide"/> where code point i starts (length = code points + 1).</summary>
    public int[] WideStart { get { if (_wide == null) BuildWide(); return _wideStart!; } }

    /// <summary>Code point index of each UTF-16 index in <see cref="Wide"/> (length = chars + 1).</summary>
    public int[] WideToCodepoint { get { if (_wide == null) BuildWide(); return _wideToCodepoint!; } }

    private string BuildCollapsed()
    {
        var chars = new char[Codepoints.Length];
        for (int i = 0; i < chars.Length; i++)
        {
            int c = Codepoints[i];
            UnicodeClass cls = Classes[i];
            chars[i] = c < 128 ? (char)c
                : (cls & UnicodeClass.Whitespace) != 0 ? '\v'
                : (cls & UnicodeClass.Number) != 0 ? RegexSplitRule.NumberMarker
                : (cls & UnicodeClass.Letter) != 0 ? RegexSplitRule.LetterMarker
                : (cls & UnicodeClass.Punctuation) != 0 ? RegexSplitRule.PunctuationMarker
                : RegexSplitRule.OtherMarker;
        }
        return new string(chars);
    }

    private void BuildWide()
    {
        var sb = new System.Text.StringBuilder(Codepoints.Length);
        var start = new int[Codepoints.Length + 1];
        var back = new List<int>(Codepoints.Length + 1);
        Span<char> utf16 = stackalloc char[2];
        for (int i = 0; i < Codepoints.Length; i++)
        {
            start[i] = sb.Length;
            int c = Codepoints[i];
            if (c > 0x7F && (Classes[i] & UnicodeClass.Whitespace) != 0)
                c = 0x0B;
            int n = new System.Text.Rune(c).EncodeToUtf16(utf16);
            sb.Append(utf16[..n]);
            for (int k = 0; k < n; k++)
                back.Add(i);
        }
        start[Codepoints.Length] = sb.Length;
        back.Add(Codepoints.Length);
        _wide = sb.ToString();
        _wideStart = start;
        _wideToCodepoint = [.. back];
    }
}
