using System.Text;
using ClockLM.Tests.Cli;
using ClockLM.Training;

namespace ClockLM.Tests.Training;

/// <summary>train --resume with a damaged checkpoint: every count is bounded by the bytes left in the file, so it
/// ends in one line naming the file, never in an overflow or an allocation the machine cannot make.</summary>
public sealed class CheckpointHardeningTests
{
    private static readonly TrainingOptions Small = new() { Dim = 16, Layers = 1, Heads = 2, KvHeads = 1, HiddenDim = 32, VocabSize = 300, ContextLength = 8 };

    /// <summary>A valid checkpoint and the file offsets of its vocabulary count, tensor count and first tensor's length.</summary>
    private static (byte[] Bytes, long Vocab, long Tensors, long FirstLength) Valid(TempDir dir)
    {
        var c = Small.ModelConfig;
        int weights = c.VocabSize * c.Dim + c.Layers * (2 * c.Dim * c.Dim + 3 * c.Dim * c.HiddenDim);
        var checkpoint = new TrainingCheckpoint
        {
            Options = Small, Tokenizer = TestModels.SmallVocabulary(300), Step = 3, TokensSeen = 100, ElapsedSeconds = 1,
            TrainLoss = 5, ValidationLoss = 5, Weights = [new float[weights]], Moments = [null], OptimizerIterations = 3,
        };
        string path = dir.File("valid.ckpt");
        checkpoint.Save(path);
        Assert.Equal(3, TrainingCheckpoint.Load(path).Step);

        byte[] bytes = File.ReadAllBytes(path);
        using var reader = new BinaryReader(new MemoryStream(bytes), Encoding.UTF8);
        reader.ReadString(); reader.ReadString(); reader.ReadInt32(); reader.ReadInt64();
        reader.ReadDouble(); reader.ReadDouble(); reader.ReadDouble();
        long vocab = reader.BaseStream.Position;
        int n = reader.ReadInt32();
        for (int i = 0; i < n; i++) { reader.ReadString(); reader.ReadSingle(); reader.ReadInt32(); }
        long tensors = reader.BaseStream.Position;
        return (bytes, vocab, tensors, tensors + 4);
    }

    private static string Patched(TempDir dir, byte[] valid, long offset, int value, string name)
    {
        byte[] bytes = (byte[])valid.Clone();
        BitConverter.GetBytes(value).CopyTo(bytes, offset);
        string path = dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData("vocabulary", -1, "claims -1 tokenizer pieces")]
    [InlineData("vocabulary", int.MaxValue, "claims 2147483647 tokenizer pieces")]
    [InlineData("vocabulary", -5, "claims -5 tokenizer pieces")]
    [InlineData("tensors", int.MaxValue, "claims 2147483647 tensors")]
    [InlineData("tensors", -5, "claims -5 tensors")]
    [InlineData("length", int.MaxValue, "ends early")]
    [InlineData("length", -5, "ends early")]
    public void DamagedCountsAreAFormatErrorNamingTheCount(string field, int value, string expected)
    {
        using var dir = new TempDir();
        var (bytes, vocab, tensors, first) = Valid(dir);
        long offset = field switch { "vocabulary" => vocab, "tensors" => tensors, _ => first };
        string path = Patched(dir, bytes, offset, value, "damaged.ckpt");
        var e = Assert.Throws<CheckpointFormatException>(() => TrainingCheckpoint.Load(path));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void OptionsThatDescribeAModelLargerThanTheFileAreRefused()
    {
        using var dir = new TempDir();
        string path = dir.File("huge.ckpt");
        new TrainingCheckpoint
        {
            Options = Small with { Dim = 1024, Heads = 16, KvHeads = 8, HiddenDim = 4096, Layers = 32 },
            Tokenizer = TestModels.SmallVocabulary(300), Step = 3, TokensSeen = 100, ElapsedSeconds = 1,
            TrainLoss = 5, ValidationLoss = 5, Weights = [new float[10]], Moments = [null], OptimizerIterations = 3,
        }.Save(path);
        var e = Assert.Throws<CheckpointFormatException>(() => TrainingCheckpoint.Load(path));
        Assert.Contains($"the options describe a model of at least {300 * 1024 + 32 * (2 * 1024 * 1024 + 3 * 1024 * 4096)} weights, more than the", e.Message);
    }

    [Fact]
    public void TrainResumeWithADamagedCheckpointPrintsOneLine()
    {
        using var dir = new TempDir();
        var (bytes, vocab, _, _) = Valid(dir);
        Patched(dir, bytes, vocab, int.MaxValue, "model.gguf.ckpt");
        string corpus = dir.File("corpus.txt");
        File.WriteAllText(corpus, string.Join("\n", Enumerable.Repeat("In the beginning God created the heaven and the earth.", 50)));
        var result = ClockLMProcess.Run("train", "--data", corpus, "--out", dir.File("model.gguf"), "--resume");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("model.gguf.ckpt: the checkpoint claims 2147483647 tokenizer pieces", result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr);
    }
}
