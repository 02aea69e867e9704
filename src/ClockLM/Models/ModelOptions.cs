using ClockLM.Tensors;
using Microsoft.Extensions.Logging;

namespace ClockLM.Models;

/// <summary>
/// How a model is laid out and run on this machine: choices that change speed and memory, never results. Passed to
/// <see cref="Model.Load(string, string?, ModelOptions?)"/>; the defaults are the fastest on the machine.
/// </summary>
public sealed record ModelOptions
{
    /// <summary>The defaults.</summary>
    public static ModelOptions Default { get; } = new();

    /// <summary>The kernels every product and layer kernel of the model runs (docs/kernels.md); carried by the weights
    /// (<see cref="LlamaWeights.Kernels"/>) to the forward pass. Default: <see cref="KernelOptions.Best"/>.</summary>
    public KernelOptions Kernels { get; init => field = value ?? throw new ArgumentNullException(nameof(Kernels)); } = KernelOptions.Best;

    /// <summary>Keep a copy of the Q4_0 and Q8_0 matrices packed eight rows at a time, and of the F16 and BF16 matrices
    /// of rows longer than 4096 columns in panels (<see cref="HalfPanels"/>), for the AVX2 and AVX-512 products
    /// (about the same bytes as the file's; its own pages of those matrices are then not read again). Default true;
    /// only the kernels that read packed weights pack (<see cref="KernelOptions.UsesPacked"/>).</summary>
    public bool PackWeights { get; init; } = true;

    /// <summary>Layers the fetch stage brings into memory ahead of the one computing, besides that one (from the model
    /// file's pages, each once: it matters when the file is not yet in the page cache); 0 turns fetching off. Default 2.</summary>
    public int FetchAhead
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(FetchAhead), value, "layers fetched ahead cannot be negative");
    } = 2;

    /// <summary>Where loading reports, once, the kernels chosen (information) and every fast path it had to leave
    /// (a warning each, also counted in <see cref="LlamaWeights.KernelFallbacks"/>). Null: not logged.</summary>
    public ILogger? Logger { get; init; }
}
