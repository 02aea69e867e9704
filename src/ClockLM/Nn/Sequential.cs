using System.Collections;
using System.Diagnostics;
using System.Globalization;
using System.Numerics;

namespace ClockLM.Nn;

/// <summary>
/// A stack of layers trained as one model, after Keras's <c>Sequential</c>:
/// <code>
/// var model = new Sequential&lt;float&gt;(inputSize: 3, seed: 42)
/// {
///     new Dense&lt;float&gt;(2, Activation.Sigmoid),
///     new Dense&lt;float&gt;(1, Activation.Sigmoid),
/// };
/// model.Compile(new Adam(), Loss.BinaryCrossEntropy, Metric.Accuracy);
/// model.Fit(x, y, epochs: 10);
/// float[,] p = model.Predict(x);
/// </code>
/// Data come as rows of features: <c>T[,]</c> (rows × features) or <c>T[][]</c> (one array per row).
/// </summary>
/// <typeparam name="T"><see cref="float"/> to train, <see cref="double"/> to check gradients.</typeparam>
public sealed class Sequential<T> : IEnumerable<Layer<T>> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly List<Layer<T>> _layers = [];
    private readonly Random _random;
    private Optimizer? _optimizer;

    /// <summary>Creates an empty model whose input rows have <paramref name="inputSize"/> features.</summary>
    /// <param name="inputSize">Features per input row (Keras's <c>input_shape=(inputSize,)</c>).</param>
    /// <param name="seed">Seeds weight initialisation and shuffling; null draws a random seed.</param>
    public Sequential(int inputSize, int? seed = null)
    {
        if (inputSize <= 0) throw new ArgumentOutOfRangeException(nameof(inputSize), inputSize, "the input width must be positive");
        InputSize = inputSize;
        _random = seed is { } s ? new Random(s) : new Random();
    }

    /// <summary>Features per input row.</summary>
    public int InputSize { get; }

    /// <summary>Values per output row (the last layer's width, or <see cref="InputSize"/> when there are no layers).</summary>
    public int OutputSize => _layers.Count == 0 ? InputSize : _layers[^1].OutputSize;

    /// <summary>The layers, input first.</summary>
    public IReadOnlyList<Layer<T>> Layers => _layers;

    /// <summary>Every trainable tensor, input layer first.</summary>
    public IReadOnlyList<Tensor<T>> Parameters => [.. NamedParameters.Select(p => p.Value)];

    /// <summary>Every trainable tensor with its name in saved files, <c>layer.parameter</c> (e.g. <c>dense_1.kernel</c>).</summary>
    public IReadOnlyList<(string Name, Tensor<T> Value)> NamedParameters =>
        [.. _layers.SelectMany(l => l.Parameters.Select(p => ($"{l.Name}.{p.Name}", p.Value)))];

    /// <summary>The optimiser set by <see cref="Compile"/>.</summary>
    public Optimizer? Optimizer => _optimizer;

    /// <summary>The loss set by <see cref="Compile"/>.</summary>
    public Loss Loss { get; private set; }

    /// <summary>The metrics set by <see cref="Compile"/>.</summary>
    public IReadOnlyList<Metric> Metrics { get; private set; } = [];

    /// <summary>True once <see cref="Compile"/> has been called.</summary>
    public bool IsCompiled => _optimizer != null;

    /// <summary>Appends a layer and creates its weights for the current output width.</summary>
    public void Add(Layer<T> layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        int sameKind = _layers.Count(l => l.KindName == layer.KindName);
        layer.Name = sameKind == 0 ? layer.KindName : $"{layer.KindName}_{sameKind}";
        layer.Build(OutputSize, _random);
        _layers.Add(layer);
    }

    /// <summary>Sets how the model trains: the optimiser, the loss and the metrics to report.</summary>
    public void Compile(Optimizer optimizer, Loss loss, params Metric[] metrics)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        _optimizer = optimizer;
        Loss = loss;
        Metrics = [.. metrics.Distinct()];
    }

    /// <summary>Runs a (batch × <see cref="InputSize"/>) tensor through every layer.</summary>
    public Tensor<T> Forward(Tensor<T> input)
    {
        if (input.Rank != 2 || input.Shape[1] != InputSize)
            throw new ShapeMismatchException("Sequential input", input.Shape, [input.Rank == 2 ? input.Shape[0] : 1, InputSize],
                $"expected rows of {InputSize} features");
        var x = input;
        foreach (var layer in _layers) x = layer.Forward(x);
        return x;
    }

    /// <summary>The compiled loss of the model's predictions for <paramref name="x"/> against <paramref name="y"/>; call <see cref="Tensor{T}.Backward"/> on it for gradients.</summary>
    public Tensor<T> ComputeLoss(Tensor<T> x, Tensor<T> y) => Losses.Compute(RequireCompiled().Loss, Forward(x), y);

    /// <summary>Trains the model; see the class example.</summary>
    /// <param name="x">Input rows (rows × <see cref="InputSize"/>).</param>
    /// <param name="y">Targets: rows × <see cref="OutputSize"/>, or rows × 1 class indices for sparse categorical cross-entropy.</param>
    /// <param name="epochs">Passes over the training rows.</param>
    /// <param name="batchSize">Rows per gradient step (the last batch may be smaller).</param>
    /// <param name="shuffle">Visit the training rows in a new random order each epoch.</param>
    /// <param name="validationSplit">Fraction of rows, taken from the end before shuffling, held out and evaluated after each epoch.</param>
    /// <param name="verbose">0 silent; 1 one line per epoch, with a progress bar when writing to a terminal; 2 one line per epoch.</param>
    /// <param name="output">Where to print (default <see cref="Console.Out"/>).</param>
    /// <returns>The loss and metrics after each epoch.</returns>
    public History Fit(T[,] x, T[,] y, int epochs = 1, int batchSize = 32, bool shuffle = true,
        double validationSplit = 0, int verbose = 1, TextWriter? output = null) =>
        Fit(RowSet.From(x, "x"), RowSet.From(y, "y"), epochs, batchSize, shuffle, validationSplit, verbose, output);

    /// <summary>Trains the model on jagged rows; see <see cref="Fit(T[,], T[,], int, int, bool, double, int, TextWriter?)"/>.</summary>
    public History Fit(T[][] x, T[][] y, int epochs = 1, int batchSize = 32, bool shuffle = true,
        double validationSplit = 0, int verbose = 1, TextWriter? output = null) =>
        Fit(RowSet.From(x, "x"), RowSet.From(y, "y"), epochs, batchSize, shuffle, validationSplit, verbose, output);

    /// <summary>Trains the model with one target per row (a binary label, a regression value or a class index);
    /// see <see cref="Fit(T[,], T[,], int, int, bool, double, int, TextWriter?)"/>.</summary>
    public History Fit(T[][] x, T[] y, int epochs = 1, int batchSize = 32, bool shuffle = true,
        double validationSplit = 0, int verbose = 1, TextWriter? output = null) =>
        Fit(RowSet.From(x, "x"), new RowSet((T[])y.Clone(), y.Length, 1), epochs, batchSize, shuffle, validationSplit, verbose, output);

    /// <summary>The loss and metrics on <paramref name="x"/>, <paramref name="y"/> (keys <c>loss</c>, <c>accuracy</c>).</summary>
    public IReadOnlyDictionary<string, double> Evaluate(T[,] x, T[,] y, int batchSize = 32) =>
        Evaluate(RowSet.From(x, "x"), RowSet.From(y, "y"), batchSize);

    /// <summary>The loss and metrics on jagged rows.</summary>
    public IReadOnlyDictionary<string, double> Evaluate(T[][] x, T[][] y, int batchSize = 32) =>
        Evaluate(RowSet.From(x, "x"), RowSet.From(y, "y"), batchSize);

    /// <summary>The model's outputs for each row of <paramref name="x"/> (rows × <see cref="OutputSize"/>).</summary>
    public T[,] Predict(T[,] x, int batchSize = 32)
    {
        var flat = Predict(RowSet.From(x, "x"), batchSize);
        var result = new T[flat.Count, flat.Width];
        for (int r = 0; r < flat.Count; r++)
            for (int c = 0; c < flat.Width; c++)
                result[r, c] = flat.Data[r * flat.Width + c];
        return result;
    }

    /// <summary>The model's outputs for each row of <paramref name="x"/>, one array per row.</summary>
    public T[][] Predict(T[][] x, int batchSize = 32)
    {
        var flat = Predict(RowSet.From(x, "x"), batchSize);
        return [.. Enumerable.Range(0, flat.Count).Select(r => flat.Data.AsSpan(r * flat.Width, flat.Width).ToArray())];
    }

    /// <summary>Writes every parameter to a safetensors file (names from <see cref="NamedParameters"/>).</summary>
    public void SaveWeights(string path) => SafetensorsWeights.Write(path, NamedParameters);

    /// <summary>Reads every parameter from a safetensors file written for a model of the same layout.</summary>
    public void LoadWeights(string path) => SafetensorsWeights.Read(path, NamedParameters);

    /// <inheritdoc/>
    public IEnumerator<Layer<T>> GetEnumerator() => _layers.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private History Fit(RowSet x, RowSet y, int epochs, int batchSize, bool shuffle, double validationSplit, int verbose, TextWriter? output)
    {
        var optimizer = RequireCompiled()._optimizer!;
        CheckData(x, y);
        if (epochs < 0) throw new ArgumentOutOfRangeException(nameof(epochs), epochs, "epochs must not be negative");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "the batch size must be positive");
        if (validationSplit is < 0 or >= 1 || double.IsNaN(validationSplit))
            throw new ArgumentOutOfRangeException(nameof(validationSplit), validationSplit, "the validation split must be in [0, 1)");
        if (verbose is < 0 or > 2) throw new ArgumentOutOfRangeException(nameof(verbose), verbose, "verbose must be 0, 1 or 2");

        // Like Keras, the validation rows are the last ones, taken before any shuffling.
        int trainRows = (int)(x.Count * (1 - validationSplit));
        if (trainRows == 0 || (validationSplit > 0 && trainRows == x.Count))
            throw new ArgumentOutOfRangeException(nameof(validationSplit), validationSplit,
                $"splitting {x.Count} rows by {validationSplit} leaves {trainRows} for training and {x.Count - trainRows} for validation; both need at least one");
        var (valX, valY) = (x.Slice(trainRows, x.Count - trainRows), y.Slice(trainRows, y.Count - trainRows));

        output ??= Console.Out;
        bool progressBar = verbose == 1 && ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        var parameters = Parameters;
        var history = new History();
        var order = Enumerable.Range(0, trainRows).ToArray();
        int steps = (trainRows + batchSize - 1) / batchSize;
        for (int epoch = 1; epoch <= epochs; epoch++)
        {
            if (shuffle) _random.Shuffle(order);
            var clock = Stopwatch.StartNew();
            double lossSum = 0;
            var accuracy = new AccuracyCounter();
            long lastDraw = 0;
            int barLength = 0;
            for (int step = 0; step < steps; step++)
            {
                int start = step * batchSize, count = Math.Min(batchSize, trainRows - start);
                var rows = order.AsSpan(start, count);
                var xb = x.Gather(rows);
                var yb = y.Gather(rows);

                foreach (var p in parameters) p.ZeroGrad();
                var predictions = Forward(xb);
                var loss = Losses.Compute(Loss, predictions, yb);
                loss.Backward();
                optimizer.Step(parameters);

                lossSum += double.CreateChecked(loss.Scalar) * count;
                accuracy.Add(AccuracyKind, predictions, yb);
                if (progressBar && (clock.ElapsedMilliseconds - lastDraw >= 100 || step == steps - 1))
                {
                    lastDraw = clock.ElapsedMilliseconds;
                    string bar = $"Epoch {epoch}/{epochs} {step + 1}/{steps} {Bar(step + 1, steps)}{Measures(lossSum / (start + count), accuracy.Value, null)}";
                    output.Write("\r" + bar);
                    barLength = bar.Length;
                }
            }

            var trainLoss = lossSum / trainRows;
            IReadOnlyDictionary<string, double>? validation = valX.Count > 0 ? Evaluate(valX, valY, batchSize) : null;
            history.Add("loss", trainLoss);
            if (Metrics.Contains(Metric.Accuracy)) history.Add("accuracy", accuracy.Value);
            if (validation != null)
                foreach (var (key, value) in validation) history.Add("val_" + key, value);

            if (verbose > 0)
            {
                string line = $"Epoch {epoch}/{epochs} - {steps}/{steps} - {Timing(clock.Elapsed, steps)}{Measures(trainLoss, accuracy.Value, validation)}";
                // On a terminal the epoch line overwrites the progress bar; spaces blank out what is left of it.
                output.WriteLine(progressBar ? "\r" + line + new string(' ', Math.Max(0, barLength - line.Length)) : line);
            }
        }
        return history;
    }

    private IReadOnlyDictionary<string, double> Evaluate(RowSet x, RowSet y, int batchSize)
    {
        RequireCompiled();
        CheckData(x, y);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "the batch size must be positive");
        double lossSum = 0;
        var accuracy = new AccuracyCounter();
        var all = Enumerable.Range(0, x.Count).ToArray();
        for (int start = 0; start < x.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, x.Count - start);
            var yb = y.Gather(all.AsSpan(start, count));
            var predictions = Forward(x.Gather(all.AsSpan(start, count)));
            lossSum += double.CreateChecked(Losses.Compute(Loss, predictions, yb).Scalar) * count;
            accuracy.Add(AccuracyKind, predictions, yb);
        }
        var result = new Dictionary<string, double> { ["loss"] = lossSum / x.Count };
        if (Metrics.Contains(Metric.Accuracy)) result["accuracy"] = accuracy.Value;
        return result;
    }

    private RowSet Predict(RowSet x, int batchSize)
    {
        if (x.Width != InputSize)
            throw new ShapeMismatchException("Predict", [x.Count, x.Width], [x.Count, InputSize], $"expected rows of {InputSize} features");
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "the batch size must be positive");
        var result = new T[x.Count * OutputSize];
        var all = Enumerable.Range(0, x.Count).ToArray();
        for (int start = 0; start < x.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, x.Count - start);
            Forward(x.Gather(all.AsSpan(start, count))).Data.CopyTo(result, start * OutputSize);
        }
        return new RowSet(result, x.Count, OutputSize);
    }

    private Sequential<T> RequireCompiled() =>
        IsCompiled ? this : throw new InvalidOperationException("the model is not compiled: call Compile(optimizer, loss, metrics) before Fit, Evaluate or ComputeLoss");

    private void CheckData(RowSet x, RowSet y)
    {
        if (x.Width != InputSize)
            throw new ShapeMismatchException("Fit/Evaluate x", [x.Count, x.Width], [x.Count, InputSize], $"expected rows of {InputSize} features");
        int targetWidth = Loss == Loss.SparseCategoricalCrossEntropy ? 1 : OutputSize;
        if (y.Count != x.Count || y.Width != targetWidth)
            throw new ShapeMismatchException("Fit/Evaluate y", [y.Count, y.Width], [x.Count, targetWidth],
                $"expected one target row of width {targetWidth} per input row");
        if (x.Count == 0) throw new ArgumentException("there are no rows to train or evaluate on", nameof(x));
    }

    private AccuracyKind AccuracyKind => Loss switch
    {
        Loss.BinaryCrossEntropy => AccuracyKind.Binary,
        Loss.CategoricalCrossEntropy => AccuracyKind.Categorical,
        Loss.SparseCategoricalCrossEntropy => AccuracyKind.Sparse,
        _ => OutputSize == 1 ? AccuracyKind.Binary : AccuracyKind.Categorical,
    };

    private string Measures(double loss, double accuracy, IReadOnlyDictionary<string, double>? validation)
    {
        var text = new System.Text.StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $" - loss: {loss:F4}");
        if (Metrics.Contains(Metric.Accuracy)) text.Append(CultureInfo.InvariantCulture, $" - accuracy: {accuracy:F4}");
        if (validation != null)
            foreach (var (key, value) in validation) text.Append(CultureInfo.InvariantCulture, $" - val_{key}: {value:F4}");
        return text.ToString();
    }

    private static string Timing(TimeSpan elapsed, int steps)
    {
        double perStep = elapsed.TotalMilliseconds / steps;
        string step = perStep >= 1 ? $"{perStep:F0}ms/step" : $"{perStep * 1000:F0}us/step";
        return string.Create(CultureInfo.InvariantCulture, $"{elapsed.TotalSeconds:F0}s {step}");
    }

    private static string Bar(int done, int total)
    {
        const int width = 30;
        int filled = (int)((long)done * width / total);
        return "[" + new string('=', filled) + (filled < width ? ">" + new string('.', width - filled - 1) : "") + "]";
    }

    /// <summary>Rows of equal width stored row-major.</summary>
    private readonly record struct RowSet(T[] Data, int Count, int Width)
    {
        public static RowSet From(T[,] values, string name)
        {
            ArgumentNullException.ThrowIfNull(values, name);
            int rows = values.GetLength(0), cols = values.GetLength(1);
            var data = new T[rows * cols];
            int i = 0;
            foreach (T v in values) data[i++] = v; // a rectangular array enumerates row by row
            return new RowSet(data, rows, cols);
        }

        public static RowSet From(T[][] values, string name)
        {
            ArgumentNullException.ThrowIfNull(values, name);
            int cols = values.Length == 0 ? 0 : values[0].Length;
            var data = new T[values.Length * cols];
            for (int r = 0; r < values.Length; r++)
            {
                if (values[r].Length != cols)
                    throw new ArgumentException($"{name}: row {r} has {values[r].Length} values but row 0 has {cols}; all rows need the same width", name);
                values[r].CopyTo(data, r * cols);
            }
            return new RowSet(data, values.Length, cols);
        }

        public RowSet Slice(int start, int count) => new(Data.AsSpan(start * Width, count * Width).ToArray(), count, Width);

        public Tensor<T> Gather(ReadOnlySpan<int> rows)
        {
            var data = new T[rows.Length * Width];
            for (int i = 0; i < rows.Length; i++)
                Array.Copy(Data, rows[i] * Width, data, i * Width, Width);
            return new Tensor<T>([rows.Length, Width], data);
        }
    }

    private struct AccuracyCounter
    {
        private long _correct, _total;

        public readonly double Value => _total == 0 ? 0 : (double)_correct / _total;

        public void Add(AccuracyKind kind, Tensor<T> predictions, Tensor<T> targets)
        {
            var (correct, total) = Accuracy.Count(kind, predictions.Data, targets.Data, predictions.Rows, predictions.Columns);
            _correct += correct;
            _total += total;
        }
    }
}
