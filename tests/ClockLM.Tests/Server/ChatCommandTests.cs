using System.Diagnostics;
using ClockLM.Chat;
using ClockLM.Models;
using ClockLM.Sampling;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Tests.Server;

/// <summary>`clocklm chat` driven through its standard input.</summary>
public sealed class ChatCommandTests
{
    private static (int ExitCode, string StdOut) RunChat(string input, params string[] args)
    {
        var result = ClockLM.Tests.Cli.ClockLMProcess.RunWithInput(input, TimeSpan.FromMinutes(1), ["chat", .. args]);
        Assert.True(result.ExitCode == 0, result.StdErr);
        return (result.ExitCode, result.StdOut);
    }

    [Fact]
    public void SystemPromptTurnResetAndHistoryShapeTheAnswers()
    {
        string output = RunChat("/system Tell a story.\nA frog\n/reset\nA frog\n/exit\n",
            "-m", SharedData.Stories260K, "--temp", "0", "-n", "20", "-t", "1").StdOut;

        using var model = Model.Load(SharedData.Stories260K);
        var prompt = new ChatPrompt(model);
        string Answer(params TemplateMessage[] messages)
        {
            var text = ServerHost.RunAlone(model, prompt.Encode(messages), 20, SamplerOptions.Greedy);
            int cut = prompt.TemplateStops.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(text.Length).Min();
            return text[..cut];
        }
        string first = Answer(new("system", "Tell a story."), new("user", "A frog"));
        string afterReset = Answer(new("system", "Tell a story."), new("user", "A frog"));
        string expected = "> [system prompt set]\n> " + first + "\n> [history cleared]\n> " + afterReset + "\n> ";
        Assert.Equal(expected, output.Replace("\r\n", "\n"));
    }

    [Theory]
    [InlineData("--lookup", "2")]
    [InlineData("--model-draft", "@stories")]
    public void DraftsLeaveTheConversationUnchanged(string option, string value)
    {
        const string input = "Tom ran\nHe fell\n";
        string[] common = ["-m", SharedData.Stories260K, "--temp", "0", "-n", "16", "-t", "1"];
        string plain = RunChat(input, common).StdOut;
        string drafted = RunChat(input, [.. common, option, value == "@stories" ? SharedData.Stories260K : value, "--draft-max", "3", "--draft-min", "1"]).StdOut;
        Assert.Equal(plain, drafted);
    }

    [Fact]
    public void HistoryCarriesIntoTheNextTurn()
    {
        string output = RunChat("Tom ran\nHe fell\n", "-m", SharedData.Stories260K, "--temp", "0", "-n", "10", "-t", "1").StdOut;
        using var model = Model.Load(SharedData.Stories260K);
        var prompt = new ChatPrompt(model);
        string first = ServerHost.RunAlone(model, prompt.Encode([new("user", "Tom ran")]), 10, SamplerOptions.Greedy);
        string second = ServerHost.RunAlone(model, prompt.Encode([new("user", "Tom ran"), new("assistant", first), new("user", "He fell")]), 10, SamplerOptions.Greedy);
        Assert.Equal("> " + first + "\n> " + second + "\n> ", output.Replace("\r\n", "\n"));
    }
}

/// <summary>`clocklm serve` as a real process: it prints its address and answers on it.</summary>
public sealed class ServeCommandTests
{
    [Fact]
    public async Task ServeListensOnLoopbackWithAFreePortAndRequiresTheApiKey()
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "clocklm.dll"));
        foreach (var a in new[] { "serve", "-m", SharedData.Stories260K, "--port", "0", "--api-key", "k1", "-t", "1", "--parallel", "2" })
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        try
        {
            string? firstLine = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            var match = System.Text.RegularExpressions.Regex.Match(firstLine ?? "", @"listening on (http://127\.0\.0\.1:\d+/)");
            Assert.True(match.Success, firstLine);
            using var http = new HttpClient { BaseAddress = new Uri(match.Groups[1].Value) };
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await http.GetAsync("/health")).StatusCode);
            http.DefaultRequestHeaders.Authorization = new("Bearer", "k1");
            string models = await http.GetStringAsync("/v1/models");
            Assert.Contains("\"n_ctx\":512", models);
            Assert.Contains("\"slots\":2", models);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
    }
}
