using System.Text.Json;
using ClockLM.Tests.Server;

namespace ClockLM.Tests.Cli;

/// <summary>`clocklm list`, `clocklm show` and `clocklm inspect --json` over a models folder.</summary>
public class ModelListingTests
{
    [Fact]
    public async Task ListPrintsOneLinePerModelAndJsonForScripts()
    {
        await using var folder = new ModelFolder();
        var table = ClockLMProcess.Run("list", "--models-dir", folder.Path);
        Assert.Equal(0, table.ExitCode);
        var lines = table.StdOut.TrimEnd().Split('\n');
        Assert.Matches(@"^NAME\s+ARCH\s+PARAMS\s+TYPE\s+SIZE\s+CONTEXT\s+MODIFIED$", lines[0]);
        Assert.Equal(4, lines.Length);
        Assert.Matches(@"^clocklm-kjv\s+llama\s+6\.6M\s+F16\s+13\.2 MB\s+512\s+\d{4}-\d\d-\d\d \d\d:\d\d$", lines[1]);
        Assert.Matches(@"^kjv\s+llama\s+6\.6M\s+F16", lines[2]);
        Assert.Matches(@"^stories260K\s+llama\s+260K\s+F32\s+1\.1 MB\s+512\s", lines[3]);

        var json = ClockLMProcess.Run("list", "--models-dir", folder.Path, "--json");
        Assert.Equal(0, json.ExitCode);
        using var document = JsonDocument.Parse(json.StdOut);
        var stories = document.RootElement.EnumerateArray().Single(m => m.GetProperty("name").GetString() == "stories260K");
        Assert.Equal(new FileInfo(folder.Stories).Length, stories.GetProperty("size").GetInt64());
        Assert.Equal(512, stories.GetProperty("context_length").GetInt32());
        Assert.Equal(JsonValueKind.Null, stories.GetProperty("chat_template").ValueKind);
        Assert.Equal(5, stories.GetProperty("layers").GetInt32());
    }

    [Fact]
    public async Task ShowPrintsTheModelAndItsTemplate()
    {
        await using var folder = new ModelFolder();
        var shown = ClockLMProcess.Run("show", "--models-dir", folder.Path, "kjv");
        Assert.Equal(0, shown.ExitCode);
        Assert.Matches(@"architecture\s+llama", shown.StdOut);
        Assert.Matches(@"parameters\s+6\.6M \(6557952\)", shown.StdOut);
        Assert.Matches(@"context length\s+512", shown.StdOut);
        Assert.Matches(@"heads\s+8 \(4 for keys and values\)", shown.StdOut);
        Assert.Contains("Chat template (none in the file: ChatML is used)", shown.StdOut);

        var byPath = ClockLMProcess.Run("show", folder.Stories, "--json");
        Assert.Equal(0, byPath.ExitCode);
        using var document = JsonDocument.Parse(byPath.StdOut);
        Assert.Equal("stories260K", document.RootElement.GetProperty("name").GetString());
        Assert.Equal(260_032, document.RootElement.GetProperty("parameters").GetInt64());

        var missing = ClockLMProcess.Run("show", "--models-dir", folder.Path, "llama3");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no model 'llama3' in", missing.StdErr);
        Assert.Contains("available: clocklm-kjv, kjv, stories260K", missing.StdErr);
    }

    [Fact]
    public async Task InspectJsonHoldsTheMetadataAndTensorTable()
    {
        await using var folder = new ModelFolder();
        var result = ClockLMProcess.Run("inspect", "--json", folder.Stories);
        Assert.Equal(0, result.ExitCode);
        using var document = JsonDocument.Parse(result.StdOut);
        var root = document.RootElement;
        Assert.Equal(3, root.GetProperty("version").GetInt32());
        var metadata = root.GetProperty("metadata");
        Assert.Equal("llama", metadata.GetProperty("general.architecture").GetString());
        Assert.Equal(5, metadata.GetProperty("llama.block_count").GetInt32());
        Assert.Equal(512, metadata.GetProperty("tokenizer.ggml.tokens").GetArrayLength());
        var tensors = root.GetProperty("tensors").EnumerateArray().ToList();
        Assert.Equal(47, tensors.Count);
        var down = tensors.Single(t => t.GetProperty("name").GetString() == "blk.0.ffn_down.weight");
        Assert.Equal([172, 64], down.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal(44032, down.GetProperty("bytes").GetInt64());
    }
}
