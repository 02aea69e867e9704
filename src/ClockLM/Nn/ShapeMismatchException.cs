namespace ClockLM.Nn;

/// <summary>Thrown when an operation receives tensors (or arrays) whose shapes do not fit together.
/// The message names the operation and both shapes, e.g. <c>MatMul: [2, 3] @ [2, 1]: inner dimensions 3 and 2 differ</c>.</summary>
public sealed class ShapeMismatchException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="operation"/> applied to shapes <paramref name="left"/> and <paramref name="right"/>.</summary>
    public ShapeMismatchException(string operation, int[] left, int[] right, string expected)
        : base($"{operation}: shapes {Format(left)} and {Format(right)} do not fit: {expected}")
    {
        Operation = operation;
        Left = left;
        Right = right;
    }

    /// <summary>The operation that rejected the shapes.</summary>
    public string Operation { get; }

    /// <summary>The shape of the first operand.</summary>
    public int[] Left { get; }

    /// <summary>The shape of the second operand.</summary>
    public int[] Right { get; }

    /// <summary>Formats a shape as <c>[2, 3]</c>.</summary>
    public static string Format(int[] shape) => "[" + string.Join(", ", shape) + "]";
}
