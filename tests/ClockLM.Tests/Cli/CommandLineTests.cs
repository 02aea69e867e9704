namespace ClockLM.Tests.Cli;

/// <summary>The `clocklm` commands end bad input with one clear line on stderr and exit code 1.</summary>
public class CommandLineTests
{
    [Theory]
    [InlineData("no such file", new[] { "run", "-m", "/nonexistent.gguf", "hello" }, "/nonexistent.gguf")]
    [InlineData("bad threads", new[] { "run", "-m", "@stories", "-t", "0", "hello" }, "--threads is 0")]
    [InlineData("bad top-p", new[] { "run", "-m", "@stories", "--top-p", "2", "hello" }, "top-p is 2")]
    [InlineData("negative n", new[] { "run", "-m", "@stories", "-n", "-3", "hello" }, "-n is -3")]
    [InlineData("bad ctx", new[] { "run", "-m", "@stories", "--ctx", "0", "hello" }, "--ctx is 0")]
    [InlineData("unknown quant type", new[] { "quantize", "@stories", "/tmp/x.gguf", "Q9_9" }, "unknown type 'Q9_9'")]
    [InlineData("unknown shape", new[] { "synth", "--shape", "huge", "/tmp/x.gguf" }, "unknown shape 'huge'")]
    [InlineData("inspect a non-GGUF", new[] { "inspect", "@stories" }, "not a GGUF file")]
    [InlineData("unknown kernels", new[] { "run", "-m", "@stories", "--kernels", "avx9", "hello" }, "--kernels: kernels 'avx9': expected best, scalar")]
    [InlineData("bad kernel width", new[] { "bench", "-m", "@stories", "--kernels", "vector256/128" }, "the packed kernels' width after '/' is 256 or 512, not '128'")]
    [InlineData("draft-max alone", new[] { "run", "-m", "@stories", "--draft-max", "4", "hello" }, "--draft-max needs --model-draft or --lookup")]
    [InlineData("both drafters", new[] { "run", "-m", "@stories", "--lookup", "2", "--model-draft", "@stories", "hello" }, "--model-draft and --lookup cannot be combined")]
    [InlineData("bad draft-max", new[] { "run", "-m", "@stories", "--lookup", "2", "--draft-max", "0", "hello" }, "draft-max is 0, expected 1 to 256")]
    [InlineData("draft of another vocabulary", new[] { "run", "--model-draft", "@stories", "hello" }, "its vocabulary has 512 tokens, the target's 1024")]
    [InlineData("draft-min above draft-max in run", new[] { "run", "-m", "@stories", "--lookup", "2", "--draft-max", "4", "--draft-min", "5", "hello" }, "draft-min is 5, expected 0 to draft-max (4)")]
    [InlineData("draft-min above draft-max in chat", new[] { "chat", "-m", "@stories", "--lookup", "2", "--draft-max", "4", "--draft-min", "5" }, "draft-min is 5, expected 0 to draft-max (4)")]
    [InlineData("draft-min above draft-max in serve", new[] { "serve", "-m", "@stories", "--lookup", "2", "--draft-max", "4", "--draft-min", "5" }, "draft-min is 5, expected 0 to draft-max (4)")]
    [InlineData("draft-min above draft-max in bench", new[] { "bench", "-m", "@stories", "--lookup", "2", "--draft-max", "4", "--draft-min", "5", "--prompt", "hello" }, "draft-min is 5, expected 0 to draft-max (4)")]
    [InlineData("draft-min alone in serve", new[] { "serve", "-m", "@stories", "--draft-min", "2" }, "--draft-min needs --model-draft or --lookup")]
    [InlineData("bench drafts without a prompt", new[] { "bench", "-m", "@stories", "--lookup", "2" }, "need --prompt TEXT or --prompt-file FILE")]
    [InlineData("unknown cache type", new[] { "run", "-m", "@stories", "--cache-type-k", "q4_0", "hello" }, "--cache-type-k is 'q4_0', expected f32, f16 or q8_0")]
    [InlineData("unknown value cache type", new[] { "serve", "-m", "@stories", "--cache-type-v", "bf16" }, "--cache-type-v is 'bf16'")]
    [InlineData("bad keep", new[] { "run", "-m", "@stories", "--context-shift", "--keep", "-2", "hello" }, "--keep is -2")]
    [InlineData("bad depth", new[] { "bench", "-m", "@stories", "-d", "0,-5" }, "--depth value '-5'")]
    public void BadInputGivesOneClearError(string what, string[] args, string expected)
    {
        var result = ClockLMProcess.Run(args.Select(a => a == "@stories" ? SharedData.Stories260K : a).ToArray());
        Assert.True(result.ExitCode == 1, $"{what}: exit code {result.ExitCode}, stderr {result.StdErr}");
        Assert.Contains(expected, result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr); // no stack trace
    }

