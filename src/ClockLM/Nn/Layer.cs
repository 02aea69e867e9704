using System.Numerics;

namespace ClockLM.Nn;

/// <summary>A layer of a <see cref="Sequential{T}"/> model: a differentiable map from rows of features to rows of outputs.</summary>
public abstract class Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The layer's name, unique within its model (e.g. <c>dense_1</c>); it prefixes its weight names in saved files.</summary>
    public string Name { get; internal set; } = "";

    /// <summary>The width of each input row; known once the layer has been added to a model.</summary>
    public int InputSize { get; private set; }

    /// <summary>The width of each output row.</summary>
    public abstract int OutputSize { get; }

    /// <summary>True once <see cref="Build"/> has created the weights.</summary>
    public bool IsBuilt => InputSize > 0;

    /// <summary>The trainable tensors and their names within the layer (e.g. <c>kernel</c>, <c>bias</c>).</summary>
    public abstract IReadOnlyList<(string Name, Tensor<T> Value)> Parameters { get; }

    /// <summary>The Keras-style base name of this kind of layer (<c>dense</c>); a model names its layers
    /// <c>dense</c>, <c>dense_1</c>, <c>dense_2</c>, ...</summary>
    protected internal abstract string KindName { get; }

    /// <summary>Creates the weights for rows of width <paramref name="inputSize"/>, drawing any random values from <paramref name="random"/>.</summary>
    public void Build(int inputSize, Random random)
    {
        if (IsBuilt)
            throw new InvalidOperationException($"layer '{Name}' is already built (for input width {InputSize}); a layer belongs to one model");
        if (inputSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(inputSize), inputSize, "the input width must be positive");
        CreateWeights(inputSize, random);
        InputSize = inputSize;
    }

    /// <summary>Creates the layer's weights.</summary>
    protected abstract void CreateWeights(int inputSize, Random random);

    /// <summary>Maps a (batch × <see cref="InputSize"/>) tensor to (batch × <see cref="OutputSize"/>).</summary>
    public abstract Tensor<T> Forward(Tensor<T> input);
}
