using System.Diagnostics;
using System.Text;
using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Tests.Server;

/// <summary>Ctrl+C (SIGINT) in `clocklm chat` stops the answer being written and returns to the prompt.</summary>
public sealed class ChatInterruptTests
{
    [LinuxFact]
    public async Task InterruptStopsTheAnswerAndTheChatGoesOn()
    {
        using var dir = new TempDir();
        string path = dir.File("chat.gguf");
        // An answer of up to 60,000 tokens takes minutes, so the interrupt lands while it is being written even when a
        // busy machine lets this test read the first of it only seconds later (a 4000-token answer could end first).
        var config = new LlamaConfig(Dim: 512, HiddenDim: 1024, Layers: 4, Heads: 8, KvHeads: 4, VocabSize: 300, ContextLength: 65536);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(300), GgmlType.F32, seed: 3);
        // The end-of-sequence token's output row becomes zero, so under greedy decoding it never wins over the largest
        // of 299 random logits and the answer cannot end by itself before the interrupt.
        long eosRow;
        using (var file = GgufFile.Open(path))
        {
            var head = file.Tensors.Single(t => t.Name == "output.weight");
            eosRow = file.DataOffset + head.Offset + 2L * config.Dim * sizeof(float);
        }
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            stream.Position = eosRow;
            stream.Write(new byte[config.Dim * sizeof(float)]);
        }

        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "clocklm.dll"));
        foreach (var a in new[] { "chat", "-m", path, "--temp", "0", "-n", "60000", "--ctx", "65536", "-t", "1" })
            info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var output = new StringBuilder();
        var reader = Task.Run(() =>
        {
            var buffer = new char[256];
            int n;
            while ((n = process.StandardOutput.Read(buffer, 0, buffer.Length)) > 0)
                lock (output) output.Append(buffer, 0, n);
        });
        var stderr = process.StandardError.ReadToEndAsync();
        string Output() { lock (output) return output.ToString(); }
        static string Tail(string text) => text.Length <= 300 ? text : "..." + text[^300..];
        async Task<bool> WaitFor(Func<string, bool> condition, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < timeout)
            {
                if (condition(Output())) return true;
                await Task.Delay(10);
            }
            return false;
        }

        try
        {
            process.StandardInput.WriteLine("Tell me everything");
            process.StandardInput.Flush();
            // The answer has started: some text after the first prompt sign.
            Assert.True(await WaitFor(o => o.Length > "> ".Length + 20, TimeSpan.FromSeconds(60)), $"no answer began: '{Output()}'");

            using (var kill = Process.Start("kill", ["-INT", process.Id.ToString()])) kill.WaitForExit();
            Assert.True(await WaitFor(o => o.Contains(" [stopped]\n> "), TimeSpan.FromSeconds(30)), $"the answer was not stopped; it ends '{Tail(Output())}'");

            process.StandardInput.WriteLine("/exit");
            process.StandardInput.Flush();
            Assert.True(process.WaitForExit(30_000), "chat did not exit after /exit");
            await reader.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(0, process.ExitCode);
            string text = Output();
            // One answer, cut short, then the prompt again and nothing else.
            Assert.StartsWith("> ", text);
            Assert.EndsWith(" [stopped]\n> ", text.Replace("\r\n", "\n"));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}

/// <summary>A fact that runs on Linux (signals sent with kill(1)) and is reported skipped elsewhere.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "SIGINT is sent with kill(1), on Linux only";
    }
}
