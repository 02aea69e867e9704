using ClockLM.Models;

namespace ClockLM.Clock;

/// <summary>
/// What the clock hands its observers in one call: the stages that ran since its last report — all of a pass's at its
/// commit, or one when the clock is stepped — and, once the pass has committed, its token. Stages are counted from
/// cycle 0's fetch of the pass: stage index k is layer k / 5, stage k % 5 (<see cref="StageNames.Count"/> per cycle).
/// </summary>
/// <remarks>
/// The report reads the pass's raw seams: one <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> where each piece
/// of the pass ended, so <see cref="Ticks"/> is one subtraction and <see cref="Stage"/> builds a full event from costs
/// counted when the model loaded. The engine reuses one report per batch: it is valid only during
/// <see cref="ICycleObserver.OnReport"/>; keep what you need, not the report.
/// </remarks>
public sealed class CycleReport
{
    private readonly TokenBatch _batch;
    private readonly StageCosts _costs;
    private bool _attentionCounted;
    private AttentionWork _full, _sliding;

    internal CycleReport(TokenBatch batch, StageCosts costs) => (_batch, _costs) = (batch, costs);

    /// <summary>Index of the first reported stage within the pass (layer * 5 + stage).</summary>
    public int FirstStage { get; private set; }

    /// <summary>Stages reported (0 in a stepped pass's commit, whose stages were reported one at a time).</summary>
    public int StageCount { get; private set; }

    /// <summary>True when the pass has committed: <see cref="Token"/> is its event.</summary>
    public bool Committed { get; private set; }

    /// <summary>Position of the pass's first row.</summary>
    public int Position => _batch.Positions[0];

    /// <summary>Rows (tokens) that ran the pass together.</summary>
    public int Rows => _batch.Count;

    /// <summary>Duration of reported stage <paramref name="i"/> (0..<see cref="StageCount"/>), in
    /// <see cref="System.Diagnostics.Stopwatch"/> ticks: the difference of the two seams around it.</summary>
    public long Ticks(int i)
    {
        int end = 2 + FirstStage + i; // TokenBatch.SeamAfter of stage FirstStage + i
        return _batch.Seams[end] - _batch.Seams[end - 1];
    }

    /// <summary>The event of reported stage <paramref name="i"/> (0..<see cref="StageCount"/>).</summary>
    public StageEvent Stage(int i)
    {
        int k = FirstStage + i, layer = k / StageNames.Count;
        var stage = (Stage)(k % StageNames.Count);
        long start = _batch.Seams[1 + k];
        return _costs.Event(Position, Rows, layer, stage, start, Ticks(i), _batch.FetchedBytes[layer], Attention(layer));
    }

    /// <summary>The pass's token event (only when <see cref="Committed"/>).</summary>
    public TokenEvent Token => Committed ? _costs.Commit(_batch, _batch.Count - _batch.LogitsFrom)
        : throw new InvalidOperationException("the pass has not committed");

    /// <summary>The raw seams of the reported stages: <see cref="StageCount"/> + 1 timestamps, stage i running from
    /// seam i to seam i + 1.</summary>
    internal ReadOnlySpan<long> StageSeams => _batch.Seams.AsSpan(1 + FirstStage, StageCount + 1);

    /// <summary>Weight bytes the fetch stage of <paramref name="layer"/> asked for.</summary>
    internal long FetchedBytes(int layer) => _batch.FetchedBytes[layer];

    internal StageCosts Costs => _costs;

    /// <summary>The batch's attention work in a full-attention layer and in a sliding-window one (counted once per report,
    /// when first asked for).</summary>
    internal (AttentionWork Full, AttentionWork Sliding) AttentionWork()
    {
        if (!_attentionCounted)
        {
            _full = _costs.Attention(_batch, sliding: false);
            _sliding = _costs.HasSlidingLayers ? _costs.Attention(_batch, sliding: true) : _full;
            _attentionCounted = true;
        }
        return (_full, _sliding);
    }

    private AttentionWork Attention(int layer)
    {
        var (full, sliding) = AttentionWork();
        return _costs.IsSliding(layer) ? sliding : full;
    }

    /// <summary>Sets the report to stages [<paramref name="first"/>, first + <paramref name="count"/>) of the batch's pass,
    /// and its token if <paramref name="committed"/>.</summary>
    internal void Set(int first, int count, bool committed)
    {
        (FirstStage, StageCount, Committed) = (first, count, committed);
        _attentionCounted = false;
    }
}
