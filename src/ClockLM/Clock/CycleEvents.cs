using System.Diagnostics;

namespace ClockLM.Clock;

/// <summary>One stage of one cycle has run, for every row of the batch that passes through the cycles together (one
/// token, a prompt chunk, or one token of each of several sequences).</summary>
/// <param name="Position">Position of the batch's first row.</param>
/// <param name="Rows">Rows (tokens) that ran the stage together; the work and time are theirs together.</param>
/// <param name="Layer">Layer, i.e. cycle number within the token.</param>
/// <param name="Stage">The stage.</param>
/// <param name="StartTimestamp"><see cref="Stopwatch.GetTimestamp"/> when the stage began.</param>
/// <param name="ElapsedTicks">Duration in <see cref="Stopwatch"/> ticks.</param>
/// <param name="WeightBytes">Weight bytes this stage reads: the matrices and vectors its products and norms stream (in
/// fetch, the bytes it asked to be brought in ahead).</param>
/// <param name="KvBytesRead">KV-cache bytes read (attention, in memory).</param>
/// <param name="KvBytesWritten">KV-cache bytes written (the store, in memory).</param>
/// <param name="Flops">Floating-point operations (a multiply-add counts two).</param>
public readonly record struct StageEvent(
    int Position, int Rows, int Layer, Stage Stage, long StartTimestamp, long ElapsedTicks,
    long WeightBytes, long KvBytesRead, long KvBytesWritten, long Flops)
{
    /// <summary>Duration in seconds.</summary>
    public double Seconds => ElapsedTicks / (double)Stopwatch.Frequency;
}

/// <summary>One token — or a batch of <paramref name="Rows"/> tokens that passed together — has passed through the
/// processor: instruction fetch (embedding), every cycle, and the commit (final norm and output head; zero when no
/// logits were needed, as for prompt chunks before the last).</summary>
/// <param name="Position">Position of the (first) token.</param>
/// <param name="Token">Id of the (first) token.</param>
/// <param name="Rows">Tokens in the batch: 1 for a token alone.</param>
/// <param name="StartTimestamp"><see cref="Stopwatch.GetTimestamp"/> when the embedding lookup began.</param>
/// <param name="ElapsedTicks">Whole token, embedding to logits, in <see cref="Stopwatch"/> ticks.</param>
/// <param name="EmbeddingTicks">The embedding lookup.</param>
/// <param name="CommitTicks">The final norm and output head.</param>
/// <param name="CommitWeightBytes">Bytes of the output head and final norm read by the commit.</param>
/// <param name="CommitFlops">Floating-point operations of the commit.</param>
public readonly record struct TokenEvent(
    int Position, int Token, int Rows, long StartTimestamp, long ElapsedTicks, long EmbeddingTicks, long CommitTicks,
    long CommitWeightBytes, long CommitFlops)
{
    /// <summary>Whole-token duration in seconds.</summary>
    public double Seconds => ElapsedTicks / (double)Stopwatch.Frequency;
}

/// <summary>Receives the processor's events. The engine calls it on the thread that runs the forward pass, once per
/// report (<see cref="OnReport"/>): a pass's stages, in the order they ran, and its token once the pass has committed
/// (when the clock is stepped, each stage right after it runs). While a pass runs, observing costs one timestamp per
/// stage that does more work than a timestamp costs; time spent here is counted in no stage, but it is in the caller's
/// wall clock.</summary>
public interface ICycleObserver
{
    /// <summary>A stage has finished (reported at its pass's commit, or at once when stepping).</summary>
    void OnStage(in StageEvent e);

    /// <summary>A token (or a batch of tokens) has finished: after its last stage and the commit.</summary>
    void OnToken(in TokenEvent e);

    /// <summary>The clock reports: the stages that ran since its last report, then the token if the pass committed.
    /// By default each stage's event goes to <see cref="OnStage"/> and then the token's to <see cref="OnToken"/>; an
    /// observer that needs only times (<see cref="CycleTotals"/>) or keeps the raw report for later
    /// (<see cref="CycleRecorder"/>) reads <paramref name="report"/> instead of building events.</summary>
    void OnReport(CycleReport report)
    {
        for (int i = 0; i < report.StageCount; i++) OnStage(report.Stage(i));
        if (report.Committed) OnToken(report.Token);
    }
}

/// <summary>Sends every event to several observers in order.</summary>
public sealed class CycleObserverGroup(params ICycleObserver[] observers) : ICycleObserver
{
    /// <inheritdoc />
    public void OnStage(in StageEvent e)
    {
        foreach (var o in observers) o.OnStage(e);
    }

    /// <inheritdoc />
    public void OnToken(in TokenEvent e)
    {
        foreach (var o in observers) o.OnToken(e);
    }

    /// <inheritdoc />
    public void OnReport(CycleReport report)
    {
        foreach (var o in observers) o.OnReport(report);
    }
}
