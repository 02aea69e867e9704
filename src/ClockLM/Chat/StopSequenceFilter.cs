namespace ClockLM.Chat;

/// <summary>
/// Watches streamed text for stop sequences. Text that might be the start of a stop sequence is held back until it
/// either completes one (generation ends, the stop text is dropped) or can no longer (it is released).
/// </summary>
public sealed class StopSequenceFilter
{
    private readonly string[] _stops;
    private string _pending = "";

    /// <summary>A filter for <paramref name="stops"/> (empty strings are ignored).</summary>
    public StopSequenceFilter(IEnumerable<string> stops) => _stops = stops.Where(s => s.Length > 0).ToArray();

    /// <summary>True once a stop sequence has appeared.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds generated text; returns the text that is now certain to be output.</summary>
    public string Append(string text)
    {
        if (Stopped) return "";
        _pending += text;
        int first = -1;
        foreach (string stop in _stops)
        {
            int at = _pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        if (first >= 0)
        {
            Stopped = true;
            string before = _pending[..first];
            _pending = "";
            return before;
        }
        int hold = 0;
        foreach (string stop in _stops)
            hold = Math.Max(hold, LongestSuffixThatStarts(_pending, stop));
        string released = _pending[..^hold];
        _pending = _pending[^hold..];
        return released;
    }

    /// <summary>Releases what is held back (at the end of generation, when no stop sequence completed).</summary>
    public string Flush()
    {
        string rest = Stopped ? "" : _pending;
        _pending = "";
        return rest;
    }

    // Length of the longest suffix of text that is a proper prefix of stop.
    private static int LongestSuffixThatStarts(string text, string stop)
    {
        for (int n = Math.Min(text.Length, stop.Length - 1); n > 0; n--)
            if (string.CompareOrdinal(text, text.Length - n, stop, 0, n) == 0)
                return n;
        return 0;
    }
}
