using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tests.Cli;
using ClockLM.Tests.Families;

namespace ClockLM.Tests.Lora;

/// <summary>LoRA adapters without llama.cpp: scale 0, batches against single tokens, the file format's checks, and the
/// CLI options.</summary>
public class LoraAdapterTests
{
    private static readonly int[] Prompt = [1, 17, 250, 33, 4, 98, 120, 7, 311, 45, 2, 77];

    [Fact]
    public void ScaleZeroIsBitIdenticalToNoAdapter()
    {
        using var dir = new TempDir();
        string path = dir.File("llama.gguf");
        FamilyModels.WriteArchitecture(path, "llama", 64);
        using var model = Model.Load(path);
        float[] plain = model.CreateTransformer(64).Evaluate(Prompt, 0).ToArray();
        var adapter = LoraTestAdapters.Random(model, rank: 4, alpha: 8, seed: 5);
        model.UseLora([new ScaledLora(adapter, 0f)]);
        Assert.Null(model.Lora);
        Assert.Equal(plain, model.CreateTransformer(64).Evaluate(Prompt, 0).ToArray());
        model.UseLora([new ScaledLora(adapter, 1f)]);
        Assert.NotEqual(plain, model.CreateTransformer(64).Evaluate(Prompt, 0).ToArray());
    }

    [Fact]
    public void AdaptersAndTheirScalesArePartOfTheModelIdentity()
    {
        using var dir = new TempDir();
        string path = dir.File("llama.gguf");
        FamilyModels.WriteArchitecture(path, "llama", 64);
        using var model = Model.Load(path);
        byte[] plain = ModelIdentity.Of(model);
        var adapter = LoraTestAdapters.Random(model, rank: 4, alpha: 8, seed: 5);
        var other = LoraTestAdapters.Random(model, rank: 4, alpha: 8, seed: 6);
        byte[] Identity(params ScaledLora[] adapters)
        {
            model.UseLora(adapters);
            return ModelIdentity.Of(model);
        }
        Assert.Equal(plain, Identity(new ScaledLora(adapter, 0f))); // scale 0 computes the same bits: the same model
        byte[] one = Identity(new ScaledLora(adapter, 1f));
        Assert.NotEqual(plain, one);
        Assert.Equal(one, Identity(new ScaledLora(adapter, 1f)));
        Assert.NotEqual(one, Identity(new ScaledLora(adapter, 0.5f)));
        Assert.NotEqual(one, Identity(new ScaledLora(other, 1f)));
        Assert.NotEqual(Identity(new ScaledLora(adapter, 1f), new ScaledLora(other, 1f)), Identity(new ScaledLora(adapter, 1f)));
    }

    [Fact]
    public void AnEmbeddingPairIsStoredAsLlamaCppReadsItAndAddsBTimesTheTokensColumnOfA()
    {
        using var dir = new TempDir();
        string path = dir.File("llama.gguf"), adapterPath = dir.File("a.gguf");
        FamilyModels.WriteArchitecture(path, "llama", 64);
        using var model = Model.Load(path);
        var c = model.Config;
        var adapter = LoraTestAdapters.Random(model, rank: 3, alpha: 6, seed: 12, std: 0.3f, targets: [], output: false, embedding: true);
        adapter.Save(adapterPath);
        using (var file = GgufFile.Open(adapterPath))
        {
            // llama.cpp's layout for the embedding: lora_a [rank, vocab], lora_b [rank, dim] (ggml order).
            Assert.Equal([3L, c.VocabSize], file.Tensors.Single(t => t.Name == "token_embd.weight.lora_a").Dimensions);
            Assert.Equal([3L, c.Dim], file.Tensors.Single(t => t.Name == "token_embd.weight.lora_b").Dimensions);
        }
        var loaded = LoraAdapter.Load(adapterPath);
        var pair = loaded.Pairs[LoraAdapter.EmbeddingTensor];
        Assert.Equal(adapter.Pairs[LoraAdapter.EmbeddingTensor].A, pair.A);
        Assert.Equal(adapter.Pairs[LoraAdapter.EmbeddingTensor].B, pair.B);

        // The stream entering cycle 0 moves by scale·alpha/rank · B·A[:, token].
        float[] Embedded(int token)
        {
            var t = model.CreateTransformer(16);
            var x = new float[c.Dim];
            t.Hook = (point, layer, _, a) => { if (point == ClockLM.Clock.ActivationPoint.ResidPre && layer == 0) a.CopyTo(x); };
            t.Forward(token, 0);
            return x;
        }
        const int token = 37;
        float[] plain = Embedded(token);
        model.UseLora([new ScaledLora(loaded, 0.5f)]);
        float[] adapted = Embedded(token);
        float factor = 0.5f * 6 / 3;
        for (int o = 0; o < c.Dim; o++)
        {
            float delta = 0;
            for (int r = 0; r < 3; r++) delta += pair.B[o * 3 + r] * pair.A[r * c.VocabSize + token];
            Assert.Equal(plain[o] + factor * delta, adapted[o], 1e-5f);
        }
        // Rows in one batch equal rows one by one, and scale 0 is the plain model's bits.
        var batched = new float[Prompt.Length * c.VocabSize];
        model.CreateTransformer(64).Evaluate(Prompt, 0, batched);
        var single = model.CreateTransformer(64);
        single.MicroBatch = 1;
        var oneByOne = new float[Prompt.Length * c.VocabSize];
        single.Evaluate(Prompt, 0, oneByOne);
        Assert.Equal(oneByOne, batched);
        model.UseLora([new ScaledLora(loaded, 0f)]);
        Assert.Equal(plain, Embedded(token));
    }

