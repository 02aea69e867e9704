using ClockLM.Models;

namespace ClockLM.Clock;

/// <summary>
/// An observer that keeps every event in memory, for traces and exports. While the engine runs, the recorder only
/// copies each report's raw seams (one timestamp per stage) into buffers sized up front, so recording builds no event
/// and allocates nothing until they fill; the events are built from the seams and the model's stage costs when
/// <see cref="Stages"/> or <see cref="Tokens"/> is read, and the buffers are then reused.
/// </summary>
public sealed class CycleRecorder : ICycleObserver
{
    /// <summary>One report as the clock made it: stage i (of <see cref="StageCount"/>, from pass stage
    /// <see cref="FirstStage"/>) ran from <c>_seams[Seam + i]</c> to <c>_seams[Seam + i + 1]</c>; the bytes its fetch
    /// stages asked for follow one another from <c>_fetched[Fetched]</c>.</summary>
    private struct RawReport
    {
        public StageCosts Costs;
        public int Position, Rows, FirstStage, StageCount, Seam, Fetched;
        public AttentionWork Full, Sliding; // the batch's attention work in a full and in a sliding-window layer
        public bool Committed;
        public TokenEvent Token;            // when committed
    }

    private RawReport[] _reports;
    private long[] _seams, _fetched;
    private int _reportCount, _seamCount, _fetchedCount;
    private readonly List<StageEvent> _stages = [];
    private readonly List<TokenEvent> _tokens = [];

    /// <summary>A recorder with room for <paramref name="expectedTokens"/> passes of a model of
    /// <paramref name="layers"/> layers before its buffers grow.</summary>
    public CycleRecorder(int expectedTokens = 64, int layers = 32)
    {
        int passes = Math.Max(expectedTokens, 1), stages = Math.Max(layers, 1) * StageNames.Count;
        _reports = new RawReport[passes];
        _seams = new long[passes * (stages + 1)];
        _fetched = new long[passes * Math.Max(layers, 1)];
    }

    /// <summary>Stage events in the order they ran.</summary>
    public IReadOnlyList<StageEvent> Stages
    {
        get
        {
            Build();
            return _stages;
        }
    }

    /// <summary>Token events in the order they ran.</summary>
    public IReadOnlyList<TokenEvent> Tokens
    {
        get
        {
            Build();
            return _tokens;
        }
    }

    /// <summary>The stage events of the token at <paramref name="position"/>.</summary>
    public IEnumerable<StageEvent> StagesAt(int position) => Stages.Where(s => s.Position == position);

    /// <summary>Forgets every event, keeping the room already made.</summary>
    public void Clear()
    {
        (_reportCount, _seamCount, _fetchedCount) = (0, 0, 0);
        _stages.Clear();
        _tokens.Clear();
    }

    /// <inheritdoc />
    public void OnStage(in StageEvent e)
    {
        Build(); // after the reports before it
        _stages.Add(e);
    }

    /// <inheritdoc />
    public void OnToken(in TokenEvent e)
    {
        Build();
        _tokens.Add(e);
    }

    /// <summary>Copies the report's seams and fetched bytes, and its token event if the pass committed.</summary>
    public void OnReport(CycleReport report)
    {
        int first = report.FirstStage, count = report.StageCount;
        if (_reportCount == _reports.Length) Array.Resize(ref _reports, 2 * _reports.Length);
        ref var r = ref _reports[_reportCount++];
        (r.Costs, r.Position, r.Rows, r.FirstStage, r.StageCount, r.Committed) = (report.Costs, report.Position, report.Rows, first, count, report.Committed);
        if (count > 0)
        {
            r.Seam = _seamCount;
            Reserve(ref _seams, _seamCount + count + 1);
            report.StageSeams.CopyTo(_seams.AsSpan(_seamCount));
            _seamCount += count + 1;
            // The fetch stages among the reported ones: pass stages k = 0, 5, 10, ... (layer k / 5).
            r.Fetched = _fetchedCount;
            Reserve(ref _fetched, _fetchedCount + count / StageNames.Count + 1);
            for (int k = first + (StageNames.Count - first % StageNames.Count) % StageNames.Count; k < first + count; k += StageNames.Count)
                _fetched[_fetchedCount++] = report.FetchedBytes(k / StageNames.Count);
            (r.Full, r.Sliding) = report.AttentionWork();
        }
        if (report.Committed) r.Token = report.Token;
    }

    /// <summary>Turns the reports copied since the last read into events, in order, and empties their buffers.</summary>
    private void Build()
    {
        for (int n = 0; n < _reportCount; n++)
        {
            ref readonly var r = ref _reports[n];
            int fetched = r.Fetched;
            for (int i = 0; i < r.StageCount; i++)
            {
                int k = r.FirstStage + i, layer = k / StageNames.Count;
                var stage = (Stage)(k % StageNames.Count);
                long start = _seams[r.Seam + i], bytes = stage == Stage.Fetch ? _fetched[fetched++] : 0;
                _stages.Add(r.Costs.Event(r.Position, r.Rows, layer, stage, start, _seams[r.Seam + i + 1] - start, bytes,
                    r.Costs.IsSliding(layer) ? r.Sliding : r.Full));
            }
            if (r.Committed) _tokens.Add(r.Token);
        }
        (_reportCount, _seamCount, _fetchedCount) = (0, 0, 0);
    }

    private static void Reserve(ref long[] buffer, int length)
    {
        if (buffer.Length < length) Array.Resize(ref buffer, Math.Max(length, 2 * buffer.Length));
    }
}
