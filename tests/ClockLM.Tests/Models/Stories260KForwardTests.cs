using ClockLM.Formats;
using ClockLM.Models;

namespace ClockLM.Tests.Models;

/// <summary>The forward pass on the genuine stories260K checkpoint against llama2.c run.c's greedy output.</summary>
public class Stories260KForwardTests
{
    [Fact]
    public void CheckpointHeaderIsRead()
    {
        using var ckpt = Llama2cCheckpoint.Open(SharedData.Stories260K);
        Assert.Equal(new LlamaConfig(64, 172, 5, 8, 4, 512, 512), ckpt.Config);
        Assert.True(ckpt.SharedClassifier);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void GreedyContinuationOfReferencePromptIdsMatchesRunC(int which)
    {
        var reference = ReferenceOutputs.Stories260K[which];
        using var ckpt = Llama2cCheckpoint.Open(SharedData.Stories260K);
        var model = new Transformer(ckpt.Config, ckpt.Weights, ckpt.Config.ContextLength, cache: KvCacheOptions.F32); // run.c keeps floats

        // run.c: feed ids[pos] at pos; while inside the prompt the next id is forced, afterwards it is the argmax.
        int promptLength = PromptLength(reference);
        var produced = new List<int> { reference.Ids[0] };
        int token = reference.Ids[0];
        for (int pos = 0; pos < reference.Steps; pos++)
        {
            var logits = model.Forward(token, pos);
            int next = pos + 1 < promptLength ? reference.Ids[pos + 1] : ArgMax(logits);
            produced.Add(next);
            if (next == 1) break;
            token = next;
        }
        Assert.Equal(reference.Ids, produced);
    }

    /// <summary>Ids (BOS included) that make up the prompt in the reference: BOS and four prompt tokens for both
    /// prompts; the tokenizer tests check that encoding the prompt text gives exactly these ids.</summary>
    private static int PromptLength(ReferenceOutputs.Greedy reference) => 5;

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }
}

/// <summary>A llama2.c checkpoint with a separately stored classifier (negative vocab_size in the header).</summary>
public class Llama2cSeparateClassifierTests
{
    [Fact]
    public void SeparateClassifierCheckpointGivesTheSameLogitsAsTheSharedOne()
    {
        using var dir = new TempDir();
        string path = dir.File("unshared.bin");
        byte[] shared = File.ReadAllBytes(SharedData.Stories260K);
        int vocab = BitConverter.ToInt32(shared, 20), dim = BitConverter.ToInt32(shared, 0);
        // The classifier follows everything else: append a copy of the token embedding (it starts after the header).
        byte[] embedding = shared.AsSpan(28, vocab * dim * 4).ToArray();
        byte[] unshared = [.. shared, .. embedding];
        BitConverter.TryWriteBytes(unshared.AsSpan(20), -vocab);
        File.WriteAllBytes(path, unshared);

        using var a = Llama2cCheckpoint.Open(SharedData.Stories260K);
        using var b = Llama2cCheckpoint.Open(path);
        Assert.False(b.SharedClassifier);
        Assert.False(b.Weights.TiedOutput);
        var ta = new Transformer(a.Config, a.Weights, 16);
        var tb = new Transformer(b.Config, b.Weights, 16);
        for (int pos = 0; pos < 4; pos++)
            Assert.Equal(ta.Forward(100 + pos, pos).ToArray(), tb.Forward(100 + pos, pos).ToArray());

        // Changing the stored classifier changes the output: it really is read from the end of the file.
        unshared[^1] ^= 0x40;
        File.WriteAllBytes(path, unshared);
        using var c = Llama2cCheckpoint.Open(path);
        var tc = new Transformer(c.Config, c.Weights, 16);
        Assert.NotEqual(new Transformer(a.Config, a.Weights, 16).Forward(100, 0).ToArray(), tc.Forward(100, 0).ToArray());
    }

    [Fact]
    public void TruncatedCheckpointNamesTheFileAndTheSizes()
    {
        using var dir = new TempDir();
        string path = dir.File("short.bin");
        File.WriteAllBytes(path, File.ReadAllBytes(SharedData.Stories260K)[..5000]);
        var e = Assert.Throws<ModelFormatException>(() => Llama2cCheckpoint.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }
}
