using System.Numerics;

namespace ClockLM.Nn;

public sealed partial class Tensor<T>
{
    /// <summary>Every value times a constant: y = c·x; dx = c·dy.</summary>
    public Tensor<T> Scale(T factor)
    {
        var x = this;
        var data = new T[Length];
        for (int i = 0; i < data.Length; i++) data[i] = x.Data[i] * factor;
        var output = Result(Shape, data, x);
        output.SetBackward(() => MatMulKernel.Axpy<T>(x.EnsureGrad(), factor, output._grad!));
        return output;
    }
}
