using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Training;

namespace ClockLM.Tests.Cli;

/// <summary>Nothing half-written on disk: GGUF files and checkpoints are written to a temporary file, flushed and
/// renamed, and no command writes over one of its own inputs.</summary>
public sealed class AtomicWriteTests
{
    [Fact]
    public void AFailedGgufWriteLeavesTheExistingFileWholeAndNoTemporaryFile()
    {
        using var dir = new TempDir();
        string path = dir.File("model.gguf");
        TestModels.WriteSmallLlama(path);
        byte[] before = File.ReadAllBytes(path);

        // Disk full half-way: the data of the second tensor cannot be written.
        var writer = new GgufWriter().Set("general.architecture", "llama")
            .AddTensor("a", GgmlType.F32, [4], new byte[16])
            .AddTensor("b", GgmlType.F32, [1 << 20], stream =>
            {
                stream.Write(new byte[1000]);
                throw new IOException("No space left on device");
            });
        var e = Assert.Throws<IOException>(() => writer.Write(path));
        Assert.Equal("No space left on device", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
        using var model = Model.Load(path); // still loads
    }

    [Fact]
    public void ACheckpointThatFailsToSaveLeavesTheLastOne()
    {
        using var dir = new TempDir();
        string path = dir.File("run.ckpt");
        File.WriteAllText(path, "the previous checkpoint");
        var broken = new TrainingCheckpoint
        {
            Options = new TrainingOptions(), Step = 1, TokensSeen = 1, ElapsedSeconds = 0, TrainLoss = 0, ValidationLoss = 0,
            Tokenizer = null!, // fails while writing the vocabulary
            Weights = [], Moments = [], OptimizerIterations = 0,
        };
        Assert.Throws<NullReferenceException>(() => broken.Save(path));
        Assert.Equal("the previous checkpoint", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void CommandsRefuseToWriteOverTheirInputs()
    {
        using var dir = new TempDir();
        string tok = dir.File("tok512.bin"), bin = dir.File("model.bin"), gguf = dir.File("m.gguf");
        File.Copy(SharedData.Tok512, tok);
        File.Copy(SharedData.Stories260K, bin);
        byte[] tokenizer = File.ReadAllBytes(tok);

        var convert = ClockLMProcess.Run("convert", bin, "--tokenizer", tok, tok);
        Assert.Equal(1, convert.ExitCode);
        Assert.Contains($"the output {tok} is the tokenizer ({tok}); write to another file", convert.StdErr);
        Assert.Equal(tokenizer, File.ReadAllBytes(tok));

        var besides = ClockLMProcess.Run("convert", bin, tok);
        Assert.Equal(1, besides.ExitCode);
        Assert.Contains("is the tokenizer beside the checkpoint", besides.StdErr);
        Assert.Equal(tokenizer, File.ReadAllBytes(tok));

        TestModels.WriteSmallLlama(gguf);

        string link = dir.File("link.gguf");
        File.CreateSymbolicLink(link, gguf);
        var quantize = ClockLMProcess.Run("quantize", gguf, link, "Q8_0");
        Assert.Equal(1, quantize.ExitCode);
        Assert.Contains("is the input", quantize.StdErr);

        string corpus = dir.File("corpus.txt");
        File.WriteAllText(corpus, "In the beginning.\n");
        var train = ClockLMProcess.Run("train", "--data", corpus, "--out", corpus);
        Assert.Equal(1, train.ExitCode);
        Assert.Contains("is the training text", train.StdErr);
        Assert.Equal("In the beginning.\n", File.ReadAllText(corpus));
    }
}
