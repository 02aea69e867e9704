using ClockLM.Models;
using ClockLM.Nn;
using ClockLM.Tests.Cli;
using ClockLM.Tests.Nn;
using ClockLM.Tests.Training;
using ClockLM.Training;

namespace ClockLM.Tests.Lora;

/// <summary>LoRA fine-tuning: gradients against finite differences, the trained graph against ClockLM's inference with
/// the written adapter, resuming bit for bit, and the command.</summary>
public class FinetuneTests
{
    private static readonly FinetuneOptions Small = new()
    {
        Rank = 4, Alpha = 8, Targets = ["attn_q", "attn_v", "ffn_down"], ContextLength = 24, Batch = 2, Steps = 6,
        LearningRate = 2e-2, WarmupSteps = 1, CheckpointEvery = 2, EvalEvery = 0, EvalBatches = 1, Seed = 4,
    };

    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")] // RoPE on the heads' halves, biases on q, k and v
    public void LoraGradientsMatchFiniteDifferences(string family)
    {
        // A tiny base in float64 with every product and the output head adapted; B made non-zero so A's gradients are too.
        var c = new LlamaConfig(Dim: 8, HiddenDim: 12, Layers: 2, Heads: 2, KvHeads: 1, VocabSize: 11, ContextLength: 8);
        bool qwen2 = family == "qwen2";
        if (qwen2) c = c with { Rope = RopeStyle.Halves };
        var random = new Random(5);
        var tensors = new Dictionary<string, Tensor<double>>();
        void Add(string name, params int[] shape) => tensors[name] = GradientCheck.Random(shape, random, -0.5, 0.5, requiresGrad: false);
        Add("token_embd.weight", c.VocabSize, c.Dim);
        for (int l = 0; l < c.Layers; l++)
        {
            Add($"blk.{l}.attn_norm.weight", c.Dim);
            Add($"blk.{l}.ffn_norm.weight", c.Dim);
            Add($"blk.{l}.attn_q.weight", c.Dim, c.Dim);
            Add($"blk.{l}.attn_k.weight", c.KvDim, c.Dim);
            Add($"blk.{l}.attn_v.weight", c.KvDim, c.Dim);
            Add($"blk.{l}.attn_output.weight", c.Dim, c.Dim);
            Add($"blk.{l}.ffn_gate.weight", c.HiddenDim, c.Dim);
            Add($"blk.{l}.ffn_up.weight", c.HiddenDim, c.Dim);
            Add($"blk.{l}.ffn_down.weight", c.Dim, c.HiddenDim);
            if (!qwen2) continue;
            foreach (var (bias, width) in new[] { ("attn_q", c.Dim), ("attn_k", c.KvDim), ("attn_v", c.KvDim) })
                tensors[$"blk.{l}.{bias}.bias"] = GradientCheck.Random([width], random, -0.1, 0.1, requiresGrad: false);
        }
        Add("output_norm.weight", c.Dim);
        Add("output.weight", c.VocabSize, c.Dim);
        var model = new LoraTrainingModel<double>(c, tensors, rank: 2, alpha: 3, Enum.GetValues<LoraTarget>(), adaptOutput: true, seed: 1);
        foreach (var (_, _, b) in model.Pairs)
            for (int i = 0; i < b.Length; i++) b.Data[i] = random.NextDouble() - 0.5;
        int[] inputs = [1, 4, 9, 2, 1, 7, 3, 3], targets = [4, 9, 2, 5, 7, 3, 3, 10];
        // Against each tensor's largest gradient, both families' errors measured 1e-7 to 5e-7 over seeds 5 to 7, where a
        // wrong term would be 1e-2 or more; per value, some of the qwen2 graph's tiny gradients measure up to 3e-4.
        double error = GradientCheck.MaxErrorPerTensor(() => model.Loss(inputs, targets, batch: 2, seqLen: 4), model.Parameters());
        Assert.True(error < 2e-6, $"largest gradient error {error:E2} of its tensor's largest gradient");
        if (!qwen2)
        {
            double relative = GradientCheck.MaxRelativeError(() => model.Loss(inputs, targets, batch: 2, seqLen: 4), model.Parameters());
            Assert.True(relative < 1e-5, $"largest relative gradient error {relative:E2}");
        }
        // The base is frozen: no gradient reaches it.
        Assert.All(tensors.Values, t => Assert.Null(t.Grad));
    }

