using System.Buffers.Binary;
using System.Text;
using ClockLM.Clock;
using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tests.Oracle;

namespace ClockLM.Tests.Steering;

/// <summary>Control-vector files and residual steering on stories260K (5 layers, dim 64).</summary>
public class ControlVectorTests
{
    private static readonly int[] Prompt = ReferenceOutputs.Stories260K[0].Ids[..6];

    [Fact]
    public void SaveWritesLlamaCppsLayoutAndLoadReadsItBack()
    {
        using var dir = new TempDir();
        var vector = new ControlVector(new Dictionary<int, float[]> { [3] = [1, 2, 3], [1] = [-1, 0.5f, 4] }, "llama");
        string path = dir.File("v.gguf");
        vector.Save(path);
        using (var file = GgufFile.Open(path))
        {
            Assert.Equal("controlvector", file.GetString("general.architecture"));
            Assert.Equal("llama", file.GetString("controlvector.model_hint"));
            Assert.Equal(GgufValueType.Int32, file.Metadata["controlvector.layer_count"].Type);
            Assert.Equal(2, file.GetInteger("controlvector.layer_count"));
            Assert.Equal(["direction.1", "direction.3"], file.Tensors.Select(t => t.Name));
            Assert.All(file.Tensors, t => Assert.Equal((GgmlType.F32, 3L, 1), (t.Type, t.Dimensions[0], t.Dimensions.Length)));
        }
        var back = ControlVector.Load(path);
        Assert.Equal(("llama", 3, 3), (back.ModelHint, back.Dim, back.LastLayer));
        Assert.Equal(new float[] { -1, 0.5f, 4 }, back.Directions[1]);
        Assert.Equal(new float[] { 1, 2, 3 }, back.Directions[3]);
        Assert.False(File.Exists(path + ".partial"));
    }

    [Theory]
    [InlineData("direction.0", "F32", 4, "layer 0 is never steered")]
    [InlineData("dir.2", "F32", 4, "'dir.2' is not a control-vector direction")]
    [InlineData("direction.x", "F32", 4, "'direction.x' is not a control-vector direction")]
    [InlineData("direction.2", "F16", 4, "'direction.2' is F16 of shape [4]; a direction is one-dimensional F32")]
    [InlineData("direction.2", "F32", 5, "'direction.2' has 5 values but the directions before it have 4")]
    public void LoadRefusesWhatLlamaCppsLoaderRefuses(string name, string type, int length, string message)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.gguf");
        var writer = new GgufWriter().Set("general.architecture", "controlvector");
        writer.AddTensor("direction.1", [4], new float[4]);
        if (type == "F32") writer.AddTensor(name, [length], new float[length]);
        else writer.AddTensor(name, GgmlType.F16, [length], new byte[2 * length]);
        writer.Write(path);
        var e = Assert.Throws<GgufFormatException>(() => ControlVector.Load(path));
        Assert.Contains(message, e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void ScaleZeroIsBitIdenticalToNoVectorAloneAndBatched()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        var vector = ControlVectorOracleTests.RandomVector(c, [1, 2, 3, 4], seed: 5, "llama");
        var zero = ResidualSteering.Create(c, [new SteeringTerm(vector.Directions, 0f)]);
        Assert.Empty(zero.SteeredLayers);

        var (plain, plainNext) = RunAndStep(model, null);
        var (scaled0, scaled0Next) = RunAndStep(model, zero);
        Assert.Equal(plain, scaled0);
        Assert.Equal(plainNext, scaled0Next);
        var (steered, _) = RunAndStep(model, ResidualSteering.Create(c, [new SteeringTerm(vector.Directions, 2f)]));
        Assert.NotEqual(plain, steered);
    }

