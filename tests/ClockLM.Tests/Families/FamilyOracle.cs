using ClockLM.Models;
using ClockLM.Tests.Oracle;
using Xunit.Abstractions;

namespace ClockLM.Tests.Families;

/// <summary>Compares ClockLM with llama.cpp on a model file: logits after a 20-token prompt, then 32 teacher-forced greedy steps.</summary>
public static class FamilyOracle
{
    /// <summary>Largest allowed |ClockLM logit - llama.cpp logit| in units of the logits' standard deviation, for F32
    /// weights. Both engines compute in float and differ only in summation order and in how exp/sin/cos round
    /// (llama.cpp's graph also normalises, rotates and soft-caps in other orders), which is a few 1e-6 of std
    /// after a handful of layers; 1e-4 leaves room for that yet catches any real difference in the graph (a wrong
    /// RoPE pairing, a missing bias or norm moves the logits by tens of percent of std).</summary>
    public const double Tolerance = 1e-4;

    /// <summary>Runs the comparison and returns max |logit difference| / std after the prompt.</summary>
    public static double CompareWithLlamaCpp(string path, ITestOutputHelper output, int contextLength = 128, double tolerance = Tolerance)
    {
        using var model = Model.Load(path);
        int vocab = model.Config.VocabSize;
        var prompt = Enumerable.Range(0, 20).Select(i => 3 + (i * 53) % (vocab - 3)).ToList();
        var transformer = model.CreateTransformer(contextLength, cache: KvCacheOptions.F32); // as the oracle's cache
        float[] ours = transformer.Evaluate(prompt.ToArray(), 0).ToArray();

        using var oracle = new LlamaCppOracle(path, contextSize: contextLength);
        float[] theirs = oracle.PromptLogits(prompt);
        double std = StandardDeviation(theirs);
        double maxDiff = MaxDiff(ours, theirs);
        output.WriteLine($"{Path.GetFileName(path)}: prompt max |diff| {maxDiff:E3}, logit std {std:F4}, ratio {maxDiff / std:E3}");
        Assert.True(std > 0.05, $"logit std {std} is too small for the comparison to mean anything");
        Assert.True(maxDiff <= tolerance * std, $"max |logit difference| {maxDiff:E3} exceeds {tolerance} x std {std:E3}");

        // Teacher-forced greedy: both engines are fed llama.cpp's choice; ClockLM's argmax must be llama.cpp's at every
        // step, or (a near-tie) score within the tolerance of it in llama.cpp's logits; every step's logits must agree.
        int pos = prompt.Count, agree = 0;
        double worst = maxDiff / std;
        for (int i = 0; i < 32; i++)
        {
            int mine = LlamaCppOracle.ArgMax(ours), best = LlamaCppOracle.ArgMax(theirs);
            if (mine == best) agree++;
            else Assert.True(theirs[best] - theirs[mine] <= tolerance * std, $"step {i}: ClockLM chose {mine}, llama.cpp {best}");
            if (i == 31) break;
            ours = transformer.Forward(best, pos).ToArray();
            theirs = oracle.Evaluate([best], pos);
            pos++;
            double ratio = MaxDiff(ours, theirs) / StandardDeviation(theirs);
            Assert.True(ratio <= tolerance, $"step {i}: max |logit difference| is {ratio:E3} of std");
            worst = Math.Max(worst, ratio);
        }
        output.WriteLine($"{agree}/32 greedy steps agree; worst ratio over all steps {worst:E3}");
        return worst;
    }

    private static double MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max();

    private static double StandardDeviation(float[] values)
    {
        double mean = values.Average(v => (double)v);
        return Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
    }
}
