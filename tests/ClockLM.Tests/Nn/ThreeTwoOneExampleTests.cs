using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using ClockLM.Nn;

namespace ClockLM.Tests.Nn;

/// <summary>The 3-2-1 worked example: every printed number against arithmetic done here, and `clocklm nn example`.</summary>
public class ThreeTwoOneExampleTests
{
    private static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    [Fact]
    public void HandForwardPassMatchesArithmetic()
    {
        var p = ThreeTwoOneExample.ComputeHandPass();
        // z1 = W1·x + b1 with W1 = [[0.5, 0.6, 0.7], [0.7, 0.8, 0.9]], b1 = [0.1, 0.2], x = [0.1, 0.2, 0.3]
        double z10 = 0.5 * 0.1 + 0.6 * 0.2 + 0.7 * 0.3 + 0.1; // 0.05 + 0.12 + 0.21 + 0.1 = 0.48
        double z11 = 0.7 * 0.1 + 0.8 * 0.2 + 0.9 * 0.3 + 0.2; // 0.07 + 0.16 + 0.27 + 0.2 = 0.70
        Assert.Equal(0.48, z10, 15);
        Assert.Equal(0.70, z11, 15);
        double a10 = Sigmoid(z10), a11 = Sigmoid(z11);     // 0.617748, 0.668188
        double z2 = 0.3 * a10 + 0.4 * a11 + 0.1;           // 0.552599
        double yHat = Sigmoid(z2);                          // 0.634738
        double linear = 0.3 * z10 + 0.4 * z11 + 0.1;        // 0.144 + 0.28 + 0.1 = 0.524

        Assert.Equal(z10, p.Z1[0], 14);
        Assert.Equal(z11, p.Z1[1], 14);
        Assert.Equal(a10, p.A1[0], 14);
        Assert.Equal(a11, p.A1[1], 14);
        Assert.Equal(z2, p.Z2, 14);
        Assert.Equal(yHat, p.Output, 14);
        Assert.Equal(0.524, p.LinearOutput, 14);
        Assert.Equal(linear, p.LinearOutput, 14);
        // Rounded values as a reader checks them by hand.
        Assert.Equal(0.617748, a10, 6);
        Assert.Equal(0.668188, a11, 6);
        Assert.Equal(0.552599, z2, 6);
        Assert.Equal(0.634738, yHat, 6);
    }

    [Fact]
    public void GradientStepMatchesChainRuleByHand()
    {
        var p = ThreeTwoOneExample.ComputeHandPass();
        double[] x = [0.1, 0.2, 0.3];
        double[] z1 = [0.5 * 0.1 + 0.6 * 0.2 + 0.7 * 0.3 + 0.1, 0.7 * 0.1 + 0.8 * 0.2 + 0.9 * 0.3 + 0.2];
        double[] a1 = [Sigmoid(z1[0]), Sigmoid(z1[1])];
        double[] w2 = [0.3, 0.4];
        double yHat = Sigmoid(w2[0] * a1[0] + w2[1] * a1[1] + 0.1), y = 0.9;

        double loss = -(y * Math.Log(yHat) + (1 - y) * Math.Log(1 - yHat));
        Assert.Equal(loss, p.Loss, 13);
        // Sigmoid output with binary cross-entropy: ∂L/∂z2 = ŷ − y.
        double dz2 = yHat - y;
        Assert.Equal(dz2, p.GradB2[0], 13);
        for (int j = 0; j < 2; j++)
        {
            Assert.Equal(dz2 * a1[j], p.GradW2[0, j], 13);             // ∂L/∂W2[0,j] = ∂L/∂z2 · a1[j]
            double dz1 = dz2 * w2[j] * a1[j] * (1 - a1[j]);              // back through W2 and σ'
            Assert.Equal(dz1, p.GradB1[j], 13);
            for (int i = 0; i < 3; i++)
                Assert.Equal(dz1 * x[i], p.GradW1[j, i], 13);          // ∂L/∂W1[j,i] = ∂L/∂z1[j] · x[i]
        }

        // After W ← W − 0.1·∂L/∂W, recompute the loss from the stepped weights.
        double[,] w1New = new double[2, 3];
        double[] b1New = new double[2], w2New = new double[2];
        double[,] w1 = { { 0.5, 0.6, 0.7 }, { 0.7, 0.8, 0.9 } };
        double[] b1 = [0.1, 0.2];
        for (int j = 0; j < 2; j++)
        {
            double dz1 = dz2 * w2[j] * a1[j] * (1 - a1[j]);
            for (int i = 0; i < 3; i++) w1New[j, i] = w1[j, i] - 0.1 * dz1 * x[i];
            b1New[j] = b1[j] - 0.1 * dz1;
            w2New[j] = w2[j] - 0.1 * dz2 * a1[j];
        }
        double b2New = 0.1 - 0.1 * dz2;
        double h0 = Sigmoid(w1New[0, 0] * 0.1 + w1New[0, 1] * 0.2 + w1New[0, 2] * 0.3 + b1New[0]);
        double h1 = Sigmoid(w1New[1, 0] * 0.1 + w1New[1, 1] * 0.2 + w1New[1, 2] * 0.3 + b1New[1]);
        double yNew = Sigmoid(w2New[0] * h0 + w2New[1] * h1 + b2New);
        double lossNew = -(y * Math.Log(yNew) + (1 - y) * Math.Log(1 - yNew));
        Assert.Equal(lossNew, p.LossAfterStep, 13);
        Assert.True(p.LossAfterStep < p.Loss);
    }

