using System.Globalization;

namespace ClockLM.Nn;

/// <summary>
/// The 3-2-1 network worked number by number: three inputs, a hidden <c>Dense(2, sigmoid)</c> and an output
/// <c>Dense(1, sigmoid)</c>. <see cref="Run"/> trains it Keras-style, then repeats the forward pass by hand with
/// fixed weights and takes one gradient-descent step, printing every intermediate value (<c>clocklm nn example</c>).
/// </summary>
public static class ThreeTwoOneExample
{
    /// <summary>Training inputs, one row per example.</summary>
    public static readonly float[,] TrainX = { { 0.1f, 0.2f, 0.3f }, { 0.4f, 0.5f, 0.6f }, { 0.7f, 0.8f, 0.9f } };

    /// <summary>Training targets.</summary>
    public static readonly float[,] TrainY = { { 0.9f }, { 0.1f }, { 0.8f } };

    /// <summary>The input of the hand pass, x = [0.1, 0.2, 0.3]ᵀ.</summary>
    public static readonly double[] X = [0.1, 0.2, 0.3];

    /// <summary>Hidden weights W1 (2 units × 3 inputs): row j holds unit j's weights.</summary>
    public static readonly double[,] W1 = { { 0.5, 0.6, 0.7 }, { 0.7, 0.8, 0.9 } };

    /// <summary>Hidden bias b1.</summary>
    public static readonly double[] B1 = [0.1, 0.2];

    /// <summary>Output weights W2 (1 unit × 2 inputs).</summary>
    public static readonly double[,] W2 = { { 0.3, 0.4 } };

    /// <summary>Output bias b2.</summary>
    public static readonly double[] B2 = [0.1];

    /// <summary>The target of the hand gradient step (the first training row's label).</summary>
    public const double Target = 0.9;

    /// <summary>The step size α of the hand gradient step.</summary>
    public const double LearningRate = 0.1;

    /// <summary>Every number of the hand forward pass and gradient step.</summary>
    /// <param name="Z1">Hidden pre-activations W1·x + b1.</param>
    /// <param name="A1">Hidden activations σ(Z1).</param>
    /// <param name="Z2">Output pre-activation W2·A1 + b2.</param>
    /// <param name="Output">σ(Z2), the prediction ŷ.</param>
    /// <param name="LinearOutput">The output with no sigmoid anywhere: W2·Z1 + b2.</param>
    /// <param name="Loss">Binary cross-entropy of <paramref name="Output"/> against <see cref="Target"/>.</param>
    /// <param name="GradW1">∂L/∂W1, laid out like W1.</param>
    /// <param name="GradB1">∂L/∂b1.</param>
    /// <param name="GradW2">∂L/∂W2, laid out like W2.</param>
    /// <param name="GradB2">∂L/∂b2.</param>
    /// <param name="LossAfterStep">The loss after W ← W − α·∂L/∂W for every weight and bias.</param>
    public sealed record HandPass(double[] Z1, double[] A1, double Z2, double Output, double LinearOutput, double Loss,
        double[,] GradW1, double[] GradB1, double[,] GradW2, double[] GradB2, double LossAfterStep);

    /// <summary>Runs the hand pass through <see cref="Dense{T}"/> layers in float64 and returns every intermediate value.</summary>
    public static HandPass ComputeHandPass()
    {
        var model = new Sequential<double>(inputSize: 3, seed: 0)
        {
            new Dense<double>(2, Activation.Sigmoid),
            new Dense<double>(1, Activation.Sigmoid),
        };
        var hidden = (Dense<double>)model.Layers[0];
        var output = (Dense<double>)model.Layers[1];
        // A Dense kernel is (inputs × units), the transpose of W in z = W·x + b.
        SetTransposed(hidden.Kernel, W1);
        B1.CopyTo(hidden.Bias!.Data, 0);
        SetTransposed(output.Kernel, W2);
        B2.CopyTo(output.Bias!.Data, 0);
        model.Compile(new Sgd(LearningRate), Nn.Loss.BinaryCrossEntropy);

        var x = new Tensor<double>([1, 3], (double[])X.Clone());
        var y = new Tensor<double>([1, 1], [Target]);
        var z1 = hidden.PreActivation(x);
        var a1 = z1.Sigmoid();
        var z2 = output.PreActivation(a1);
        var a2 = z2.Sigmoid();
        var linear = output.PreActivation(z1);
        var loss = Losses.BinaryCrossEntropy(a2, y);
        loss.Backward();

        var result = new HandPass(z1.Data, a1.Data, z2.Data[0], a2.Data[0], linear.Data[0], loss.Scalar,
            Transposed(hidden.Kernel.Grad!, 2, 3), (double[])hidden.Bias.Grad!.Clone(),
            Transposed(output.Kernel.Grad!, 1, 2), (double[])output.Bias.Grad!.Clone(), double.NaN);
        model.Optimizer!.Step(model.Parameters);
        return result with { LossAfterStep = model.ComputeLoss(x, y).Scalar };
    }

