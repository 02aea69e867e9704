namespace ClockLM.Clock;

/// <summary>
/// An observer that only adds up: time per (layer, stage) and tokens seen. Constant memory however long the run,
/// for summaries such as the server's clock summary.
/// </summary>
public sealed class CycleTotals(int layers) : ICycleObserver
{
    private readonly long[] _ticks = new long[layers * StageNames.Count]; // (layers, stages)

    /// <summary>Tokens that completed (the rows of every <see cref="ICycleObserver.OnToken"/>).</summary>
    public int Tokens { get; private set; }

    /// <summary>Layers observed.</summary>
    public int Layers { get; } = layers;

    /// <inheritdoc />
    public void OnStage(in StageEvent e) => _ticks[e.Layer * StageNames.Count + (int)e.Stage] += e.ElapsedTicks;

    /// <inheritdoc />
    public void OnToken(in TokenEvent e) => Tokens += e.Rows;

    /// <summary>Adds the reported stages' times (stage index k of a pass is also (layer, stage)'s index here) and the
    /// token's rows, with no event built.</summary>
    public void OnReport(CycleReport report)
    {
        ReadOnlySpan<long> seams = report.StageSeams; // stage i ran from seams[i] to seams[i + 1]
        Span<long> ticks = _ticks.AsSpan(report.FirstStage, seams.Length - 1);
        for (int i = 0; i < ticks.Length; i++) ticks[i] += seams[i + 1] - seams[i];
        if (report.Committed) Tokens += report.Rows;
    }

    /// <summary>Time of <paramref name="stage"/> in <paramref name="layer"/> over every token so far, in
    /// <see cref="System.Diagnostics.Stopwatch"/> ticks.</summary>
    public long Ticks(int layer, Stage stage) => _ticks[layer * StageNames.Count + (int)stage];

    /// <summary>Mean time of <paramref name="stage"/> in <paramref name="layer"/> per token (a batch's time shared by its rows).</summary>
    public TimeSpan PerToken(int layer, Stage stage) =>
        Tokens == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Ticks(layer, stage) / (double)System.Diagnostics.Stopwatch.Frequency / Tokens);

    /// <summary>Mean time of a whole cycle of <paramref name="layer"/> per token.</summary>
    public TimeSpan PerToken(int layer)
    {
        var total = TimeSpan.Zero;
        foreach (Stage s in Enum.GetValues<Stage>()) total += PerToken(layer, s);
        return total;
    }
}
