using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Tensors;
using LLama;
using LLama.Common;
using LLama.Native;
using Xunit.Abstractions;

namespace ClockLM.Tests.Oracle;

/// <summary>
/// `clocklm perplexity` against llama-perplexity's method run on llama.cpp's own logits (through LLamaSharp): the
/// built-in model on held-out chapters of its text, tokenized by llama.cpp, cut into chunks of 128 whose first token
/// becomes BOS, the second half of each scored. Both engines keep the same KV cache type; the perplexities agree within
/// 0.1 %.
/// </summary>
[Collection("llama.cpp")]
public class PerplexityOracleTests(ITestOutputHelper output)
{
    private const int Context = 128, Chunks = 6;

    private static string BuiltInModel => Path.Combine(SharedData.RepoRoot, "models", "clocklm-kjv.gguf");
    private static string HeldOutText => Path.Combine(SharedData.RepoRoot, "data", "perplexity", "kjv-heldout.txt");

    [Theory]
    [InlineData(GgmlType.F32, GGMLType.GGML_TYPE_F32)]
    [InlineData(GgmlType.F16, GGMLType.GGML_TYPE_F16)]
    public void PerplexityEqualsLlamaCppsMethodOnItsLogits(GgmlType type, GGMLType llamaType)
    {
        string text = File.ReadAllText(HeldOutText);
        NativeLogConfig.llama_log_set((level, message) => { });
        var parameters = new ModelParams(BuiltInModel)
        {
            ContextSize = Context, BatchSize = Context, UBatchSize = Context, GpuLayerCount = 0, Threads = 2,
            TypeK = llamaType, TypeV = llamaType, FlashAttention = false,
        };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        int[] tokens = context.Tokenize(text, addBos: true).Select(t => (int)t).ToArray();

        using var model = Model.Load(BuiltInModel);
        Assert.Equal(model.Tokenizer.Encode(text, addSpecial: true), tokens); // the same text, the same tokens
        var ours = Perplexity.Measure(model, tokens, new PerplexityOptions { Context = Context, Chunks = Chunks, KvCache = KvCacheOptions.Both(type) });

        // llama-perplexity's loop, on llama.cpp's logits.
        double nll = 0;
        int count = 0, bos = (int)weights.Vocab.BOS!.Value, vocab = model.Config.VocabSize;
        for (int c = 0; c < Chunks; c++)
        {
            context.NativeHandle.MemoryClear();
            var batch = new LLamaBatch();
            for (int i = 0; i < Context; i++)
                batch.Add((LLamaToken)(i == 0 ? bos : tokens[c * Context + i]), (LLamaPos)i, LLamaSeqId.Zero, true);
            Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
            for (int i = Context / 2; i < Context - 1; i++)
            {
                var logits = context.NativeHandle.GetLogitsIth(i);
                Assert.Equal(vocab, logits.Length);
                nll -= Perplexity.LogSoftmax(logits, tokens[c * Context + i + 1]);
                count++;
            }
        }
        double theirs = Math.Exp(nll / count);
        output.WriteLine($"{type}: ClockLM PPL {ours.Value:F6} ± {ours.Uncertainty:F6} over {ours.Tokens} tokens, llama.cpp {theirs:F6} over {count}");
        Assert.Equal(count, ours.Tokens);
        Assert.True(Math.Abs(ours.Value / theirs - 1) < 1e-3, $"{type}: ClockLM {ours.Value:F6}, llama.cpp {theirs:F6}");
    }
}