    /// <summary>Trains the 3-2-1 network for 10 epochs and returns it with its history (no printing when <paramref name="output"/> is null).</summary>
    public static (Sequential<float> Model, History History) Train(int seed, TextWriter? output)
    {
        var model = new Sequential<float>(inputSize: 3, seed: seed)
        {
            new Dense<float>(2, Activation.Sigmoid),
            new Dense<float>(1, Activation.Sigmoid),
        };
        model.Compile(new Adam(), Nn.Loss.BinaryCrossEntropy, Metric.Accuracy);
        var history = model.Fit(TrainX, TrainY, epochs: 10, verbose: output is null ? 0 : 1, output: output ?? TextWriter.Null);
        return (model, history);
    }

    /// <summary>Prints the training run and the hand pass to <paramref name="output"/>.</summary>
    public static void Run(TextWriter output, int seed)
    {
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine($"1. Training: 3 inputs -> Dense(2, sigmoid) -> Dense(1, sigmoid); Adam(lr=0.001), binary cross-entropy, accuracy; seed {seed}");
        output.WriteLine("x = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]");
        output.WriteLine("y = [[0.9], [0.1], [0.8]]");
        var (model, _) = Train(seed, output);
        float prediction = model.Predict(new float[,] { { 0.1f, 0.2f, 0.3f } })[0, 0];
        output.WriteLine(string.Create(inv, $"Predict([[0.1, 0.2, 0.3]]) = [[{prediction:F4}]]"));
        output.WriteLine();

        var p = ComputeHandPass();
        output.WriteLine("2. Forward pass by hand: z = W·x + b, a = σ(z) = 1 / (1 + e^-z)");
        output.WriteLine($"x = [{Join(X)}]");
        output.WriteLine($"hidden layer: W1 = [{Rows(W1)}], b1 = [{Join(B1)}]");
        for (int j = 0; j < 2; j++)
            output.WriteLine($"  z1[{j}] = {Terms(W1, j, X)} + {N(B1[j])} = {F(p.Z1[j])}    a1[{j}] = σ({F(p.Z1[j])}) = {F(p.A1[j])}");
        output.WriteLine($"output layer: W2 = [{Rows(W2)}], b2 = [{Join(B2)}]");
        output.WriteLine($"  z2[0] = {Terms(W2, 0, p.A1)} + {N(B2[0])} = {F(p.Z2)}    ŷ = σ({F(p.Z2)}) = {F(p.Output)}");
        output.WriteLine($"without the sigmoids (a = z in both layers): ŷ = {Terms(W2, 0, p.Z1)} + {N(B2[0])} = {F(p.LinearOutput)}");
        output.WriteLine();

        double dz2 = p.Output - Target;
        output.WriteLine($"3. One gradient-descent step: binary cross-entropy against y = {N(Target)}, α = {N(LearningRate)}, ΔW = α·∂L/∂W, W ← W − ΔW");
        output.WriteLine($"  L = −(y·ln ŷ + (1 − y)·ln(1 − ŷ)) = {F(p.Loss)}");
        output.WriteLine($"  ∂L/∂z2 = ŷ − y = {F(dz2)};  ∂L/∂z1[j] = ∂L/∂z2 · W2[0,j] · a1[j]·(1 − a1[j])");
        output.WriteLine("  weight     value      ∂L/∂W       ΔW          new value");
        for (int j = 0; j < 2; j++)
        {
            for (int i = 0; i < 3; i++)
                output.WriteLine(Step($"W1[{j},{i}]", W1[j, i], p.GradW1[j, i]));
            output.WriteLine(Step($"b1[{j}]", B1[j], p.GradB1[j]));
        }
        for (int j = 0; j < 2; j++)
            output.WriteLine(Step($"W2[0,{j}]", W2[0, j], p.GradW2[0, j]));
        output.WriteLine(Step("b2[0]", B2[0], p.GradB2[0]));
        output.WriteLine($"  loss after the step: {F(p.LossAfterStep)} (was {F(p.Loss)})");
    }

    private static string Step(string name, double value, double grad)
    {
        double delta = LearningRate * grad;
        return string.Create(CultureInfo.InvariantCulture, $"  {name,-9}  {value,9:F6}  {grad,10:F6}  {delta,10:F6}  {value - delta,10:F6}");
    }

    private static string Terms(double[,] w, int row, double[] x) =>
        string.Join(" + ", Enumerable.Range(0, x.Length).Select(i => $"{N(w[row, i])}·{(x == X ? N(x[i]) : F(x[i]))}"));

    private static string Rows(double[,] w) =>
        string.Join(", ", Enumerable.Range(0, w.GetLength(0)).Select(r => "[" + Join([.. Enumerable.Range(0, w.GetLength(1)).Select(c => w[r, c])]) + "]"));

    private static string Join(double[] values) => string.Join(", ", values.Select(N));

    private static string N(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("F6", CultureInfo.InvariantCulture);

    private static void SetTransposed(Tensor<double> kernel, double[,] w)
    {
        int units = w.GetLength(0), inputs = w.GetLength(1);
        for (int j = 0; j < units; j++)
            for (int i = 0; i < inputs; i++)
                kernel.Data[i * units + j] = w[j, i];
    }

    private static double[,] Transposed(double[] kernel, int units, int inputs)
    {
        var w = new double[units, inputs];
        for (int j = 0; j < units; j++)
            for (int i = 0; i < inputs; i++)
                w[j, i] = kernel[i * units + j];
        return w;
    }
}
