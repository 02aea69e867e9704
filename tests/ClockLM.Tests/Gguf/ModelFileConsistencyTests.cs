using System.Text;
using ClockLM.Formats;
using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Gguf;

/// <summary>Model files that say one thing and hold another are rejected with the field named: layers beyond
/// block_count, llama2.c files longer than their header, tensors whose data overlap.</summary>
public sealed class ModelFileConsistencyTests
{
    [Fact]
    public void LayersBeyondBlockCountAreRejected()
    {
        using var dir = new TempDir();
        string good = dir.File("good.gguf"), bad = dir.File("extra-layer.gguf");
        TestModels.WriteSmallLlama(good); // 2 layers
        TestModels.CopyGguf(good, bad, metadata: w => w.Set("llama.block_count", 1u));
        var e = Assert.Throws<GgufFormatException>(() => Model.Load(bad));
        Assert.Contains("tensor 'blk.1.", e.Message);
        Assert.Contains("belongs to layer 1, but llama.block_count is 1 (layers 0 to 0)", e.Message);
        var run = ClockLMProcess.Run("run", "-m", bad, "-n", "1", "hi");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("llama.block_count is 1", run.StdErr);
    }

    [Fact]
    public void Llama2cFileLongerThanItsHeaderIsRejected()
    {
        using var dir = new TempDir();
        string path = dir.File("stories260K.bin");
        byte[] bytes = File.ReadAllBytes(SharedData.Stories260K);
        File.WriteAllBytes(path, [.. bytes, 0, 0, 0, 0]);
        var e = Assert.Throws<ModelFormatException>(() => Llama2cCheckpoint.Open(path));
        Assert.Contains($"file is {bytes.Length + 4} bytes but its header (dim 64, layers 5, vocab 512, shared classifier) describes {bytes.Length}: 4 bytes are not accounted for", e.Message);
        using var exact = Llama2cCheckpoint.Open(SharedData.Stories260K);
    }

    [Fact]
    public void OverlappingTensorDataIsRejected()
    {
        using var dir = new TempDir();
        string path = dir.File("overlap.gguf");
        new GgufWriter().Set("general.architecture", "llama")
            .AddTensor("tensor_a", GgmlType.F32, [16], new byte[64])
            .AddTensor("tensor_b", GgmlType.F32, [16], new byte[64])
            .Write(path);
        using (var file = GgufFile.Open(path))
            Assert.Equal([0L, 64L], file.Tensors.Select(t => t.Offset));
        // tensor_b's info: name, n_dims (4 bytes), one dimension (8), type (4), then its offset (8): point it at 32.
        byte[] bytes = File.ReadAllBytes(path);
        int name = bytes.AsSpan().IndexOf("tensor_b"u8) + "tensor_b".Length;
        BitConverter.GetBytes(32UL).CopyTo(bytes, name + 4 + 8 + 4);
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
        Assert.Contains("tensor 'tensor_b' data starts at offset 32, inside tensor 'tensor_a' [0, 64): tensor data may not overlap", e.Message);
    }
}
