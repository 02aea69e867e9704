namespace ClockLM.Models;

/// <summary>One part of a <see cref="ResidualSteering"/>: <paramref name="Scale"/> times each direction of
/// <paramref name="Directions"/> (layer → dim floats) whose layer lies in [<paramref name="FirstLayer"/>,
/// <paramref name="LastLayer"/>].</summary>
/// <param name="Directions">Directions by the layer whose output they are added to (a control vector's, or one layer's
/// sparse-autoencoder feature).</param>
/// <param name="Scale">The multiplier (llama.cpp's control-vector strength); negative steers the other way.</param>
/// <param name="FirstLayer">First layer steered (inclusive).</param>
/// <param name="LastLayer">Last layer steered (inclusive).</param>
public readonly record struct SteeringTerm(IReadOnlyDictionary<int, float[]> Directions, float Scale, int FirstLayer = 0, int LastLayer = int.MaxValue);

/// <summary>
/// What a sequence adds to its residual stream: for each layer, nothing or one direction (dim floats), added in the
/// write-back stage right after the layer's residual add, x = (x + a) + f + d, and before <c>hook_resid_post</c> —
/// where llama.cpp adds a control vector (<c>build_cvec</c> after the feed-forward residual add). It belongs to a
/// sequence (<see cref="Transformer.Steering"/>), so rows of differently steered sequences in one batch stay
/// independent; it never changes after it is made, so many sequences may share one.
/// </summary>
public sealed class ResidualSteering
{
    private readonly float[]?[] _directions; // (layers) of (dim), null where nothing is added

    private ResidualSteering(float[]?[] directions, int dim)
    {
        _directions = directions;
        Dim = dim;
    }

    /// <summary>Layers of the model it steers.</summary>
    public int Layers => _directions.Length;

    /// <summary>Residual width of the model it steers.</summary>
    public int Dim { get; }

    /// <summary>The direction added after <paramref name="layer"/>, or null when nothing is.</summary>
    public float[]? Direction(int layer) => _directions[layer];

    /// <summary>The layers something is added after, in order.</summary>
    public IEnumerable<int> SteeredLayers => Enumerable.Range(0, Layers).Where(l => _directions[l] is not null);

    /// <summary>This steering as one term (its directions at scale 1), to add more to it.</summary>
    public SteeringTerm AsTerm() =>
        new(SteeredLayers.ToDictionary(layer => layer, layer => _directions[layer]!), 1f);

    /// <summary>
    /// Sums the terms layer by layer, in order, in float (llama.cpp's sum of scaled directions: for directions a and b
    /// of one layer, scale_a·a + scale_b·b rounded as llama.cpp rounds it). A layer whose sum is all zeros (a scale of 0)
    /// gets nothing, so steering by 0 is bit-identical to no steering.
    /// </summary>
    /// <exception cref="ArgumentException">A scale is not finite, a direction's width is not the model's, or a direction's layer is outside the model.</exception>
    public static ResidualSteering Create(LlamaConfig config, IEnumerable<SteeringTerm> terms)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(terms);
        var sums = new float[]?[config.Layers];
        foreach (var term in terms)
        {
            if (!float.IsFinite(term.Scale)) throw new ArgumentException($"steering scale {term.Scale} is not a finite number");
            foreach (var (layer, direction) in term.Directions)
            {
                if (direction.Length != config.Dim)
                    throw new ArgumentException($"the direction of layer {layer} has {direction.Length} values; the model's residual stream has {config.Dim}");
                if (layer < 0 || layer >= config.Layers)
                    throw new ArgumentException($"a direction of layer {layer} cannot steer a model of {config.Layers} layers (0..{config.Layers - 1})");
                if (layer < term.FirstLayer || layer > term.LastLayer) continue;
                var sum = sums[layer] ??= new float[config.Dim];
                for (int i = 0; i < sum.Length; i++) sum[i] += direction[i] * term.Scale;
            }
        }
        for (int layer = 0; layer < sums.Length; layer++)
            if (sums[layer] is { } sum && !sum.Any(v => v != 0)) sums[layer] = null;
        return new ResidualSteering(sums, config.Dim);
    }
}
