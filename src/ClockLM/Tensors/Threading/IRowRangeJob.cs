namespace ClockLM.Tensors;

/// <summary>A piece of work over a range of rows, run by <see cref="WorkerPool.Run{TJob}"/> on several threads at once.</summary>
public interface IRowRangeJob
{
    /// <summary>Processes rows [start, end). Called concurrently with disjoint ranges, possibly several times per thread.</summary>
    void Execute(int start, int end);
}
