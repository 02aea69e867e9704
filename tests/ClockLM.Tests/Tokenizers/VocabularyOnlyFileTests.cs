using System.Net;
using System.Text;
using System.Text.Json;
using ClockLM.Models;
using ClockLM.Server;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Tokenizers;

/// <summary>llama.cpp's vocabulary-only ggml-vocab-*.gguf files (no tensors) load for tokenize, detokenize and the
/// server's /tokenize and /detokenize, as llama-tokenize loads them.</summary>
public sealed class VocabularyOnlyFileTests
{
    [Theory]
    [InlineData("ggml-vocab-gpt-2.gguf")]
    public void TokenizeAndDetokenizeCommandsReadAVocabularyOnlyFile(string name)
    {
        string path = SharedData.Vocab(name);
        var testCase = VocabTestFile.Read(path).First(c => c.Input.Trim().Length > 3 && !c.Input.Contains('\n'));
        var tokenize = ClockLMProcess.Run("tokenize", "-m", path, "--no-bos", "--ids", testCase.Input);
        Assert.Equal(0, tokenize.ExitCode);
        Assert.Equal("[" + string.Join(", ", testCase.Ids) + "]", tokenize.StdOut.Trim());

        var detokenize = ClockLMProcess.Run("detokenize", "-m", path, tokenize.StdOut.Trim());
        Assert.Equal(0, detokenize.ExitCode);
        Assert.Equal(Model.LoadTokenizer(path).Decode(testCase.Ids), detokenize.StdOut.TrimEnd('\n'));
    }

    [Fact]
    public void DetokenizeRefusesIdsOutsideTheVocabularyAndRunRefusesAVocabularyOnlyFile()
    {
        string path = SharedData.Vocab("ggml-vocab-llama-spm.gguf");
        var bad = ClockLMProcess.Run("detokenize", "-m", path, "1", "32000");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("token id '32000' is not an id of this vocabulary; expected 0 to 31999", bad.StdErr);
        var e = Assert.Throws<ClockLM.Gguf.GgufFormatException>(() => Model.Load(path));
        Assert.Contains("the file holds a vocabulary and no weights", e.Message);
    }

    [Fact]
    public async Task ServerTokenizesWithAVocabularyOnlyFile()
    {
        string path = SharedData.Vocab("ggml-vocab-llama-spm.gguf");
        Assert.True(Model.IsVocabularyOnly(path));
        await using var server = new ClockLMServer(Model.LoadTokenizer(path), path, new ServerOptions { Port = 0 });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        StringContent Json(string s) => new(s, Encoding.UTF8, "application/json");

        using var tokenized = await http.PostAsync("/tokenize", Json("""{"content":"Hello world","add_special":true}"""));
        Assert.Equal(HttpStatusCode.OK, tokenized.StatusCode);
        Assert.Equal("""{"tokens":[1,15043,3186]}""", await tokenized.Content.ReadAsStringAsync());
        using var text = await http.PostAsync("/detokenize", Json("""{"tokens":[1,15043,3186]}"""));
        Assert.Equal("""{"content":"Hello world"}""", await text.Content.ReadAsStringAsync());

        using var completion = await http.PostAsync("/v1/completions", Json("""{"prompt":"hi"}"""));
        Assert.Equal(HttpStatusCode.NotImplemented, completion.StatusCode);
        Assert.Equal("vocabulary_only", JsonDocument.Parse(await completion.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/metrics")).StatusCode);
    }
}
