
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
        AssertCleanError(ClockLMProcess.Run("run", SharedData.Stories260K), "did you mean --model");
        // With --model given, a file name is an ordinary prompt.
        Assert.Equal(0, ClockLMProcess.Run("run", "-m", path, "-n", "1", "--temp", "0", path).ExitCode);
    }

    [Fact]
    public void NegativeTemperatureIsRefusedAndExcessiveSettingsWarn()
    {
        AssertCleanError(ClockLMProcess.Run("run", "--temp", "-1", "hi"), "temperature is -1, expected 0 (greedy) or more");
        AssertCleanError(ClockLMProcess.Run("run", "--threads", "-3", "hi"), "--threads is -3");

        int cores = Environment.ProcessorCount;
        var many = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--threads", $"{cores + 1}", "-n", "1", "hi");
        Assert.Equal(0, many.ExitCode);
        Assert.Contains($"warning: --threads is {cores + 1}, more than this machine's {cores} cores", many.StdErr);

        var longContext = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--ctx", "2048", "-n", "1", "hi");
        Assert.Equal(0, longContext.ExitCode);
        Assert.Contains("warning: --ctx is 2048, longer than the 512 positions the model was trained on", longContext.StdErr);

        var endless = ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "-n", $"{int.MaxValue}", "--temp", "0", "Once");
        Assert.Equal(0, endless.ExitCode);
        Assert.Contains($"warning: -n is {int.MaxValue}, more than the context of 512 holds", endless.StdErr);
    }

    [Fact]
    public void KvCacheThatCannotFitSaysHowMuchItNeeds()
    {
        AssertCleanError(ClockLMProcess.Run("serve", "-m", SharedData.Stories260K, "--parallel", "256", "--ctx", "4194304", "--port", "0", "-t", "1"),
            "TiB (256 sequences x 4194304 positions x 5 layers x 64 floats) but this machine has");
        AssertCleanError(ClockLMProcess.Run("run", "-m", SharedData.Stories260K, "--ctx", "2000000000", "hi"), "the KV cache needs");
    }

    [Fact]
    public void ModelWithNaNWeightsFailsRunWithAClearMessage()
    {
        using var dir = new TempDir();
        string good = dir.File("good.gguf"), bad = dir.File("nan.gguf");
        TestModels.WriteSmallLlama(good);
        TestModels.WriteNaNNorm(good, bad);
        var result = ClockLMProcess.Run("run", "-m", bad, "-n", "4", "hi");
        AssertCleanError(result, "the model computed NaN for a logit (entry 0 at position");
        Assert.Equal(0, ClockLMProcess.Run("run", "-m", good, "-n", "4", "hi").ExitCode);
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
    public void ChatTemplateErrorsThroughRunChatNeverPrintAStackTrace(string template, string expected)
    {
        using var dir = new TempDir();
        string good = dir.File("good.gguf"), bad = dir.File("template.gguf");
        TestModels.WriteSmallLlama(good);
        TestModels.CopyGguf(good, bad, metadata: w => w.Set("tokenizer.chat_template", template));
        var result = ClockLMProcess.Run("run", "--chat", "-m", bad, "-n", "2", "hi");
        Assert.DoesNotContain("Unhandled exception", result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr);
        if (result.ExitCode != 0) Assert.Contains(expected, result.StdErr); // some templates render (e.g. a defined overflow)
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
