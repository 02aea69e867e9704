using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Models;

/// <summary>stories260K at temperature 0 reproduces run.c's references, from the .bin and from its converted GGUF,
/// through the library and through the `clocklm` command.</summary>
public class Stories260KGenerationTests
{
    /// <summary>The ids and text of greedy generation through the library's Generator.</summary>
    private static (int[] Ids, string Text) Generate(string modelPath, ReferenceOutputs.Greedy reference)
    {
        using var model = Model.Load(modelPath, SharedData.Tok512);
        var generator = new Generator(model, cache: KvCacheOptions.F32); // run.c keeps floats
        var promptIds = model.Tokenizer.Encode(reference.Prompt).ToArray();
        // run.c's -n counts every position after BOS; ours counts new tokens.
        var options = new GenerationOptions { MaxNewTokens = reference.Steps - (promptIds.Length - 1), Sampler = SamplerOptions.Greedy };
        var result = generator.Generate(promptIds, options, echoPrompt: true);
        int[] ids = [.. result.PromptIds, .. result.GeneratedIds];
        if (result.StopReason == StopReason.EndOfSequence) ids = [.. ids, model.Tokenizer.BosId];
        return (ids, result.Text + "\n");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void FromLlama2cCheckpoint(int which)
    {
        var reference = ReferenceOutputs.Stories260K[which];
        var (ids, text) = Generate(SharedData.Stories260K, reference);
        Assert.Equal(reference.Ids, ids);
        Assert.Equal(reference.Text, text);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void FromConvertedGguf(int which)
    {
        var reference = ReferenceOutputs.Stories260K[which];
        using var dir = new TempDir();
        string gguf = dir.File("stories260K.gguf");
        var convert = ClockLMProcess.Run("convert", SharedData.Stories260K, "--tokenizer", SharedData.Tok512, gguf);
        Assert.Equal(0, convert.ExitCode);

        using (var model = Model.Load(gguf))
        {
            Assert.Equal(new LlamaConfig(64, 172, 5, 8, 4, 512, 512), model.Config);
            Assert.True(model.Weights.TiedOutput);
        }
        var (ids, text) = Generate(gguf, reference);
        // A GGUF model stops at EOS only; the references end by length, so the ids are the same.
        Assert.Equal(reference.Ids, ids);
        Assert.Equal(reference.Text, text);
    }

    [Fact]
    public void RunCommandPrintsTheReferenceText()
    {
        var reference = ReferenceOutputs.Stories260K[0];
        var result = ClockLMProcess.Run("run", "--model", SharedData.Stories260K, "--tokenizer", SharedData.Tok512,
            "--temp", "0", "-n", (reference.Steps - 4).ToString(), reference.Prompt);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(reference.Text, result.StdOut);
        Assert.Contains("tokens/s", result.StdErr);
    }

    [Fact]
    public void RunCommandJsonHasIdsTextAndTimings()
    {
        var reference = ReferenceOutputs.Stories260K[1];
        var result = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--temp", "0", "-n", "20", "--json", reference.Prompt);
        Assert.Equal(0, result.ExitCode);
        using var json = System.Text.Json.JsonDocument.Parse(result.StdOut);
        var root = json.RootElement;
        int[] prompt = root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] generated = root.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(reference.Ids[..5], prompt);
        Assert.Equal(reference.Ids[5..25], generated);
        Assert.StartsWith(" were playing in the park.", root.GetProperty("text").GetString());
        Assert.True(root.GetProperty("timings").GetProperty("decode_tokens_per_second").GetDouble() > 0);
    }

    [Fact]
    public void SameSeedGivesSameTextAndOtherSeedsDiffer()
    {
        using var model = Model.Load(SharedData.Stories260K);
        string Sample(ulong seed)
        {
            var options = new GenerationOptions { MaxNewTokens = 40, Sampler = new SamplerOptions { Temperature = 1.0f, TopP = 0.9f, Seed = seed } };
            return new Generator(model).Generate("Once upon a time", options).Text;
        }
        string a = Sample(42), b = Sample(42);
        Assert.Equal(a, b);
        var others = new[] { 1UL, 2UL, 3UL }.Select(Sample).ToList();
        Assert.Contains(others, o => o != a);
    }
}
