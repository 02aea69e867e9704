using ClockLM.Models;
using ClockLM.Tests.Families;
using ClockLM.Tensors;
using Xunit.Abstractions;

namespace ClockLM.Tests.Oracle;

/// <summary>
/// Control vectors against llama.cpp: the same files, read by llama.cpp's GGUF reader under its loader's rules
/// (<see cref="LlamaCppControlVector"/>) and applied with <c>llama_set_adapter_cvec</c>, give the logits ClockLM gives,
/// within the family oracles' tolerances, on F32 random-weight models of two families.
/// </summary>
[Collection("llama.cpp")]
public class ControlVectorOracleTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("llama", 1, 2)]   // 3 layers: every layer a vector can steer
    [InlineData("llama", 2, 2)]   // a layer range: layer 1's direction is left out
    [InlineData("gemma2", 1, 3)]  // post-norms and soft-caps around the residual add
    public void SteeredLogitsEqualLlamaCpps(string arch, int firstLayer, int lastLayer)
    {
        using var dir = new TempDir();
        string path = dir.File($"{arch}.gguf");
        FamilyModels.WriteArchitecture(path, arch, 128);
        using var model = Model.Load(path);
        var c = model.Config;
        // Two files, summed at two scales: one steers every layer from 1, the other the last layer only.
        string a = dir.File("a.gguf"), b = dir.File("b.gguf");
        RandomVector(c, Enumerable.Range(1, c.Layers - 1), seed: 1, arch).Save(a);
        RandomVector(c, [c.Layers - 1], seed: 2, arch).Save(b);
        (string, float)[] files = [(a, 1.5f), (b, -0.75f)];

        var steering = ResidualSteering.Create(c, files.Select(f => new SteeringTerm(ControlVector.Load(f.Item1).Directions, f.Item2, firstLayer, lastLayer)));
        Assert.Equal(Enumerable.Range(firstLayer, lastLayer - firstLayer + 1), steering.SteeredLayers);
        int vocab = c.VocabSize;
        var prompt = Enumerable.Range(0, 20).Select(i => 3 + (i * 53) % (vocab - 3)).ToArray();
        var plain = model.CreateTransformer(128, cache: KvCacheOptions.F32); // as the oracle's cache
        var steered = model.CreateTransformer(128, cache: KvCacheOptions.F32);
        steered.Steering = steering;

        using var oracle = new LlamaCppOracle(path, contextSize: 128);
        var loaded = LlamaCppControlVector.Load(files);
        Assert.Equal(c.Dim, loaded.NEmbd);
        oracle.SetControlVector(loaded.Data, loaded.NEmbd, firstLayer, lastLayer);

        float[] ours = steered.Evaluate(prompt, 0).ToArray(), theirs = oracle.PromptLogits(prompt);
        float[] unsteered = plain.Evaluate(prompt, 0).ToArray();
        double std = StandardDeviation(theirs);
        double effect = MaxDiff(unsteered, theirs) / std, worst = MaxDiff(ours, theirs) / std;
        Assert.True(effect > 0.1, $"the vectors move llama.cpp's logits by only {effect:E2} of std; the comparison would not test them");
        // Then teacher-forced steps, one token at a time, both engines fed llama.cpp's greedy choice.
        int pos = prompt.Length;
        for (int step = 0; step < 8; step++, pos++)
        {
            int next = LlamaCppOracle.ArgMax(theirs);
            ours = steered.Forward(next, pos).ToArray();
            theirs = oracle.Evaluate([next], pos);
            worst = Math.Max(worst, MaxDiff(ours, theirs) / StandardDeviation(theirs));
        }
        output.WriteLine($"{arch} layers {firstLayer}-{lastLayer}: steering moves the logits by {effect:E2} x std; worst |ClockLM - llama.cpp| {worst:E2} x std");
        // The families' own oracle tolerances: llama.cpp's GELU goes through an F16 table (see GemmaFamilyTests), and
        // steering's larger activations show it as much as it shows without steering (measured 1.2e-3 in gemma2, 1.7e-3
        // in gpt2; 8.6e-7 in llama).
        double tolerance = arch == "llama" ? FamilyOracle.Tolerance : 5e-3;
        Assert.True(worst <= tolerance, $"max |logit difference| is {worst:E3} of std, above {tolerance}");
    }

    [Fact]
    public void AFileClockLMWritesLoadsThroughLlamaCppsReaderWithItsMetadata()
    {
        using var dir = new TempDir();
        string path = dir.File("llama.gguf");
        FamilyModels.WriteArchitecture(path, "llama", 64);
        using var model = Model.Load(path);
        var vector = RandomVector(model.Config, [1, 2], seed: 3, "llama");
        vector.Save(dir.File("v.gguf"));
        using var oracle = new LlamaCppOracle(path, contextSize: 64); // loads the native library
        var loaded = LlamaCppControlVector.Load((dir.File("v.gguf"), 1f));
        Assert.Equal(("llama", 2, model.Config.Dim), (loaded.ModelHint, loaded.LayerCount, loaded.NEmbd));
        Assert.Equal(vector.Directions[1].Concat(vector.Directions[2]), loaded.Data);
    }

    [Fact]
    public void AVectorMadeByClocklmCvectorSteersLlamaCppAsItSteersClocklmRun()
    {
        // The built-in model (llama, dim 256) and a "blessed vs cursed" vector, as in docs/steering.md. Its matrices are
        // F16, which llama.cpp multiplies after rounding the activations to F16: an F32 copy keeps the comparison at
        // float rounding.
        using var dir = new TempDir();
        string model = dir.File("kjv-f32.gguf"), vector = dir.File("kjv.gguf");
        ModelQuantizer.Quantize(Path.Combine(SharedData.RepoRoot, "models", "clocklm-kjv.gguf"), model, QuantizationScheme.Parse("F32"));
        File.WriteAllLines(dir.File("pos.txt"), ["And God saw that it was good, and he blessed them.", "The people rejoiced with great joy."]);
        File.WriteAllLines(dir.File("neg.txt"), ["And God saw that it was evil, and he cursed them.", "The people mourned with great sorrow."]);
        var made = Cli.ClockLMProcess.Run("cvector", "-m", model, "--positive", dir.File("pos.txt"), "--negative", dir.File("neg.txt"),
            "--out", vector, "--method", "pca", "--layers", "2-4");
        Assert.True(made.ExitCode == 0, made.StdErr);
        Assert.Contains("3 directions (layers 2-4, 256 values each, pca of 2 prompt pairs)", made.StdOut);
        var run = Cli.ClockLMProcess.Run("run", "-m", model, "--temp", "0", "-n", "12", "--json", "--control-vector-scaled", vector, "-3",
            "--control-vector-scaled", vector, "-1", "And the people");
        Assert.True(run.ExitCode == 0, run.StdErr);
        using var json = System.Text.Json.JsonDocument.Parse(run.StdOut);
        int[] promptIds = json.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] generated = json.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

        using var m = Model.Load(model);
        var steered = m.CreateTransformer(64, cache: KvCacheOptions.F32); // as the oracle's cache
        steered.Steering = ResidualSteering.Create(m.Config, [new SteeringTerm(ControlVector.Load(vector).Directions, -4f)]);
        float[] ours = steered.Evaluate(promptIds, 0).ToArray();
        using var oracle = new LlamaCppOracle(model, contextSize: 64);
        var loaded = LlamaCppControlVector.Load((vector, -3f), (vector, -1f));
        oracle.SetControlVector(loaded.Data, loaded.NEmbd, 1, m.Config.Layers - 1);
        float[] theirs = oracle.PromptLogits(promptIds);
        double ratio = MaxDiff(ours, theirs) / StandardDeviation(theirs);
        Assert.True(ratio <= FamilyOracle.Tolerance, $"prompt logits differ by {ratio:E3} of std");
        Assert.Equal(oracle.Greedy(promptIds, generated.Length), generated);
        output.WriteLine($"prompt logits agree to {ratio:E2} x std; {generated.Length} greedy tokens equal: {m.Tokenizer.Decode(generated)}");
    }

    /// <summary>Directions N(0, 0.3) for the given layers: strong enough to move the logits of these models.</summary>
    public static ControlVector RandomVector(LlamaConfig c, IEnumerable<int> layers, ulong seed, string hint)
    {
        var directions = new Dictionary<int, float[]>();
        foreach (int layer in layers)
        {
            var rng = new GaussianRandom(seed * 1000 + (ulong)layer);
            directions[layer] = Enumerable.Range(0, c.Dim).Select(_ => 0.3f * rng.Next()).ToArray();
        }
        return new ControlVector(directions, hint);
    }

    private static double MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => (double)Math.Abs(x - y)).Max();

    private static double StandardDeviation(float[] values)
    {
        double mean = values.Average(v => (double)v);
        return Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
    }
}