    [Fact]
    public void TheWrittenAdapterRunsAsTheTrainingGraphComputes()
    {
        using var dir = new TempDir();
        using var model = Model.Load(BuiltInModel.Path);
        var trained = LoraFinetuner.Train(model, TinyCorpus.Text(), Small with { Targets = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"] });
        Assert.True(trained.ValidationLoss < trained.BaseValidationLoss, $"validation loss {trained.BaseValidationLoss} -> {trained.ValidationLoss}");
        string path = dir.File("adapter.gguf");
        trained.Model.ToAdapter(model.Architecture).Save(path);

        var tokens = trained.Corpus.Validation.Take(20).Prepend(model.Tokenizer.BosId).ToArray();
        float[] graph = trained.Model.Forward(tokens, 1, tokens.Length).Data[^model.Config.VocabSize..];
        model.UseLora([new ScaledLora(LoraAdapter.Load(path), 1f)]);
        float[] ours = model.CreateTransformer(64, cache: KvCacheOptions.F32).Evaluate(tokens, 0).ToArray(); // as the graph attends
        double worst = ours.Zip(graph, (a, b) => (double)Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-3, $"inference and training graph differ by {worst}");
    }

    [Fact]
    public void AQuantizedBaseTrainsOnItsDequantizedValues()
    {
        using var dir = new TempDir();
        string path = dir.File("q8_0.gguf");
        ModelQuantizer.Quantize(BuiltInModel.Path, path, QuantizationScheme.Parse("Q8_0"));
        using var model = Model.Load(path);
        Assert.Equal(ClockLM.Tensors.GgmlType.Q8_0, model.Weights.Layers[0].Wq.Type);
        var tensors = LoraTrainingModel<float>.BaseTensors(model);
        var row = new float[model.Config.Dim];
        model.Weights.Layers[1].Wv.DequantizeRow(3, row);
        Assert.Equal(row, tensors["blk.1.attn_v.weight"].Data.AsSpan(3 * model.Config.Dim, model.Config.Dim).ToArray());
        var trained = LoraFinetuner.Train(model, TinyCorpus.Text(), Small);
        Assert.True(trained.ValidationLoss < trained.BaseValidationLoss, $"validation loss {trained.BaseValidationLoss} -> {trained.ValidationLoss}");
    }

    [Fact]
    public void ResumeContinuesBitForBitAndWritesTheSameAdapter()
    {
        using var dir = new TempDir();
        using var model = Model.Load(SharedData.Stories260K);
        string text = TinyCorpus.Text(), straight = dir.File("straight.ckpt"), stopped = dir.File("stopped.ckpt");
        var whole = LoraFinetuner.Train(model, text, Small, straight);

        // Stop after step 3, as a kill would: the last checkpoint is step 2, so step 3 is lost and redone.
        using var cancel = new CancellationTokenSource();
        LoraFinetuner.Train(model, text, Small, stopped, progress: p => { if (p.Step == 3) cancel.Cancel(); }, cancellation: cancel.Token);
        Assert.Equal(2, FinetuneCheckpoint.Load(stopped).Step);
        var steps = new List<int>();
        var resumed = LoraFinetuner.Train(model, text, Small with { Steps = 1 }, stopped, resume: true, progress: p => steps.Add(p.Step));
        Assert.Equal([3, 4, 5, 6], steps); // the checkpoint's options (6 steps), not the ones passed
        Assert.Equal(2, resumed.ResumedFromStep);
        Assert.Equal(whole.TrainLoss, resumed.TrainLoss);
        Assert.Equal(whole.BaseValidationLoss, resumed.BaseValidationLoss);
        for (int i = 0; i < whole.Model.Parameters().Count; i++)
            Assert.Equal(whole.Model.Parameters()[i].Data, resumed.Model.Parameters()[i].Data);

        using var other = Model.Load(BuiltInModel.Path);
        var error = Assert.Throws<CheckpointFormatException>(() => LoraFinetuner.Train(other, text, Small, stopped, resume: true));
        Assert.Contains("the checkpoint adapts stories260K.bin", error.Message);
    }

    [Fact]
    public void FinetuneCommandWritesAnAdapterThatRunLoads()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("text.txt"), TinyCorpus.Text());
        string adapter = dir.File("a.gguf");
        var made = ClockLMProcess.Run("finetune", "-m", SharedData.Stories260K, "--data", dir.File("text.txt"), "--out", adapter,
            "--lora-rank", "2", "--lora-alpha", "4", "--steps", "2", "--batch", "2", "--context", "16", "--targets", "attn_q,ffn_up");
        Assert.True(made.ExitCode == 0, made.StdErr);
        Assert.Contains("step 2/2 | loss ", made.StdErr);
        Assert.Contains("| checkpoint", made.StdErr);
        Assert.Contains("wrote " + adapter + ": 10 LoRA pairs of rank 2, alpha 4", made.StdOut);
        var loaded = LoraAdapter.Load(adapter);
        Assert.Equal(("llama", 4f, 10), (loaded.Architecture, loaded.Alpha, loaded.Pairs.Count));
        Assert.True(File.Exists(adapter + ".ckpt"));

        var bad = ClockLMProcess.Run("finetune", "-m", SharedData.Stories260K, "--data", dir.File("text.txt"), "--out", adapter, "--targets", "attn_q,wq");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--targets names 'wq'; expected some of attn_q, attn_k", bad.StdErr);
        var tied = ClockLMProcess.Run("finetune", "-m", SharedData.Stories260K, "--data", dir.File("text.txt"), "--out", adapter, "--targets", "output");
        Assert.Equal(1, tied.ExitCode);
        Assert.Contains("ties its output head to token_embd.weight", tied.StdErr);
        Assert.DoesNotContain("   at ", tied.StdErr);
    }
}
