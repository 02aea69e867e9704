using ClockLM.Models;

namespace ClockLM.Clock;

/// <summary>
/// Activations recorded while a prompt ran: for each captured point, layer and position, a copy of the vector
/// (dim floats; (heads, pos+1) for the attention pattern). The input of probes and of the trace's lens and attention views.
/// </summary>
public sealed class ActivationCapture
{
    private readonly Dictionary<(ActivationPoint, int, int), float[]> _values = new();

    private ActivationCapture(int startPosition, int[] tokens, int layers)
    {
        StartPosition = startPosition;
        Tokens = tokens;
        Layers = layers;
    }

    /// <summary>First position captured.</summary>
    public int StartPosition { get; }

    /// <summary>Token ids that ran, in order.</summary>
    public int[] Tokens { get; }

    /// <summary>Layers of the model.</summary>
    public int Layers { get; }

    /// <summary>Logits of the last token.</summary>
    public float[] Logits { get; private set; } = [];

    /// <summary>The activation at <paramref name="point"/> of <paramref name="layer"/> for the token at <paramref name="position"/>.</summary>
    /// <exception cref="KeyNotFoundException">That point, layer or position was not captured.</exception>
    public float[] Get(ActivationPoint point, int layer, int position) =>
        _values.TryGetValue((point, layer, position), out var v) ? v
            : throw new KeyNotFoundException($"{ActivationPoints.Name(point, layer)} at position {position} was not captured");

    /// <summary>The activation named TransformerLens-style (e.g. <c>blocks.2.hook_mlp_out</c>) at <paramref name="position"/>.</summary>
    public float[] Get(string name, int position)
    {
        var (point, layer) = ActivationPoints.Parse(name);
        return Get(point, layer, position);
    }

    /// <summary>True when the point was captured.</summary>
    public bool Contains(ActivationPoint point, int layer, int position) => _values.ContainsKey((point, layer, position));

    /// <summary>
    /// Runs <paramref name="tokens"/> from <paramref name="startPos"/> on <paramref name="transformer"/> and copies the
    /// activations at <paramref name="points"/> (every point when none are named) of every layer and position.
    /// An extra <paramref name="hook"/> runs after the copy (so it may patch what later stages see).
    /// </summary>
    public static ActivationCapture Run(Transformer transformer, ReadOnlySpan<int> tokens, int startPos = 0,
        ActivationPoint[]? points = null, ActivationHook? hook = null)
    {
        var wanted = new HashSet<ActivationPoint>(points is { Length: > 0 } ? points : ActivationPoints.All);
        var capture = new ActivationCapture(startPos, tokens.ToArray(), transformer.Config.Layers);
        var logits = transformer.Run(tokens, (point, layer, position, activation) =>
        {
            if (wanted.Contains(point)) capture._values[(point, layer, position)] = activation.ToArray();
            hook?.Invoke(point, layer, position, activation);
        }, startPos);
        capture.Logits = logits.ToArray();
        return capture;
    }
}