    [Fact]
    public void RunWithDraftsPrintsTheSameTokensAndTheAcceptance()
    {
        var plain = ClockLMProcess.Run("run", "--temp", "0", "-n", "40", "--json", "In the beginning");
        var drafted = ClockLMProcess.Run("run", "--temp", "0", "-n", "40", "--json", "--lookup", "3", "--draft-max", "4", "In the beginning");
        Assert.Equal(0, drafted.ExitCode);
        var json = System.Text.Json.JsonDocument.Parse(drafted.StdOut).RootElement;
        string Ids(string text) => System.Text.Json.JsonDocument.Parse(text).RootElement.GetProperty("generated_ids").GetRawText();
        Assert.Equal(Ids(plain.StdOut), Ids(drafted.StdOut));
        var speculative = json.GetProperty("speculative");
        Assert.True(speculative.GetProperty("accepted").GetInt32() > 0, drafted.StdOut);
        Assert.Contains("accepted", drafted.StdErr);
    }

    [Fact]
    public void RunWithoutAModelUsesTheBuiltInModel()
    {
        string builtIn = Path.Combine(SharedData.RepoRoot, "models", "clocklm-kjv.gguf");
        var implicitModel = ClockLMProcess.Run("run", "--temp", "0", "-n", "12", "--json", "In the beginning");
        var explicitModel = ClockLMProcess.Run("run", "-m", builtIn, "--temp", "0", "-n", "12", "--json", "In the beginning");
        Assert.Equal(0, implicitModel.ExitCode);
        string Ids(string json) => System.Text.Json.JsonDocument.Parse(json).RootElement.GetProperty("generated_ids").GetRawText();
        Assert.Equal(Ids(explicitModel.StdOut), Ids(implicitModel.StdOut));
        Assert.Equal(12, System.Text.Json.JsonDocument.Parse(implicitModel.StdOut).RootElement.GetProperty("generated_ids").GetArrayLength());
    }

    [Fact]
    public void RunChatSendsThePromptThroughTheChatTemplate()
    {
        var result = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--chat", "--system", "Be kind.", "--temp", "0", "-n", "8", "--json", "Tell me a story");
        Assert.Equal(0, result.ExitCode);
        using var model = ClockLM.Models.Model.Load(SharedData.Stories260K);
        // stories260K has no template, so ChatML (the fallback) frames the conversation.
        string expectedText = "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n";
        var expected = model.Tokenizer.Encode(expectedText, addSpecial: true, parseSpecial: true);
        var ids = System.Text.Json.JsonDocument.Parse(result.StdOut).RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32());
        Assert.Equal(expected, ids);
        var bad = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--system", "x", "hello");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--system needs --chat", bad.StdErr);
    }

    [Fact]
    public void TokenizePrintsIdsAndPieces()
    {
        var ids = ClockLMProcess.Run("tokenize", "-m", SharedData.Stories260K, "--ids", "Lily and Tom");
        Assert.Equal(0, ids.ExitCode);
        Assert.Equal("[1, 317, 269, 274, 287]", ids.StdOut.Trim());
        var noBos = ClockLMProcess.Run("tokenize", "-m", SharedData.Stories260K, "--no-bos", "Lily");
        Assert.Equal("   317 -> '▁Lily'", noBos.StdOut.Trim('\n'));
    }

    [Fact]
    public void InspectListsMetadataAndTensors()
    {
        using var dir = new TempDir();
        string gguf = dir.File("s.gguf");
        Assert.Equal(0, ClockLMProcess.Run("convert", SharedData.Stories260K, gguf).ExitCode);
        var result = ClockLMProcess.Run("inspect", gguf);
        Assert.Equal(0, result.ExitCode);
        Assert.Matches(@"general\.architecture\s+String\s+llama", result.StdOut);
        Assert.Matches(@"llama\.block_count\s+UInt32\s+5", result.StdOut);
        Assert.Matches(@"blk\.0\.ffn_down\.weight\s+F32\s+\[172, 64\]\s+44032", result.StdOut);
        Assert.Contains("47 tensors", result.StdOut);
    }
}
