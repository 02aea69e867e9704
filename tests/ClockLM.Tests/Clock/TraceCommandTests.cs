using System.Diagnostics;
using System.Text.Json;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Clock;

/// <summary>`clocklm trace` and `clocklm roofline` through the real command.</summary>
public class TraceCommandTests
{
    /// <summary>A roofline cache file, so the trace does not spend seconds measuring; its figures are what the summary must use.</summary>
    private static string FakeRoofline(TempDir dir)
    {
        string path = dir.File("roofline.json");
        File.WriteAllText(path, """
            { "bandwidth": [ { "threads": 1, "gigabytes_per_second": 4.16 } ], "peak_gflops": 52.5, "peak_gflops_one_thread": 26.25,
              "buffer_bytes": 1048576, "measured_at": "2026-01-01T00:00:00Z", "processor_count": 1, "method": 2 }
            """);
        return path;
    }

    [Fact]
    public void TracePrintsACycleTablePerTokenASummaryAndExports()
    {
        using var dir = new TempDir();
        string json = dir.File("trace.json"), html = dir.File("trace.html");
        var r = ClockLMProcess.Run("trace", "-m", SharedData.Stories260K, "-t", "1", "-n", "3", "--roofline-cache", FakeRoofline(dir),
            "--perfetto", json, "--html", html, "--attention", "Once upon a time");
        Assert.True(r.ExitCode == 0, r.StdErr);
        string[] lines = r.StdOut.Split('\n');
        // BOS + 4 prompt tokens in one pass, then 3 generated tokens: 4 pass headers, each followed by a header row and
        // 5 cycle rows.
        var headers = lines.Select((l, i) => (l, i)).Where(x => x.l.StartsWith("token ") || x.l.StartsWith("prompt ")).ToArray();
        Assert.Equal(4, headers.Length);
        Assert.StartsWith("prompt 0-4 (5 tokens in one pass: ", headers[0].l);
        foreach (var (_, i) in headers)
            for (int layer = 0; layer < 5; layer++)
                Assert.StartsWith($"  L{layer} ", lines[i + 2 + layer]);
        // --attention: per token and cycle, the 8 heads' strongest position, its weight and the entropy.
        var attn = lines.Where(l => l.StartsWith("  attn L")).ToArray();
        Assert.Equal(8 * 5, attn.Length);
        foreach (var line in attn)
        {
            var heads = System.Text.RegularExpressions.Regex.Matches(line, @"H(\d)->(\d+):(\d\.\d\d)/(\d\.\d\d)");
            Assert.Equal(8, heads.Count);
            foreach (System.Text.RegularExpressions.Match h in heads)
            {
                Assert.InRange(double.Parse(h.Groups[3].Value), 0.0, 1.0);
                Assert.InRange(double.Parse(h.Groups[4].Value), 0.0, Math.Log(8) + 0.01); // at most ln(positions)
            }
        }
        // The greedy continuation: ", there was".
        Assert.Contains("token 5 ',' (generated)", r.StdOut);
        Assert.Contains("token 6 ' there' (generated)", r.StdOut);
        Assert.Contains("token 7 ' was' (generated)", r.StdOut);
        Assert.Contains("roofline             4.16 GB/s read (1 thread(s)), 52.5 GFLOP/s peak", r.StdOut);
        // Ceiling: 4.16e9 / 1.040 MB per token (259,968 floats of layer weights plus output head and final norm).
        Assert.Matches(@"ceiling\s+\d+ tokens/s", r.StdOut);
        Assert.Contains("weights per token    1.040 MB", r.StdOut);

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var slices = doc.RootElement.GetProperty("traceEvents").EnumerateArray()
            .Where(e => e.GetProperty("ph").GetString() == "X" && e.GetProperty("cat").GetString() == "stage").ToArray();
        var keys = slices.Select(e => (e.GetProperty("args").GetProperty("position").GetInt32(), e.GetProperty("args").GetProperty("layer").GetInt32(),
            e.GetProperty("args").GetProperty("stage").GetString())).ToHashSet();
        Assert.Equal(4 * 5 * 5, slices.Length);
        Assert.Equal(4 * 5 * 5, keys.Count);
        Assert.Equal(5, slices.Where(e => e.GetProperty("args").GetProperty("position").GetInt32() == 0).Select(e => e.GetProperty("args").GetProperty("rows").GetInt32()).Distinct().Single());
        // A track per stage: each stage's slices share one tid, named by a thread_name metadata event.
        foreach (var group in slices.GroupBy(e => e.GetProperty("args").GetProperty("stage").GetString()))
            Assert.Single(group.Select(e => e.GetProperty("tid").GetInt32()).Distinct());
        Assert.All(slices, e => Assert.True(e.GetProperty("dur").GetDouble() >= 0));

        string page = File.ReadAllText(html);
        Assert.StartsWith("<!DOCTYPE html>", page);
        Assert.DoesNotContain("src=\"http", page);
        Assert.DoesNotContain("<link", page);
    }