    [Fact]
    public void TheDirectionIsAddedAfterItsLayersResidualAddBeforeHookResidPost()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        var direction = Enumerable.Range(0, c.Dim).Select(i => (i % 7 - 3) * 0.25f).ToArray();
        var steering = ResidualSteering.Create(c, [new SteeringTerm(new Dictionary<int, float[]> { [2] = direction }, 3f)]);
        var plain = ActivationCapture.Run(model.CreateTransformer(16), Prompt);
        var t = model.CreateTransformer(16);
        t.Steering = steering;
        var steered = ActivationCapture.Run(t, Prompt);
        int last = Prompt.Length - 1;
        Assert.Equal(plain.Get(ActivationPoint.ResidPost, 1, last), steered.Get(ActivationPoint.ResidPost, 1, last));
        Assert.Equal(plain.Get(ActivationPoint.ResidPost, 0, 0), steered.Get(ActivationPoint.ResidPost, 0, 0));
        // Layer 2: its residual add is unchanged (same resid_mid and mlp_out at position 0), then 3 x direction is added.
        Assert.Equal(plain.Get(ActivationPoint.MlpOut, 2, 0), steered.Get(ActivationPoint.MlpOut, 2, 0));
        float[] expected = plain.Get(ActivationPoint.ResidPost, 2, 0).Zip(direction, (x, d) => x + d * 3f).ToArray();
        Assert.Equal(expected, steered.Get(ActivationPoint.ResidPost, 2, 0));
        Assert.Equal(steered.Get(ActivationPoint.ResidPost, 2, 0), steered.Get(ActivationPoint.ResidPre, 3, 0));
        Assert.NotEqual(plain.Logits, steered.Logits);
    }

    [Fact]
    public void SequencesSteeredDifferentlyInOneBatchedStepEachEqualTheirRunAlone()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        var up = ResidualSteering.Create(c, [new SteeringTerm(ControlVectorOracleTests.RandomVector(c, [1, 3], 7, "llama").Directions, 2f)]);
        var down = ResidualSteering.Create(c, [new SteeringTerm(ControlVectorOracleTests.RandomVector(c, [2, 4], 8, "llama").Directions, -3f)]);
        ResidualSteering?[] steerings = [up, null, down];
        var alone = steerings.Select(s => RunAndStep(model, s).Next).ToArray();

        var decoder = new BatchDecoder(c, model.Weights);
        var sequences = steerings.Select(s =>
        {
            var t = decoder.CreateSequence(16);
            t.Steering = s;
            t.Evaluate(Prompt, 0);
            return t;
        }).ToArray();
        decoder.Step(sequences, [3, 3, 3], [Prompt.Length, Prompt.Length, Prompt.Length]);
        for (int i = 0; i < sequences.Length; i++) Assert.Equal(alone[i], sequences[i].Logits.ToArray());
        Assert.NotEqual(alone[0], alone[1]);
        Assert.NotEqual(alone[2], alone[1]);
    }

    [Fact]
    public void SteeringMustFitTheModel()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        var t = model.CreateTransformer(16);
        var other = ResidualSteering.Create(c with { Layers = 6 }, []);
        Assert.Throws<ArgumentException>(() => t.Steering = other);
        var e = Assert.Throws<ArgumentException>(() => ResidualSteering.Create(c, [new SteeringTerm(new Dictionary<int, float[]> { [5] = new float[c.Dim] }, 1f)]));
        Assert.Contains("layer 5", e.Message);
        e = Assert.Throws<ArgumentException>(() => ResidualSteering.Create(c, [new SteeringTerm(new Dictionary<int, float[]> { [1] = new float[3] }, 1f)]));
        Assert.Contains("3 values", e.Message);
        Assert.Throws<ArgumentException>(() => ResidualSteering.Create(c, [new SteeringTerm(new Dictionary<int, float[]> { [1] = new float[c.Dim] }, float.NaN)]));
    }

    /// <summary>The prompt's logits, then the logits of one more token (3) at the next position, with <paramref name="steering"/>.</summary>
    private static (float[] Prompt, float[] Next) RunAndStep(Model model, ResidualSteering? steering)
    {
        var t = model.CreateTransformer(16);
        t.Steering = steering;
        float[] prompt = t.Evaluate(Prompt, 0).ToArray();
        return (prompt, t.Forward(3, Prompt.Length).ToArray());
    }
}
