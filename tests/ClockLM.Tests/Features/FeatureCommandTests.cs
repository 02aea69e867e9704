using ClockLM.Features;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Features;

/// <summary>`clocklm trace --sae`, `sae train` and `capture`: bad input ends in one clear line and writes nothing.</summary>
public class FeatureCommandTests
{
    [Theory]
    [InlineData(new[] { "trace", "-m", "@stories", "--sae", "@nowhere", "hi" }, "cfg.json: no such file")]
    [InlineData(new[] { "trace", "-m", "@stories", "--sae", "@wide", "hi" }, "--sae @wide: the sparse autoencoder reads 128 values at blocks.1.hook_resid_post; the model has 64")]
    [InlineData(new[] { "trace", "-m", "@stories", "--sae", "@sae", "--steer-feature", "3", "hi" }, "--steer-feature is '3', expected IDX:SCALE")]
    [InlineData(new[] { "sae", "train", "-m", "@stories", "--data", "@prompts", "--point", "blocks.1.hook_resid_post", "--out", "@out" }, "has 3 prompts; at least 10 are needed")]
    [InlineData(new[] { "capture", "-m", "@stories", "--data", "@prompts", "--points", "blocks.9.hook_resid_post", "--out", "@out" }, "blocks.9.hook_resid_post: the model has layers 0..4")]
    public void BadInputGivesOneClearError(string[] args, string expected)
    {
        using var dir = new TempDir();
        float[] Zeros(int n) => new float[n];
        new SparseAutoencoder("blocks.1.hook_resid_post", 64, 8, Zeros(512), Zeros(8), Zeros(512), Zeros(64)).Save(dir.File("sae"));
        new SparseAutoencoder("blocks.1.hook_resid_post", 128, 8, Zeros(1024), Zeros(8), Zeros(1024), Zeros(128)).Save(dir.File("wide"));
        File.WriteAllLines(dir.File("prompts.txt"), ["Tom ran.", "Sue sat.", "The sun"]);
        string Resolve(string a) => a switch
        {
            "@stories" => SharedData.Stories260K,
            "@prompts" => dir.File("prompts.txt"),
            "@out" => dir.File("out"),
            _ when a.StartsWith('@') => dir.File(a[1..]),
            _ => a,
        };
        var result = ClockLMProcess.Run(args.Select(Resolve).ToArray());
        Assert.True(result.ExitCode == 1, $"exit code {result.ExitCode}, stderr {result.StdErr}");
        Assert.Contains(expected.Replace("@wide", dir.File("wide")), result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr);
        Assert.False(File.Exists(dir.File("out")) || Directory.Exists(dir.File("out")), "nothing is written on an error");
    }
}
