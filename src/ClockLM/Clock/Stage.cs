namespace ClockLM.Clock;

/// <summary>
/// The five stages of one clock cycle (one transformer layer), in the order the processor runs them; each is one seam
/// of the forward pass (docs/clock.md has the mapping). The cache store comes before attention because attention reads
/// back the current position's own key and value.
/// </summary>
public enum Stage
{
    /// <summary>Ask for this layer's and the next layers' weights to be brought in from the model file while this one
    /// computes (idle once every layer has been fetched).</summary>
    Fetch,
    /// <summary>Norm of the residual stream, projection to Q/K/V (biases, head norms), RoPE.</summary>
    Decode,
    /// <summary>Store this position's key and value in the KV cache, attend over the cache, project the heads back
    /// (the attention block).</summary>
    Memory,
    /// <summary>The feed-forward network on the residual stream plus the attention output.</summary>
    Execute,
    /// <summary>Add the attention and feed-forward outputs into the residual stream (and any steering).</summary>
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
