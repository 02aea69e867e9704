namespace ClockLM.Clock;

/// <summary>
/// Named points of one cycle where activations can be read or replaced (TransformerLens's hook points).
/// Each is a vector of the residual width (dim) except <see cref="AttentionPattern"/>.
/// </summary>
public enum ActivationPoint
{
    /// <summary>The residual stream entering the cycle (<c>blocks.{l}.hook_resid_pre</c>).</summary>
    ResidPre,
    /// <summary>Attention weights of every head over positions 0..pos, (heads, pos+1) row-major
    /// (<c>blocks.{l}.attn.hook_pattern</c>). Replacing them changes what attention mixes.</summary>
    AttentionPattern,
    /// <summary>The attention block's output after its output projection, before it is added (<c>blocks.{l}.hook_attn_out</c>).</summary>
    AttnOut,
    /// <summary>The residual stream between attention and feed-forward (<c>blocks.{l}.hook_resid_mid</c>).</summary>
    ResidMid,
    /// <summary>The feed-forward output before it is added (<c>blocks.{l}.hook_mlp_out</c>).</summary>
    MlpOut,
    /// <summary>The residual stream leaving the cycle (<c>blocks.{l}.hook_resid_post</c>).</summary>
    ResidPost,
}

/// <summary>
/// Reads or replaces an activation: called with the point, the layer, the token position and the activation itself;
/// writing into <paramref name="activation"/> replaces it for the rest of the forward pass.
/// </summary>
public delegate void ActivationHook(ActivationPoint point, int layer, int position, Span<float> activation);

/// <summary>TransformerLens-style names of activation points.</summary>
public static class ActivationPoints
{
    /// <summary>Every point, in the order a cycle reaches them.</summary>
    public static readonly ActivationPoint[] All =
    [
        ActivationPoint.ResidPre, ActivationPoint.AttentionPattern, ActivationPoint.AttnOut,
        ActivationPoint.ResidMid, ActivationPoint.MlpOut, ActivationPoint.ResidPost,
    ];

    /// <summary>The name of <paramref name="point"/> at <paramref name="layer"/>, e.g. <c>blocks.3.hook_resid_post</c>.</summary>
    public static string Name(ActivationPoint point, int layer) => $"blocks.{layer}.{Suffix(point)}";

    /// <summary>Parses a name made by <see cref="Name"/>.</summary>
    /// <exception cref="FormatException">The name is not <c>blocks.{layer}.{hook}</c> with a known hook.</exception>
    public static (ActivationPoint Point, int Layer) Parse(string name)
    {
        string[] parts = name.Split('.', 3);
        if (parts.Length == 3 && parts[0] == "blocks" && int.TryParse(parts[1], out int layer) && layer >= 0)
            foreach (var point in All)
                if (Suffix(point) == parts[2]) return (point, layer);
        throw new FormatException($"'{name}' is not an activation point name; expected blocks.{{layer}}.{{hook}} with hook one of " +
            string.Join(", ", All.Select(Suffix)));
    }

    private static string Suffix(ActivationPoint point) => point switch
    {
        ActivationPoint.ResidPre => "hook_resid_pre",
        ActivationPoint.AttentionPattern => "attn.hook_pattern",
        ActivationPoint.AttnOut => "hook_attn_out",
        ActivationPoint.ResidMid => "hook_resid_mid",
        ActivationPoint.MlpOut => "hook_mlp_out",
        ActivationPoint.ResidPost => "hook_resid_post",
        _ => throw new ArgumentOutOfRangeException(nameof(point), point, "not an activation point"),
    };
}
