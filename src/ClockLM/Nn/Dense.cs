using System.Numerics;

namespace ClockLM.Nn;

/// <summary>
/// A fully connected layer, Keras's <c>Dense</c>: y = activation(x·W + b), with kernel W of shape
/// (inputs × units) and bias b of shape (units). Weights start Glorot-uniform, U(−√(6/(in+out)), +√(6/(in+out))),
/// and the bias starts at zero. (Written per unit, z = Wᵀx + b: row j of Wᵀ holds unit j's input weights.)
/// </summary>
public sealed class Dense<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _kernel;
    private Tensor<T>? _bias;

    /// <summary>Creates a dense layer of <paramref name="units"/> outputs.</summary>
    /// <param name="units">Output width.</param>
    /// <param name="activation">Applied to z = x·W + b (default none).</param>
    /// <param name="useBias">Whether to add a bias (default true).</param>
    public Dense(int units, Activation activation = Activation.Linear, bool useBias = true)
    {
        if (units <= 0) throw new ArgumentOutOfRangeException(nameof(units), units, "a Dense layer needs at least one unit");
        Units = units;
        Activation = activation;
        UseBias = useBias;
    }

    /// <summary>The number of outputs.</summary>
    public int Units { get; }

    /// <summary>The activation applied to the pre-activation.</summary>
    public Activation Activation { get; }

    /// <summary>Whether the layer has a bias.</summary>
    public bool UseBias { get; }

    /// <inheritdoc/>
    public override int OutputSize => Units;

    /// <summary>W, shape (inputs × units).</summary>
    public Tensor<T> Kernel => _kernel ?? throw NotBuilt();

    /// <summary>b, shape (units); null when <see cref="UseBias"/> is false.</summary>
    public Tensor<T>? Bias => IsBuilt ? _bias : throw NotBuilt();

    /// <inheritdoc/>
    public override IReadOnlyList<(string Name, Tensor<T> Value)> Parameters =>
        _bias is null ? [("kernel", Kernel)] : [("kernel", Kernel), ("bias", _bias)];

    /// <inheritdoc/>
    protected internal override string KindName => "dense";

    /// <inheritdoc/>
    protected override void CreateWeights(int inputSize, Random random)
    {
        double limit = Math.Sqrt(6.0 / (inputSize + Units));
        var w = new T[inputSize * Units];
        for (int i = 0; i < w.Length; i++)
            w[i] = T.CreateChecked((2 * random.NextDouble() - 1) * limit);
        _kernel = new Tensor<T>([inputSize, Units], w, requiresGrad: true);
        _bias = UseBias ? Tensor<T>.Zeros([Units], requiresGrad: true) : null;
    }

    /// <summary>The pre-activation z = x·W + b.</summary>
    public Tensor<T> PreActivation(Tensor<T> input)
    {
        if (input.Rank != 2 || input.Shape[1] != InputSize)
            throw new ShapeMismatchException($"Dense '{Name}'", input.Shape, Kernel.Shape, $"expected input rows of width {InputSize}");
        var z = input.MatMul(Kernel);
        return _bias is null ? z : z + _bias;
    }

    /// <inheritdoc/>
    public override Tensor<T> Forward(Tensor<T> input) => PreActivation(input).Apply(Activation);

    private InvalidOperationException NotBuilt() =>
        new($"Dense layer '{Name}' has no weights yet: add it to a Sequential model (or call Build) first");
}