    [Fact]
    public void TraceRunsOnAConvertedGgufModel()
    {
        using var dir = new TempDir();
        string gguf = dir.File("stories260K.gguf");
        Assert.Equal(0, ClockLMProcess.Run("convert", SharedData.Stories260K, gguf).ExitCode);
        var r = ClockLMProcess.Run("trace", "-m", gguf, "-t", "1", "-n", "1", "--roofline-cache", FakeRoofline(dir), "Once upon a time");
        Assert.True(r.ExitCode == 0, r.StdErr);
        // The GGUF tokenizer adds BOS too: 5 prompt tokens in one pass and the greedy ','.
        Assert.Contains("token 5 ',' (generated)", r.StdOut);
        Assert.Equal(2 * 5, r.StdOut.Split('\n').Count(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^  L\d ")));
    }

    [Theory]
    [InlineData("-n", "-1", "-n is -1")]
    [InlineData("--lens-top", "0", "--lens-top is 0")]
    [InlineData("--ctx", "0", "--ctx is 0")]
    public void BadArgumentsAreNamed(string option, string value, string message)
    {
        var r = ClockLMProcess.Run("trace", "-m", SharedData.Stories260K, option, value, "Once");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"error: {message}", r.StdErr);
    }

    [Fact]
    public void StepWithExportsAndAMissingModelFileAreErrors()
    {
        var r = ClockLMProcess.Run("trace", "-m", SharedData.Stories260K, "--step", "--html", "x.html", "Once");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--step", r.StdErr);
        r = ClockLMProcess.Run("trace", "-m", "/nonexistent/model.gguf", "Once");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("/nonexistent/model.gguf", r.StdErr);
        using var dir = new TempDir();
        string bad = dir.File("roofline.json");
        File.WriteAllText(bad, "not json");
        r = ClockLMProcess.Run("trace", "-m", SharedData.Stories260K, "--roofline-cache", bad, "Once");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(bad, r.StdErr);
    }

    [Fact]
    public void StepDebuggerStepsStagesCyclesTokensAndStopsAtBreakpoints()
    {
        string commands = string.Join('\n', "s", "s", "c", "b layer 3", "r", "d", "b text was", "r", "t", "q") + "\n";
        var r = RunWithInput(commands, "trace", "-m", SharedData.Stories260K, "-t", "1", "-n", "5", "--step", "Once upon a time");
        Assert.True(r.ExitCode == 0, r.StdErr);
        string o = r.StdOut;
        int At(string text, int from)
        {
            int i = o.IndexOf(text, from, StringComparison.Ordinal);
            Assert.True(i >= 0, $"'{text}' not found after offset {from} in:\n{o}");
            return i;
        }
        int p = At("pos 0 token '<s>', L0 before fetch", 0);
        p = At("ran L0 fetch", p);
        p = At("L0 before decode", p);
        p = At("ran L0 decode", p);
        p = At("L0 before memory", p);
        p = At("ran L0 write-back", p);             // c: to the end of cycle 0
        p = At("L1 before fetch", p);
        p = At("breakpoint: layer 3", p);
        p = At("pos 0 token '<s>', L3 before fetch", p); // r stops before cycle 3
        p = At("breakpoint: generated token containing 'was'", p);
        p = At("commit at pos 6: generated ' was'", p);  // r runs through the prompt and ", there" to "was"
        p = At("pos 7 token ' was', L0 before fetch", p);
        p = At("begin pos 8:", p);                    // t: one token on
        Assert.Contains("  lens: ", o);
        Assert.Matches(@"residual norm \d+\.\d{4}", o);
        Assert.Matches(@"attention: strongest L\d H\d -> pos \d+ '.*' weight \d\.\d{3}, entropy \d\.\d{3} nats", o);
    }

    [Fact]
    public void StepDebuggerLensBeforeCommitIsTheNextToken()
    {
        // After every cycle of the last prompt token, the lens's top token is the greedy next token, ','.
        var r = RunWithInput("b layer 4\nr\nr\nr\nr\nr\nc\nq\n", "trace", "-m", SharedData.Stories260K, "-t", "1", "--step", "Once upon a time");
        Assert.True(r.ExitCode == 0, r.StdErr);
        int i = r.StdOut.IndexOf("pos 4 token ' time', all cycles ran, before commit", StringComparison.Ordinal);
        Assert.True(i >= 0, r.StdOut);
        string lens = r.StdOut[i..].Split('\n')[1];
        Assert.StartsWith("  lens: ',' ", lens);
    }

    [Fact]
    public void RooflineMeasuresCachesAndRefreshes()
    {
        using var dir = new TempDir();
        string path = dir.File("sub/roofline.json");
        var first = ClockLMProcess.Run("roofline", "--roofline-cache", path, "--threads", "1", "--buffer-mb", "64");
        Assert.True(first.ExitCode == 0, first.StdErr);
        Assert.Contains($"saved to {path}", first.StdOut);
        using (var doc = JsonDocument.Parse(File.ReadAllText(path)))
        {
            var point = doc.RootElement.GetProperty("bandwidth")[0];
            Assert.Equal(1, point.GetProperty("threads").GetInt32());
            Assert.InRange(point.GetProperty("gigabytes_per_second").GetDouble(), 0.05, 1000);
            Assert.InRange(doc.RootElement.GetProperty("peak_gflops").GetDouble(), 0.1, 100000);
        }
        var second = ClockLMProcess.Run("roofline", "--roofline-cache", path);
        Assert.Equal(0, second.ExitCode);
        Assert.Contains("cached in", second.StdOut);
        var bad = ClockLMProcess.Run("roofline", "--threads", "0", "--roofline-cache", path);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--threads is 0", bad.StdErr);
    }

    private static ClockLMProcess.Result RunWithInput(string input, params string[] args) =>
        ClockLMProcess.RunWithInput(input, TimeSpan.FromMinutes(2), args);
}
