namespace ClockLM.Nn;

/// <summary>What <see cref="Sequential{T}.Fit(T[,], T[,], int, int, bool, double, int, TextWriter?)"/> measured, one value per epoch and quantity
/// (<c>loss</c>, <c>accuracy</c>, <c>val_loss</c>, <c>val_accuracy</c>), like Keras's <c>history.history</c>.</summary>
public sealed class History
{
    private readonly Dictionary<string, List<double>> _values = [];

    /// <summary>The quantities recorded, in the order they are printed.</summary>
    public IReadOnlyList<string> Keys { get; private set; } = [];

    /// <summary>The number of epochs recorded.</summary>
    public int Epochs => Keys.Count == 0 ? 0 : _values[Keys[0]].Count;

    /// <summary>The value of <paramref name="key"/> after each epoch.</summary>
    public IReadOnlyList<double> this[string key] => _values.TryGetValue(key, out var values)
        ? values
        : throw new KeyNotFoundException($"history has no '{key}'; it has {string.Join(", ", Keys)}");

    internal void Add(string key, double value)
    {
        if (!_values.TryGetValue(key, out var values))
        {
            _values[key] = values = [];
            Keys = [.. Keys, key];
        }
        values.Add(value);
    }
}
