using ClockLM.Features;
using ClockLM.Models;

namespace ClockLM.Clock;

/// <summary>
/// Steering by a sparse-autoencoder feature: its decoder direction (row of W_dec), times a scale, added to the
/// residual stream where the autoencoder reads it. An SAE on <c>blocks.L.hook_resid_post</c> or
/// <c>blocks.L.hook_mlp_out</c> (whose output write-back adds to the residual stream unchanged) steers after layer L;
/// one on <c>blocks.L.hook_resid_pre</c> steers after layer L - 1, the stream that enters layer L.
/// </summary>
public static class FeatureSteering
{
    /// <summary>The steering term that adds <paramref name="scale"/> × feature <paramref name="feature"/>'s direction.</summary>
    /// <exception cref="ArgumentException">The feature is outside the SAE, or the SAE reads a point that is not (or does
    /// not add unchanged to) the residual stream, or the stream before layer 0.</exception>
    public static SteeringTerm Term(SparseAutoencoder sae, int feature, float scale, LlamaConfig config)
    {
        if (feature < 0 || feature >= sae.Features)
            throw new ArgumentException($"feature {feature} is not in the sparse autoencoder (0..{sae.Features - 1})");
        var (point, layer) = ClockTrace.FeaturePoint(sae, config);
        int steered = point switch
        {
            ActivationPoint.ResidPost or ActivationPoint.MlpOut => layer,
            ActivationPoint.ResidPre when layer > 0 => layer - 1,
            _ => throw new ArgumentException($"the sparse autoencoder reads {sae.HookName}; feature steering adds to the residual stream, " +
                "so it takes autoencoders on hook_resid_post, hook_mlp_out or hook_resid_pre (from layer 1)"),
        };
        return new SteeringTerm(new Dictionary<int, float[]> { [steered] = sae.DecoderDirection(feature).ToArray() }, scale, steered, steered);
    }
}
