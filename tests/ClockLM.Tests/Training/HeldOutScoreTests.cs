using System.Text;
using ClockLM.Models;
using ClockLM.Tests.Cli;
using ClockLM.Training;

namespace ClockLM.Tests.Training;

/// <summary>Bits per byte of a held-out text: the inference engine's count against the training graph's, token and
/// byte counts against the text, and the command.</summary>
public class HeldOutScoreTests
{
    [Fact]
    public void NatsEqualTheTrainingGraphsLossOverTheSameWindows()
    {
        var result = LlamaTrainer.Train(TinyCorpus.Text(), LlamaTrainingTests.Tiny with { Steps = 8 });
        using var dir = new TempDir();
        string path = dir.File("tiny.gguf");
        result.Model.ExportGguf(path, "tiny", result.Tokenizer);
        // A blank line is skipped, CRLF is a newline, and é is two UTF-8 bytes.
        string text = "and the king went up to the city, and it was good.\r\n\r\nthe prophet looked upon the river é\n";
        using var model = Model.Load(path);
        var score = HeldOutScore.Measure(model, text, context: 16);

        string[] lines = ["and the king went up to the city, and it was good.", "the prophet looked upon the river é"];
        var stream = TrainingCorpus.EncodeLines(lines, result.Tokenizer).SelectMany(ids => ids).ToArray();
        Assert.Equal(stream.Length, score.Tokens);
        Assert.Equal(lines.Sum(l => Encoding.UTF8.GetByteCount(l) + 1), score.Bytes);
        Assert.Equal(16, score.Context);

        // The same windows through the training graph: BOS then 15 tokens each, every token predicted once.
        double nats = 0;
        int vocab = result.Model.Config.VocabSize;
        for (int start = 0; start < stream.Length; start += 15)
        {
            int count = Math.Min(15, stream.Length - start);
            int[] inputs = [BpeTrainer.BosId, .. stream.AsSpan(start, count - 1)];
            var logits = result.Model.Forward(inputs, 1, count).Data;
            for (int t = 0; t < count; t++)
            {
                var row = logits.AsSpan(t * vocab, vocab);
                double max = double.NegativeInfinity, sum = 0;
                foreach (float l in row) max = Math.Max(max, l);
                foreach (float l in row) sum += Math.Exp(l - max);
                nats += max + Math.Log(sum) - row[stream[start + t]];
            }
        }
        Assert.True(Math.Abs(score.Nats - nats) < 1e-4 * nats, $"inference engine {score.Nats} nats, training graph {nats}");
        Assert.Equal(score.Nats / score.Bytes / Math.Log(2), score.BitsPerByte, 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => HeldOutScore.Measure(model, text, context: 33));
    }

    [Fact]
    public void ScoreCommandScoresATextWithTheBuiltInModel()
    {
        using var dir = new TempDir();
        string text = dir.File("held-out.txt");
        File.WriteAllText(text, "And it came to pass, when the men were gone out of the city, that they went up.\n");
        var result = ClockLMProcess.Run("score", "--data", text, "--context", "16");
        Assert.True(result.ExitCode == 0, result.StdErr);
        Assert.Contains("windows of 16 tokens", result.StdOut);
        Assert.Matches(@"\d+\.\d{4} bits/byte", result.StdOut);

        var missing = ClockLMProcess.Run("score", "--data", dir.File("none.txt"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("none.txt: no such text", missing.StdErr);
        var window = ClockLMProcess.Run("score", "--data", text, "--context", "1");
        Assert.Equal(1, window.ExitCode);
        Assert.Contains("--context is 1", window.StdErr);
    }
}
