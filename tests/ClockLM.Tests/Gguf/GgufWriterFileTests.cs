using ClockLM.Gguf;
using ClockLM.Tensors;

namespace ClockLM.Tests.Gguf;

/// <summary>Writing a GGUF file: progress as tensors are written, and nothing half-written left behind by a failure.</summary>
public class GgufWriterFileTests
{
    private sealed class Recorder : IProgress<double>
    {
        public List<double> Reports { get; } = [];
        public void Report(double value) => Reports.Add(value);
    }

    [Fact]
    public void ProgressCountsTensorBytesUpToOne()
    {
        using var dir = new TempDir();
        var writer = new GgufWriter();
        writer.Set("general.architecture", "llama");
        writer.AddTensor("a", [64], new float[64]);        // 256 bytes
        writer.AddTensor("b", [64, 3], new float[192]);    // 768 bytes
        var progress = new Recorder();
        writer.Write(dir.File("m.gguf"), progress);
        Assert.Equal([256.0 / 1024, 1.0], progress.Reports);
        using var file = GgufFile.Open(dir.File("m.gguf"));
        Assert.Equal(2, file.Tensors.Count);
        Assert.False(File.Exists(dir.File("m.gguf.partial")));
    }

    [Fact]
    public void AFailedWriteLeavesNoFileAndKeepsTheOldOne()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("m.gguf"), "the previous file");
        var writer = new GgufWriter();
        writer.AddTensor("bad", GgmlType.F32, [4, 2], (row, values) => throw new InvalidDataException($"row {row} cannot be read"));
        var error = Assert.Throws<InvalidDataException>(() => writer.Write(dir.File("m.gguf")));
        Assert.Equal("row 0 cannot be read", error.Message);
        Assert.Equal("the previous file", File.ReadAllText(dir.File("m.gguf")));
        Assert.False(File.Exists(dir.File("m.gguf.partial")));
    }
}
