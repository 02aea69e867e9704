using ClockLM.Models;
using ClockLM.Tests.Cli;
using ClockLM.Tests.Oracle;

namespace ClockLM.Tests.Steering;

/// <summary>The control-vector options of run/chat/serve and `clocklm cvector`: bad input ends in one clear line.</summary>
public class SteeringCommandTests
{
    [Theory]
    [InlineData("missing vector", new[] { "run", "-m", "@stories", "--control-vector", "/nonexistent.gguf", "hi" }, "/nonexistent.gguf: no such control-vector file")]
    [InlineData("bad scale", new[] { "run", "-m", "@stories", "--control-vector-scaled", "@v64", "lots", "hi" }, "the scale is not a number")]
    [InlineData("wrong width", new[] { "run", "-m", "@stories", "--control-vector", "@v128", "hi" }, "directions of 128 values but the model's residual stream has 64")]
    [InlineData("too deep", new[] { "run", "-m", "@stories", "--control-vector", "@deep", "hi" }, "steers layer 5 but the model has layers 0..4")]
    [InlineData("bad range", new[] { "chat", "-m", "@stories", "--control-vector", "@v64", "--control-vector-layer-range", "3", "9" }, "--control-vector-layer-range 3 9: expected 0 <= A <= B <= 4")]
    [InlineData("unpaired", new[] { "cvector", "-m", "@stories", "--positive", "@three", "--negative", "@two", "--out", "@out" }, "has 3 prompts but")]
    [InlineData("bad layers", new[] { "cvector", "-m", "@stories", "--positive", "@two", "--negative", "@two", "--out", "@out", "--layers", "0-2" }, "--layers is '0-2', expected A-B with 1 <= A <= B <= 4")]
    [InlineData("no steer dir", new[] { "serve", "-m", "@stories", "--steer-dir", "/nonexistent-dir" }, "--steer-dir /nonexistent-dir: no such directory")]
    public void BadInputGivesOneClearError(string what, string[] args, string expected)
    {
        using var dir = new TempDir();
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        ControlVectorOracleTests.RandomVector(c, [1, 4], 1, "llama").Save(dir.File("v64.gguf"));
        ControlVectorOracleTests.RandomVector(c with { Dim = 128 }, [1], 1, "llama").Save(dir.File("v128.gguf"));
        ControlVectorOracleTests.RandomVector(c, [5], 1, "llama").Save(dir.File("deep.gguf"));
        File.WriteAllLines(dir.File("three.txt"), ["a", "b", "c"]);
        File.WriteAllLines(dir.File("two.txt"), ["Tom ran.", "", "Sue sat."]);
        string Resolve(string a) => a switch
        {
            "@stories" => SharedData.Stories260K,
            "@v64" or "@v128" or "@deep" => dir.File(a[1..] + ".gguf"),
            "@three" or "@two" => dir.File(a[1..] + ".txt"),
            "@out" => dir.File("out.gguf"),
            _ => a,
        };
        var result = ClockLMProcess.Run(args.Select(Resolve).ToArray());
        Assert.True(result.ExitCode == 1, $"{what}: exit code {result.ExitCode}, stderr {result.StdErr}");
        Assert.Contains(expected, result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr);
        Assert.False(File.Exists(dir.File("out.gguf")), "nothing is written on an error");
    }
}
