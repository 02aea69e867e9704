namespace ClockLM.Generation;

/// <summary>
/// How many tokens a sequence drafts for its next verification pass, following how many its recent drafts got accepted:
/// after a pass whose drafts were all accepted it doubles (up to draft-max), after one with a rejection it is the
/// accepted count plus one. A drafter that keeps missing then costs one extra row per pass instead of draft-max rows,
/// and one that keeps hitting is back at draft-max in a few passes. The length changes the speed only, never the
/// output: every token is still the sampler's choice.
/// </summary>
public struct DraftLength
{
    private int _length; // 0: no pass recorded yet, draft-max

    /// <summary>The tokens to draft now: from <paramref name="min"/> (draft-min, at least 1: a shorter draft would not
    /// run, and so never teach the length anything) to <paramref name="max"/> (draft-max).</summary>
    public readonly int Next(int min, int max) => _length == 0 ? max : Math.Clamp(_length, Math.Min(Math.Max(min, 1), max), max);

    /// <summary>Records a pass that verified <paramref name="drafted"/> tokens, of which the first
    /// <paramref name="accepted"/> were the model's own choice.</summary>
    public void Record(int drafted, int accepted)
    {
        if (drafted <= 0) return;
        _length = accepted >= drafted ? Math.Min(2 * drafted, 1 << 20) : accepted + 1;
    }
}