    [Fact]
    public void TrainingLowersTheLossAndPredictsInsideTheUnitInterval()
    {
        foreach (int seed in new[] { 1, 42, 2024 })
        {
            var (model, history) = ThreeTwoOneExample.Train(seed, output: null);
            Assert.Equal(10, history["loss"].Count);
            Assert.True(history["loss"][9] < history["loss"][0], $"seed {seed}: loss {history["loss"][0]} → {history["loss"][9]}");
            float prediction = model.Predict(new float[,] { { 0.1f, 0.2f, 0.3f } })[0, 0];
            Assert.InRange(prediction, 1e-6f, 1 - 1e-6f);
            // The accuracy compares each prediction with its target at 0.5 over three rows: a multiple of 1/3.
            Assert.Contains(Math.Round(history["accuracy"][9] * 3, 6), new[] { 0.0, 1.0, 2.0, 3.0 });
        }
    }

    [Fact]
    public void PrintedExampleShowsEveryNumber()
    {
        var text = new StringWriter();
        ThreeTwoOneExample.Run(text, seed: 42);
        var lines = text.ToString().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();

        var epochs = lines.Where(l => l.StartsWith("Epoch ", StringComparison.Ordinal)).ToArray();
        Assert.Equal(10, epochs.Length);
        Assert.Matches(@"^Epoch 10/10 - 1/1 - \d+s \d+(ms|us)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}$", epochs[9]);
        // Same seed, same numbers: the printed losses are those of Train(42).
        var (model, history) = ThreeTwoOneExample.Train(42, output: null);
        for (int e = 0; e < 10; e++)
            Assert.Contains($"loss: {history["loss"][e].ToString("F4", CultureInfo.InvariantCulture)}", epochs[e]);
        float prediction = model.Predict(new float[,] { { 0.1f, 0.2f, 0.3f } })[0, 0];
        Assert.Contains($"Predict([[0.1, 0.2, 0.3]]) = [[{prediction.ToString("F4", CultureInfo.InvariantCulture)}]]", lines);

        Assert.Contains("  z1[0] = 0.5·0.1 + 0.6·0.2 + 0.7·0.3 + 0.1 = 0.480000    a1[0] = σ(0.480000) = 0.617748", lines);
        Assert.Contains("  z1[1] = 0.7·0.1 + 0.8·0.2 + 0.9·0.3 + 0.2 = 0.700000    a1[1] = σ(0.700000) = 0.668188", lines);
        Assert.Contains("  z2[0] = 0.3·0.617748 + 0.4·0.668188 + 0.1 = 0.552599    ŷ = σ(0.552599) = 0.634738", lines);
        Assert.Contains("without the sigmoids (a = z in both layers): ŷ = 0.3·0.480000 + 0.4·0.700000 + 0.1 = 0.524000", lines);

        // The step table: value, ∂L/∂W, ΔW = 0.1·∂L/∂W and W − ΔW, recomputed from the chain rule.
        double a10 = Sigmoid(0.48), yHat = Sigmoid(0.3 * a10 + 0.4 * Sigmoid(0.7) + 0.1);
        double dW2 = (yHat - 0.9) * a10;
        string F(double v) => v.ToString("F6", CultureInfo.InvariantCulture);
        var row = lines.Single(l => l.TrimStart().StartsWith("W2[0,0]", StringComparison.Ordinal));
        Assert.Equal(["W2[0,0]", F(0.3), F(dW2), F(0.1 * dW2), F(0.3 - 0.1 * dW2)], row.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(11, lines.Count(l => Regex.IsMatch(l, @"^  [Wb][12]\[")));
    }

    [Fact]
    public void NnExampleCommandPrintsTheExample()
    {
        // `clocklm nn example --seed 7`, run in-process through the command-line parser.
        var create = Assembly.Load("clocklm").GetType("ClockLM.Cli.NnCommand", throwOnError: true)!
            .GetMethod("Create", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)!;
        var root = new RootCommand { (Command)create.Invoke(null, null)! };
        var output = new StringWriter();
        int exit = root.Parse(["nn", "example", "--seed", "7"]).Invoke(new InvocationConfiguration { Output = output });
        Assert.Equal(0, exit);

        var expected = new StringWriter();
        ThreeTwoOneExample.Run(expected, seed: 7);
        static string WithoutTimings(string s) => Regex.Replace(s, @"\d+s \d+(ms|us)/step", "T");
        Assert.Equal(WithoutTimings(expected.ToString()), WithoutTimings(output.ToString()));
        Assert.Contains("seed 7", output.ToString());
        Assert.Contains("loss after the step:", output.ToString());
    }
}
