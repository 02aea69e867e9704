using System.Buffers.Binary;
using System.Text.Json;
using ClockLM.Nn;

namespace ClockLM.Tests.Nn;

/// <summary>Saving and loading model weights as safetensors.</summary>
public class SafetensorsWeightsTests
{
    [Fact]
    public void SaveThenLoadReproducesPredictions()
    {
        using var dir = new TempDir();
        var trained = Model(seed: 1);
        trained.SaveWeights(dir.File("w.safetensors"));
        var fresh = Model(seed: 2);
        var x = new float[,] { { 0.1f, -0.4f, 2f }, { 1f, 0.5f, -1f } };
        Assert.NotEqual(trained.Predict(x)[0, 0], fresh.Predict(x)[0, 0]);
        fresh.LoadWeights(dir.File("w.safetensors"));
        Assert.Equal(trained.Predict(x), fresh.Predict(x));
    }

    [Fact]
    public void FileFollowsTheSafetensorsLayout()
    {
        // Parse the file independently: u64 header length, JSON header, little-endian float32 data.
        using var dir = new TempDir();
        var model = Model(seed: 3);
        string path = dir.File("w.safetensors");
        model.SaveWeights(path);
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, headerLength % 8);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        var kernel = header.RootElement.GetProperty("dense_1.kernel");
        Assert.Equal("F32", kernel.GetProperty("dtype").GetString());
        Assert.Equal([4, 2], kernel.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        long begin = kernel.GetProperty("data_offsets")[0].GetInt64();
        long end = kernel.GetProperty("data_offsets")[1].GetInt64();
        Assert.Equal(4 * 2 * 4, end - begin);
        var expected = ((Dense<float>)model.Layers[1]).Kernel.Data;
        for (int i = 0; i < 8; i++)
            Assert.Equal(expected[i], BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(8 + (int)headerLength + (int)begin + 4 * i)));
        Assert.Equal(8 + headerLength + 4 * (3 * 4 + 4 + 4 * 2 + 2), bytes.Length);
    }

    [Fact]
    public void LoadingIntoADifferentLayoutNamesTheTensor()
    {
        using var dir = new TempDir();
        Model(seed: 1).SaveWeights(dir.File("w.safetensors"));
        var wider = new Sequential<float>(3, seed: 0) { new Dense<float>(5), new Dense<float>(2) };
        var e = Assert.Throws<InvalidDataException>(() => wider.LoadWeights(dir.File("w.safetensors")));
        Assert.Contains("dense.kernel", e.Message);
        Assert.Contains("[3, 4]", e.Message);
        Assert.Contains("[3, 5]", e.Message);

        var asDouble = new Sequential<double>(3, seed: 0) { new Dense<double>(4), new Dense<double>(2) };
        var dtype = Assert.Throws<InvalidDataException>(() => asDouble.LoadWeights(dir.File("w.safetensors")));
        Assert.Contains("F32", dtype.Message);

        File.WriteAllBytes(dir.File("bad.safetensors"), [255, 255, 0, 0, 0, 0, 0, 0, 1]);
        var bad = Assert.Throws<InvalidDataException>(() => Model(1).LoadWeights(dir.File("bad.safetensors")));
        Assert.Contains("bad.safetensors", bad.Message);
    }

    private static Sequential<float> Model(int seed) =>
        new(inputSize: 3, seed: seed) { new Dense<float>(4, Activation.Relu), new Dense<float>(2, Activation.Softmax) };
}