    [Fact]
    public void BatchedPromptRowsEqualTokenByTokenDecoding()
    {
        using var dir = new TempDir();
        string path = dir.File("llama.gguf");
        FamilyModels.WriteArchitecture(path, "llama", 64);
        using var model = Model.Load(path);
        model.UseLora([new ScaledLora(LoraTestAdapters.Random(model, rank: 3, alpha: 6, seed: 6), 1.25f)]);
        int vocab = model.Config.VocabSize;
        var batched = new float[Prompt.Length * vocab];
        model.CreateTransformer(64).Evaluate(Prompt, 0, batched);
        var single = model.CreateTransformer(64);
        single.MicroBatch = 1;
        var oneByOne = new float[Prompt.Length * vocab];
        single.Evaluate(Prompt, 0, oneByOne);
        Assert.Equal(oneByOne, batched);
    }

    [Fact]
    public void AdaptedLogitsEqualThoseOfTheMergedMatrices()
    {
        // y = W·x + f·B·(A·x) is the product with W + f·B·A: write a model with the merged matrices and compare.
        using var dir = new TempDir();
        string path = dir.File("llama.gguf"), merged = dir.File("merged.gguf");
        FamilyModels.WriteArchitecture(path, "llama", 64);
        using var model = Model.Load(path);
        var adapter = LoraTestAdapters.Random(model, rank: 2, alpha: 4, seed: 7);
        const float scale = 0.5f;
        var writer = new GgufWriter();
        writer.CopyMetadata(model.Gguf!, _ => true);
        foreach (var t in model.Gguf!.Tensors)
        {
            var view = model.Gguf.GetView(t);
            adapter.Pairs.TryGetValue(t.Name, out var pair);
            writer.AddTensor(t.Name, GgmlType.F32, t.Dimensions, (row, values) =>
            {
                view.DequantizeRow(row, values);
                if (pair is null) return;
                float f = adapter.Factor(scale, pair.Rank);
                for (int col = 0; col < pair.Inputs; col++)
                {
                    double sum = 0;
                    for (int r = 0; r < pair.Rank; r++) sum += pair.B[row * pair.Rank + r] * (double)pair.A[r * pair.Inputs + col];
                    values[col] += (float)(f * sum);
                }
            });
        }
        writer.Write(merged);
        model.UseLora([new ScaledLora(adapter, scale)]);
        float[] ours = model.CreateTransformer(64, cache: KvCacheOptions.F32).Evaluate(Prompt, 0).ToArray();
        using var mergedModel = Model.Load(merged);
        float[] theirs = mergedModel.CreateTransformer(64, cache: KvCacheOptions.F32).Evaluate(Prompt, 0).ToArray();
        double worst = ours.Zip(theirs, (a, b) => (double)Math.Abs(a - b)).Max();
        Assert.True(worst < 1e-3, $"adapted and merged logits differ by {worst}");
        Assert.True(ours.Zip(theirs, (a, b) => a != b).Any(), "equal bits would mean the adapter went into the weights");
    }

