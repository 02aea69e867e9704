using System.Text.Json;
using ClockLM.Tests.Sampling;

namespace ClockLM.Tests.Cli;

/// <summary>`clocklm run --grammar/--json-schema` and `clocklm chat --tools`, run as the real command.</summary>
public sealed class StructuredCommandTests
{
    private const string Schema = """{"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 50}, "ok": {"type": "boolean"}}, "required": ["n", "ok"], "additionalProperties": false}""";

    [Fact]
    public void RunWithAnInlineSchemaAndJsonOutputGivesValidJson()
    {
        var r = ClockLMProcess.Run("run", "--temp", "1", "--seed", "3", "-n", "120", "--json", "--json-schema", Schema, "In the beginning");
        Assert.True(r.ExitCode == 0, r.StdErr);
        using var output = JsonDocument.Parse(r.StdOut);
        string text = output.RootElement.GetProperty("text").GetString()!;
        JsonSchemaGrammarTests.AssertValid(Schema, text, "clocklm run --json-schema");
        Assert.True(output.RootElement.GetProperty("grammar_complete").GetBoolean());
    }

    [Fact]
    public void RunWithAGrammarFileFollowsIt()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("answer.gbnf"), "# yes or no\nroot ::= \" \" (\"yea\" | \"nay\") \"!\"\n");
        var r = ClockLMProcess.Run("run", "--temp", "1", "-n", "20", "--grammar", dir.File("answer.gbnf"), "And he said");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Matches("^And he said (yea|nay)!\\s*$", r.StdOut);
    }

    [Fact]
    public void GrammarAndSchemaErrorsNameTheFilePlaceAndKeyword()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("bad.gbnf"), "root ::= \"a\"\nitem ::= [0-\n");
        var r = ClockLMProcess.Run("run", "-n", "5", "--grammar", dir.File("bad.gbnf"), "x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"{dir.File("bad.gbnf")}:2:10: unterminated character class", r.StdErr);

        r = ClockLMProcess.Run("run", "-n", "5", "--json-schema", """{"type": "string", "format": "email"}""", "x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("format 'email' is not supported", r.StdErr);

        r = ClockLMProcess.Run("run", "-n", "5", "--grammar", "a.gbnf", "--json-schema", "{}", "x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("give only one", r.StdErr);
    }

    [Fact]
    public void ChatWithToolsShowsTheCallAndTakesItsResult()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tools.json"), """[{"type": "function", "function": {"name": "time", "description": "The time now", "parameters": {"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"]}}}]""");
        var r = ClockLMProcess.RunWithInput("What time is it?\n/result 12:00\n/exit\n", TimeSpan.FromMinutes(2),
            "chat", "--tools", dir.File("tools.json"), "--tool-choice", "required", "-n", "160", "--ctx", "1024", "--temp", "1");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.Matches("\\[tool call call_[0-9a-f]+: time\\(\\{\"zone\": ?\"(UTC|CET)\"\\}\\)\\]", r.StdOut);
        Assert.Contains("/result TEXT gives each its result", r.StdOut);
        Assert.DoesNotContain("no tool call is waiting", r.StdOut);

        r = ClockLMProcess.Run("chat", "--tools", dir.File("tools.json"), "--tool-choice", "clock");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--tool-choice is 'clock'", r.StdErr);
    }
}
