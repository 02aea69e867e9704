using ClockLM.Models;

namespace ClockLM.Clock;

/// <summary>
/// Named points of one cycle where activations can be read or replaced (TransformerLens's hook points).
/// Each is a vector of the residual width (dim) except the per-head points (<see cref="AttnQ"/>, <see cref="AttnK"/>,
/// <see cref="AttnV"/>, <see cref="AttnZ"/>: heads × head_size, head h at h × head_size), the feed-forward network's
/// hidden activation (<see cref="MlpPost"/>: hidden_dim) and <see cref="AttentionPattern"/>.
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
    /// <summary>The residual stream leaving the cycle (<c>blocks.{l}.hook_resid_post</c>), after any steering vector
    /// was added.</summary>
    ResidPost,
    /// <summary>The queries of every head, (heads, head_size), after their bias and per-head norm and before RoPE
    /// (<c>blocks.{l}.attn.hook_q</c>).</summary>
    AttnQ,
    /// <summary>The keys of every key/value head, (kv_heads, head_size), after their bias and per-head norm and before
    /// RoPE; a replaced key is what the cache stores (<c>blocks.{l}.attn.hook_k</c>).</summary>
    AttnK,
    /// <summary>The values of every key/value head, (kv_heads, head_size), as the cache stores them
    /// (<c>blocks.{l}.attn.hook_v</c>).</summary>
    AttnV,
    /// <summary>Every head's attention result, the weighted sum of the values, (heads, head_size), before the output
    /// projection mixes the heads (<c>blocks.{l}.attn.hook_z</c>): zeroing a head's slice ablates that head.</summary>
    AttnZ,
    /// <summary>The feed-forward network's hidden activation, (hidden_dim): act(gate) * up, or gelu(up) in GPT-2,
    /// before the down projection (<c>blocks.{l}.mlp.hook_post</c>): one value per neuron.</summary>
    MlpPost,
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
        ActivationPoint.ResidPre, ActivationPoint.AttnQ, ActivationPoint.AttnK, ActivationPoint.AttnV,
        ActivationPoint.AttentionPattern, ActivationPoint.AttnZ, ActivationPoint.AttnOut, ActivationPoint.ResidMid,
        ActivationPoint.MlpPost, ActivationPoint.MlpOut, ActivationPoint.ResidPost,
    ];

    /// <summary>The name of <paramref name="point"/> at <paramref name="layer"/>, e.g. <c>blocks.3.hook_resid_post</c>.</summary>
    public static string Name(ActivationPoint point, int layer) => $"blocks.{layer}.{Suffix(point)}";

    /// <summary>Values one token has at <paramref name="point"/> in a model of <paramref name="config"/>'s shape.</summary>
    /// <exception cref="ArgumentException">The point is the attention pattern, whose width grows with the position.</exception>
    public static int Width(ActivationPoint point, LlamaConfig config) => point switch
    {
        ActivationPoint.AttnQ or ActivationPoint.AttnZ => config.QDim,
        ActivationPoint.AttnK or ActivationPoint.AttnV => config.KvDim,
        ActivationPoint.MlpPost => config.HiddenDim,
        ActivationPoint.AttentionPattern => throw new ArgumentException(
            "attn.hook_pattern has (heads, position + 1) values, a width that grows with the position", nameof(point)),
        _ => config.Dim,
    };

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
        ActivationPoint.AttnQ => "attn.hook_q",
        ActivationPoint.AttnK => "attn.hook_k",
        ActivationPoint.AttnV => "attn.hook_v",
        ActivationPoint.AttnZ => "attn.hook_z",
        ActivationPoint.MlpPost => "mlp.hook_post",
        _ => throw new ArgumentOutOfRangeException(nameof(point), point, "not an activation point"),
    };
}
