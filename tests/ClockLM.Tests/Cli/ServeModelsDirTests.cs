using System.Diagnostics;
using System.Text.Json;
using ClockLM.Tests.Server;

namespace ClockLM.Tests.Cli;

/// <summary>`clocklm serve --models-dir` as a real process, and its usage errors.</summary>
public sealed class ServeModelsDirTests
{
    [Fact]
    public async Task ServesTheFolderAndUnloadsWithKeepAliveZero()
    {
        await using var folder = new ModelFolder();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "clocklm.dll"));
        foreach (var a in new[] { "serve", "--models-dir", folder.Path, "--port", "0", "-t", "1", "--parallel", "1", "--ctx", "64", "--keep-alive", "0" })
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        try
        {
            string? firstLine = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            var match = System.Text.RegularExpressions.Regex.Match(firstLine ?? "", @"listening on (http://127\.0\.0\.1:\d+/) \(3 models in .*: clocklm-kjv, kjv, stories260K;");
            Assert.True(match.Success, firstLine);
            using var http = new HttpClient { BaseAddress = new Uri(match.Groups[1].Value), Timeout = TimeSpan.FromSeconds(60) };
            using var answer = await http.PostAsync("/api/generate", new StringContent(
                """{"model": "kjv", "prompt": "In the beginning", "raw": true, "stream": false, "options": {"temperature": 0, "num_predict": 4}}""",
                System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(System.Net.HttpStatusCode.OK, answer.StatusCode);
            using var json = JsonDocument.Parse(await answer.Content.ReadAsStringAsync());
            Assert.Equal(4, json.RootElement.GetProperty("eval_count").GetInt32());
            using var running = JsonDocument.Parse(await http.GetStringAsync("/api/ps"));
            Assert.Equal(0, running.RootElement.GetProperty("models").GetArrayLength()); // --keep-alive 0
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
    }

    [Theory]
    [InlineData("both", new[] { "--model", "@stories", "--models-dir", "@folder" }, "--model and --models-dir exclude each other")]
    [InlineData("keep-alive", new[] { "--models-dir", "@folder", "--keep-alive", "soon" }, "--keep-alive is 'soon'")]
    [InlineData("budget", new[] { "--models-dir", "@folder", "--max-loaded-bytes", "0" }, "--max-loaded-bytes is 0")]
    [InlineData("no folder", new[] { "--models-dir", "/nonexistent-models" }, "/nonexistent-models: no such models folder")]
    [InlineData("folder options alone", new[] { "--model", "@stories", "--keep-alive", "1m" }, "--keep-alive and --max-loaded-bytes apply to --models-dir")]
    public async Task BadServeArgumentsAreOneClearError(string what, string[] args, string expected)
    {
        await using var folder = new ModelFolder();
        var result = ClockLMProcess.Run(["serve", "--port", "0", .. args.Select(a => a == "@stories" ? SharedData.Stories260K : a == "@folder" ? folder.Path : a)]);
        Assert.True(result.ExitCode == 1, $"{what}: exit code {result.ExitCode}, stderr {result.StdErr}");
        Assert.Contains(expected, result.StdErr);
        Assert.DoesNotContain("   at ", result.StdErr);
    }
}
