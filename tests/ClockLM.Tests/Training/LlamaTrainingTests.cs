using ClockLM.Models;
using ClockLM.Training;

namespace ClockLM.Tests.Training;

public class LlamaTrainingTests
{
    /// <summary>A tiny shape that learns <see cref="TinyCorpus"/> in a few dozen steps.</summary>
    public static readonly TrainingOptions Tiny = new()
    {
        Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HiddenDim = 64, VocabSize = 320, ContextLength = 32,
        Batch = 8, Steps = 40, LearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 5, Seed = 3,
        CheckpointEvery = 0, EvalEvery = 20, EvalBatches = 2,
    };

    [Fact]
    public void LossFallsWellBelowItsStart()
    {
        var result = LlamaTrainer.Train(TinyCorpus.Text(), Tiny);
        // At the start the model is close to uniform: loss ≈ ln(vocab).
        Assert.InRange(result.InitialLoss, Math.Log(Tiny.VocabSize) - 0.3, Math.Log(Tiny.VocabSize) + 0.3);
        Assert.Equal(40, result.Step);
        Assert.Equal(40L * 8 * 32, result.TokensSeen);
        Assert.True(result.TrainLoss < 0.4 * result.InitialLoss, $"train loss {result.TrainLoss} from {result.InitialLoss}");
        Assert.True(result.ValidationLoss < 0.4 * result.InitialLoss, $"validation loss {result.ValidationLoss} from {result.InitialLoss}");
    }

    [Fact]
    public void TrainingGraphLogitsEqualInferenceEngineLogits()
    {
        // Train a little so that the weights are not the initial ones, export, and run the GGUF in the inference engine.
        var result = LlamaTrainer.Train(TinyCorpus.Text(), Tiny with { Steps = 8 });
        using var dir = new TempDir();
        string path = dir.File("tiny.gguf");
        result.Model.ExportGguf(path, "tiny", result.Tokenizer);

        var ids = result.Tokenizer.Encode("and the king went up to the mountain, and it was good.");
        Assert.Equal(1, ids[0]);
        var logits = result.Model.Forward(ids.ToArray(), 1, ids.Count);
        using var model = Model.Load(path);
        Assert.Equal(result.Model.Config, model.Config);
        var transformer = model.CreateTransformer(cache: KvCacheOptions.F32); // the training forward pass keeps floats
        int vocab = Tiny.VocabSize;
        double worst = 0;
        for (int t = 0; t < ids.Count; t++)
        {
            var expected = transformer.Forward(ids[t], t);
            for (int v = 0; v < vocab; v++)
                worst = Math.Max(worst, Math.Abs(expected[v] - logits.Data[t * vocab + v]));
        }
        Assert.True(worst < 1e-4, $"largest logit difference {worst}");
    }

    [Fact]
    public void ResumeAfterAStopContinuesBitForBitFromTheCheckpoint()
    {
        using var dir = new TempDir();
        var options = Tiny with { Steps = 12, CheckpointEvery = 4, EvalEvery = 0 };
        var uninterrupted = LlamaTrainer.Train(TinyCorpus.Text(), options);

        // Stop after step 6, as a kill would: the last checkpoint is step 4, so two steps are lost and redone.
        string checkpoint = dir.File("run.ckpt");
        using var stop = new CancellationTokenSource();
        var stopped = LlamaTrainer.Train(TinyCorpus.Text(), options, checkpoint, resume: false,
            progress: p => { if (p.Step == 6) stop.Cancel(); }, cancellation: stop.Token);
        Assert.Equal(6, stopped.Step);
        Assert.Equal(4, TrainingCheckpoint.Load(checkpoint).Step);

        var steps = new List<int>();
        // Other options passed on resume are ignored: the checkpoint's settings continue.
        var resumed = LlamaTrainer.Train(TinyCorpus.Text(), options with { LearningRate = 1 }, checkpoint, resume: true,
            progress: p => steps.Add(p.Step));
        Assert.Equal(4, resumed.ResumedFromStep);
        Assert.Equal([5, 6, 7, 8, 9, 10, 11, 12], steps);
        Assert.Equal(uninterrupted.TokensSeen, resumed.TokensSeen);
        var expected = uninterrupted.Model.Parameters();
        var actual = resumed.Model.Parameters();
        for (int i = 0; i < expected.Count; i++)
            Assert.Equal(expected[i].Data, actual[i].Data);
        Assert.Equal(uninterrupted.TrainLoss, resumed.TrainLoss);
        Assert.Equal(12, TrainingCheckpoint.Load(checkpoint).Step);
    }

    [Fact]
    public void OneAndTwoThreadsExportTheSameBytes()
    {
        // The steps' sums do not depend on how the rows are shared out, so neither do the weights.
        using var dir = new TempDir();
        var files = new List<byte[]>();
        foreach (int threads in new[] { 1, 2 })
        {
            var result = LlamaTrainer.Train(TinyCorpus.Text(), Tiny with { Steps = 6, Threads = threads });
            string path = dir.File($"tiny-{threads}.gguf");
            result.Model.ExportGguf(path, "tiny", result.Tokenizer);
            files.Add(File.ReadAllBytes(path));
        }
        Assert.Equal(files[0], files[1]);
    }

    [Fact]
    public void AValidationTextReplacesTheHeldOutLines()
    {
        // Every line trains; the validation loss is measured on the separate text.
        string text = TinyCorpus.Text();
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var result = LlamaTrainer.Train(text, Tiny with { Steps = 2, EvalEvery = 0 }, validationText: string.Join('\n', lines.Take(3)));
        var all = TrainingCorpus.EncodeLines(lines, result.Tokenizer).Sum(ids => ids.Count);
        var held = TrainingCorpus.EncodeLines(lines.Take(3).ToList(), result.Tokenizer).Sum(ids => ids.Count);
        Assert.Equal(all, result.Corpus.Train.Length);
        Assert.Equal(held, result.Corpus.Validation.Length);
        Assert.True(double.IsFinite(result.ValidationLoss));
    }

    [Fact]
    public void ADamagedCheckpointIsATypedError()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.ckpt");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.ThrowsAny<IOException>(() => TrainingCheckpoint.Load(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ParameterCountMatchesTheShape()
    {
        var model = new LlamaTrainingModel(new LlamaConfig(32, 64, 2, 4, 2, 300, 16), seed: 1);
        // embedding (tied head) + per layer: q, o (32×32), k, v (16×32), three FFN matrices (64×32), two norms; final norm.
        long perLayer = 2 * 32 * 32 + 2 * 16 * 32 + 3 * 64 * 32 + 2 * 32;
        Assert.Equal(300 * 32 + 2 * perLayer + 32, model.ParameterCount);
    }
}