    [Fact]
    public void F16AdaptersLoadAsTheirValues()
    {
        using var dir = new TempDir();
        string path = dir.File("f16.gguf");
        var writer = new GgufWriter();
        writer.Set("general.architecture", "llama");
        writer.Set("general.type", "adapter");
        writer.Set("adapter.type", "lora");
        writer.Set("adapter.lora.alpha", 16f);
        writer.AddTensor("blk.0.attn_q.weight.lora_a", GgmlType.F16, [8, 2], (row, v) => { for (int i = 0; i < 8; i++) v[i] = row + i / 3f; });
        writer.AddTensor("blk.0.attn_q.weight.lora_b", GgmlType.F16, [2, 5], (row, v) => { v[0] = -row; v[1] = 0.1f; });
        writer.AddTensor("blk.0.attn_norm.weight", [8], new float[8]); // skipped, as llama.cpp skips it
        writer.Write(path);
        var adapter = LoraAdapter.Load(path);
        var pair = adapter.Pairs["blk.0.attn_q.weight"];
        Assert.Equal((2, 8, 5), (pair.Rank, pair.Inputs, pair.Outputs));
        Assert.Equal((float)(Half)(1 + 2 / 3f), pair.A[8 + 2]);
        Assert.Equal((float)(Half)0.1f, pair.B[4 * 2 + 1]);
        Assert.Equal(["blk.0.attn_norm.weight"], adapter.SkippedTensors);
        Assert.Equal(16f * 0.5f / 2, adapter.Factor(0.5f, 2));
        Assert.Equal(0.5f, new LoraAdapter("llama", 0, adapter.Pairs).Factor(0.5f, 2)); // no alpha: the scale alone
    }

