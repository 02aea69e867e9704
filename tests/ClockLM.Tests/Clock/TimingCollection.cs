namespace ClockLM.Tests.Clock;

/// <summary>Tests that compare wall-clock times or the runtime's per-thread counters: they run alone, after the
/// parallel tests, so other tests' threads do not preempt the measured thread.</summary>
[CollectionDefinition("timing", DisableParallelization = true)]
public sealed class TimingCollection;
