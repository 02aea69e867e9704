namespace ClockLM.Clock;

/// <summary>
/// The five stages of one clock cycle (one transformer layer), in the order the processor runs them.
/// The cache store comes before execute because attention reads back the current position's own key and value.
/// </summary>
public enum Stage
{
    /// <summary>Select this layer's weights (views into the mapped model file; the matmuls stream them in).</summary>
    Fetch,
    /// <summary>RMSNorm of the residual stream, projection to Q/K/V, RoPE.</summary>
    Decode,
    /// <summary>Store this position's key and value into the KV cache.</summary>
    Memory,
    /// <summary>Attention over the cached keys/values (reads the cache), its output projection, the feed-forward network.</summary>
    Execute,
    /// <summary>Add the feed-forward output into the residual stream.</summary>
    WriteBack,
}

/// <summary>Names of the stages as printed in traces.</summary>
public static class StageNames
{
    /// <summary>Stages per cycle.</summary>
    public const int Count = 5;

    /// <summary>Every stage in execution order.</summary>
    public static readonly Stage[] All = [Stage.Fetch, Stage.Decode, Stage.Memory, Stage.Execute, Stage.WriteBack];

    /// <summary>Lower-case name: fetch, decode, memory, execute, write-back.</summary>
    public static string Name(this Stage stage) => stage switch
    {
        Stage.Fetch => "fetch",
        Stage.Decode => "decode",
        Stage.Memory => "memory",
        Stage.Execute => "execute",
        Stage.WriteBack => "write-back",
        _ => throw new ArgumentOutOfRangeException(nameof(stage), stage, "not a stage"),
    };
}