    [Theory]
    [InlineData("model", "general.type is missing; a LoRA adapter has 'adapter'")]
    [InlineData("cvec", "general.type is missing")]
    [InlineData("not lora", "adapter.type is 'control'; expected 'lora'")]
    [InlineData("unpaired", "tensor 'blk.0.attn_q.weight.lora_a' has no .lora_b partner")]
    [InlineData("transposed", "lora_a [8, 2] has rank 2 but lora_b [8, 5] has 8")]
    [InlineData("odd tensor", "tensor 'blk.0.attn_q.bias' is not a LoRA matrix")]
    [InlineData("infinite", "every value must be finite")]
    public void BadFilesGiveOneClearError(string what, string expected)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.gguf");
        if (what == "model") FamilyModels.WriteArchitecture(path, "llama", 16);
        else if (what == "cvec") new ControlVector(new Dictionary<int, float[]> { [1] = new float[4] }).Save(path);
        else
        {
            var w = new GgufWriter();
            w.Set("general.architecture", "llama").Set("general.type", "adapter").Set("adapter.type", what == "not lora" ? "control" : "lora");
            float[] a = new float[16];
            if (what == "infinite") a[3] = float.PositiveInfinity;
            w.AddTensor("blk.0.attn_q.weight.lora_a", [8, 2], a);
            if (what == "transposed") w.AddTensor("blk.0.attn_q.weight.lora_b", [8, 5], new float[40]);
            else if (what != "unpaired") w.AddTensor("blk.0.attn_q.weight.lora_b", [2, 5], new float[10]);
            if (what == "odd tensor") w.AddTensor("blk.0.attn_q.bias", [5], new float[5]);
            w.Write(path);
        }
        var error = Assert.Throws<GgufFormatException>(() => LoraAdapter.Load(path));
        Assert.StartsWith(path + ": ", error.Message);
        Assert.Contains(expected, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Theory]
    [InlineData("architecture", "general.architecture is 'qwen2' but the model is 'llama'")]
    [InlineData("shape", "LoRA pair 'blk.1.ffn_up.weight' maps 64 inputs to 256 outputs")]
    [InlineData("layer", "tensor 'blk.3.attn_q.weight' is adapted but the model has layers 0..2")]
    [InlineData("embedding", "tokens of width")]
    public void AdaptersForAnotherModelAreRefused(string what, string expected)
    {
        using var dir = new TempDir();
        string path = dir.File("llama.gguf"), adapterPath = dir.File("adapter.gguf");
        FamilyModels.WriteArchitecture(path, "llama", 16);
        using var model = Model.Load(path);
        var good = LoraTestAdapters.Random(model, rank: 2, alpha: 4, seed: 8, targets: [LoraTarget.AttnQ], output: false);
        var pairs = good.Pairs.ToDictionary();
        var q = pairs["blk.0.attn_q.weight"];
        switch (what)
        {
            case "shape": pairs["blk.1.ffn_up.weight"] = new LoraPair(new float[2 * 64], new float[256 * 2], 2, 64, 256); break;
            case "layer": pairs["blk.3.attn_q.weight"] = q; break;
            case "embedding": pairs["token_embd.weight"] = q; break;
        }
        new LoraAdapter(what == "architecture" ? "qwen2" : "llama", 4, pairs).Save(adapterPath);
        var error = Assert.Throws<ArgumentException>(() => model.UseLora([new ScaledLora(LoraAdapter.Load(adapterPath), 1)]));
        Assert.StartsWith(adapterPath + ": ", error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Null(model.Lora);
    }

    [Theory]
    [InlineData("chat", new[] { "chat", "-m", "@stories", "--lora", "/nonexistent.gguf" }, "/nonexistent.gguf: no such LoRA adapter file")]
    [InlineData("serve", new[] { "serve", "-m", "@stories", "--lora-scaled", "@model", "1" }, "general.type is missing; a LoRA adapter has 'adapter'")]
    [InlineData("folder", new[] { "serve", "--models-dir", "@dir", "--lora", "@model" }, "a LoRA adapter is made for one base model; serve it with --model")]
    [InlineData("scale", new[] { "run", "-m", "@stories", "--lora-scaled", "@model", "much", "hi" }, "--lora-scaled")]
    public void ChatAndServeReadTheOptionsAndRefuseBadOnesInOneLine(string what, string[] args, string expected)
    {
        using var dir = new TempDir();
        string model = dir.File("llama.gguf");
        FamilyModels.WriteArchitecture(model, "llama", 16);
        string Resolve(string a) => a switch { "@stories" => SharedData.Stories260K, "@model" => model, "@dir" => dir.Path, _ => a };
        var result = ClockLMProcess.RunWithInput("", TimeSpan.FromMinutes(2), args.Select(Resolve).ToArray());
        Assert.True(result.ExitCode == 1, $"{what}: exit code {result.ExitCode}, stderr {result.StdErr}");
        Assert.Contains(expected, result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr);
    }

    [Fact]
    public void RunWithLoraGeneratesTheAdaptedModelsGreedyTokens()
    {
        using var dir = new TempDir();
        using var model = Model.Load(SharedData.Stories260K);
        string adapter = dir.File("a.gguf");
        LoraTestAdapters.Random(model, rank: 4, alpha: 4, seed: 9, std: 0.3f).Save(adapter);
        var run = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--temp", "0", "-n", "8", "--json",
            "--lora", adapter, "--lora-scaled", adapter, "0.5", "Once upon a time");
        Assert.True(run.ExitCode == 0, run.StdErr);
        using var json = System.Text.Json.JsonDocument.Parse(run.StdOut);
        int[] promptIds = json.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] generated = json.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

        var loaded = LoraAdapter.Load(adapter);
        model.UseLora([new ScaledLora(loaded, 1f), new ScaledLora(loaded, 0.5f)]);
        var t = model.CreateTransformer(64);
        var logits = t.Evaluate(promptIds, 0);
        var expected = new List<int>();
        for (int i = 0; i < generated.Length; i++)
        {
            int next = Oracle.LlamaCppOracle.ArgMax(logits);
            expected.Add(next);
            logits = t.Forward(next, promptIds.Length + i);
        }
        Assert.Equal(expected, generated);

        var bad = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--lora", SharedData.Stories260K, "hi");
        Assert.Equal(1, bad.ExitCode);
        Assert.StartsWith($"error: {SharedData.Stories260K}: ", bad.StdErr);
        Assert.Single(bad.StdErr.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", bad.StdErr);
    }
}
