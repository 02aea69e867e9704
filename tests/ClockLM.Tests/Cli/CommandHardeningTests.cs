
using ClockLM.Cli;

namespace ClockLM.Tests.Cli;

/// <summary>Arguments a user gets wrong, models that compute NaN, chat templates that fail and caches that do not fit:
/// each a one-line error (or warning) and the right exit code, never a stack trace.</summary>
public sealed class CommandHardeningTests
{
    private static void AssertCleanError(ClockLMProcess.Result result, string expected)
    {
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.StdErr);
        Assert.DoesNotContain("Unhandled exception", result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr);
    }

    [Fact]
    public void RunWithAModelFileAsThePromptAsksForModel()
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        TestModels.WriteSmallLlama(path);
        AssertCleanError(ClockLMProcess.Run("run", path), $"'{path}' is a model file, not a prompt: did you mean --model {path}?");
        // With --model given, a file name is an ordinary prompt.
        Assert.Equal(0, ClockLMProcess.Run("run", "-m", path, "-n", "1", "--temp", "0", path).ExitCode);
    }

    [Fact]
    public void NegativeTemperatureIsRefusedAndExcessiveSettingsWarn()
    {
        AssertCleanError(ClockLMProcess.Run("run", "--temp", "-1", "hi"), "temperature is -1, expected 0 (greedy) or more");
        int cores = Environment.ProcessorCount;
        var excessive = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--threads", $"{cores + 1}", "--ctx", "600",
            "-n", $"{int.MaxValue}", "--temp", "0", "Once");
        Assert.Equal(0, excessive.ExitCode);
        Assert.Contains($"warning: --threads is {cores + 1}, more than this machine's {cores} cores", excessive.StdErr);
        Assert.Contains("warning: --ctx is 600, longer than the 512 positions the model was trained on", excessive.StdErr);
        Assert.Contains($"warning: -n is {int.MaxValue}, more than the context of 600 holds", excessive.StdErr);
    }

    [Fact]
    public void KvCacheThatCannotFitSaysHowMuchItNeeds()
    {
        AssertCleanError(ClockLMProcess.Run("serve", "-m", SharedData.Stories260K, "--parallel", "256", "--ctx", "4194304", "--port", "0", "-t", "1"),
            "GiB (256 sequences x 4194304 positions x 5 layers, k f16, v f16) but this machine has");
        using var model = ClockLM.Models.Model.Load(SharedData.Stories260K);
        var e = Assert.Throws<InsufficientMemoryException>(() => model.CreateTransformer(2_000_000_000));
        Assert.Contains("one cache may hold at most", e.Message);
        Assert.True(CommandErrors.IsUserError(e));
        model.CheckMemoryFor(512, 4); // what the tests' servers ask for fits
    }

    [Fact]
    public void ServePrefillChunkOutOfRangeIsRefused()
    {
        AssertCleanError(ClockLMProcess.Run("serve", "-m", SharedData.Stories260K, "--prefill-chunk", "0", "--port", "0", "-t", "1"),
            "--prefill-chunk is 0, expected 1 to 65536 prompt tokens per round");
    }

    [Fact]
    public void ModelWithNaNWeightsFailsRunWithAClearMessage()
    {
        using var dir = new TempDir();
        string good = dir.File("good.gguf"), bad = dir.File("nan.gguf");
        TestModels.WriteSmallLlama(good);
        TestModels.WriteNaNNorm(good, bad);
        AssertCleanError(ClockLMProcess.Run("run", "-m", bad, "-n", "4", "hi"), "the model computed NaN for a logit (entry 0 at position");
    }

    public static TheoryData<string, string> BrokenTemplates => new()
    {
        { "{% if %}", "tokenizer.chat_template cannot be used" },
        { "{{ messages[0].content ", "tokenizer.chat_template cannot be used" },
        { "{% for m in messages %}{{ m.content }}", "tokenizer.chat_template cannot be used" },
        { "{% endfor %}", "tokenizer.chat_template cannot be used" },
        { "{{ raise_exception('no users here') }}", "raise_exception: no users here" },
        { "{{ messages[5].content }}", "error: " },
        { "{{ 1 / 0 }}", "error: " },
        { "{{ messages | length + 'a' }}", "error: " },
        { "{% for i in range(100000000) %}x{% endfor %}", "error: " },
        { "{{ undefined_function() }}", "error: " },
        { "{{ 'a' * 1000000000 }}", "error: " },
        { "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "error: " },
        { "{{ messages[0].content[99999999999999999999] }}", "error: " },
        { "{{ (2 ** 64) | int }}", "error: " },
    };

    [Theory]
    [MemberData(nameof(BrokenTemplates))]
    public void ChatTemplateErrorsAreUserErrors(string template, string expected)
    {
        // Every way the template fails on the way to a prompt is an error CommandErrors prints as one line.
        using var dir = new TempDir();
        string good = dir.File("good.gguf"), bad = dir.File("template.gguf");
        TestModels.WriteSmallLlama(good);
        TestModels.CopyGguf(good, bad, metadata: w => w.Set("tokenizer.chat_template", template));
        using var model = ClockLM.Models.Model.Load(bad);
        try
        {
            new ClockLM.Chat.ChatPrompt(model).Encode([new ClockLM.Tokenizers.ChatTemplates.ChatMessage("user", "hi")]);
        }
        catch (Exception e)
        {
            Assert.True(CommandErrors.IsUserError(e), $"{e.GetType().Name}: {e.Message}");
            if (expected != "error: ") Assert.Contains(expected, e.Message);
        }
    }

    [Theory]
    [InlineData("{% if %}", "tokenizer.chat_template cannot be used")]
    [InlineData("{{ raise_exception('no users here') }}", "raise_exception: no users here")]
    public void ChatTemplateErrorsThroughRunChatNeverPrintAStackTrace(string template, string expected)
    {
        using var dir = new TempDir();
        string good = dir.File("good.gguf"), bad = dir.File("template.gguf");
        TestModels.WriteSmallLlama(good);
        TestModels.CopyGguf(good, bad, metadata: w => w.Set("tokenizer.chat_template", template));
        AssertCleanError(ClockLMProcess.Run("run", "--chat", "-m", bad, "-n", "2", "hi"), expected);
    }

    [Fact]
    public void ServeWithATemplateThatDoesNotParseSaysSo()
    {
        using var dir = new TempDir();
        string good = dir.File("good.gguf"), bad = dir.File("template.gguf");
        TestModels.WriteSmallLlama(good);
        TestModels.CopyGguf(good, bad, metadata: w => w.Set("tokenizer.chat_template", "{% if messages %}unclosed"));
        AssertCleanError(ClockLMProcess.Run("serve", "-m", bad, "--port", "0", "-t", "1"),
            $"error: {bad}: tokenizer.chat_template cannot be used");
    }
}
