using System.Diagnostics;
using ClockLM.Tests.Cli;
using ClockLM.Training;

namespace ClockLM.Tests.Training;

public class TrainCommandTests
{
    private static readonly string[] TinyArgs =
    [
        "--dim", "32", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--ffn", "64", "--vocab", "320",
        "--context", "32", "--batch", "8", "--steps", "60", "--lr", "0.01", "--warmup", "5", "--seed", "3",
        "--checkpoint-every", "4", "--eval-every", "20",
    ];

    [Fact]
    public void KilledRunResumesFromItsLastCheckpointAndEndsAsAnUninterruptedRun()
    {
        using var dir = new TempDir();
        string data = dir.File("corpus.txt"), output = Path.Combine(Directory.CreateDirectory(dir.File("cli")).FullName, "tiny.gguf");
        File.WriteAllText(data, TinyCorpus.Text());
        string[] args = ["train", "--data", data, "--out", output, .. TinyArgs];

        // Start the command and kill it once it has written its checkpoint after step 8.
        var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "clocklm.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        using (var process = Process.Start(info)!)
        {
            _ = process.StandardOutput.ReadToEndAsync();
            string? line;
            while ((line = process.StandardError.ReadLine()) != null)
                if (line.StartsWith("step 8/60 ", StringComparison.Ordinal) && line.EndsWith("checkpoint", StringComparison.Ordinal))
                {
                    process.Kill(entireProcessTree: true);
                    break;
                }
            process.WaitForExit();
            Assert.NotNull(line); // it was killed, not finished
        }
        Assert.False(File.Exists(output));
        int saved = TrainingCheckpoint.Load(output + ".ckpt").Step;
        Assert.True(saved >= 8 && saved % 4 == 0, $"checkpoint at step {saved}");

        var resumed = ClockLMProcess.Run([.. args, "--resume"]);
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        var steps = resumed.StdErr.Split('\n').Where(l => l.StartsWith("step ", StringComparison.Ordinal)).ToList();
        Assert.StartsWith($"step {saved + 1}/60 ", steps[0]);
        Assert.StartsWith("step 60/60 ", steps[^1]);
        Assert.Contains($"resumed from step {saved}", resumed.StdErr);

        // The same run in-process, never stopped, exports the same file byte for byte.
        var options = LlamaTrainingTests.Tiny with { Steps = 60, CheckpointEvery = 4, EvalEvery = 20, EvalBatches = 4 };
        var uninterrupted = LlamaTrainer.Train(TinyCorpus.Text(), options);
        string reference = Path.Combine(Directory.CreateDirectory(dir.File("reference")).FullName, "tiny.gguf");
        uninterrupted.Model.ExportGguf(reference, "tiny", uninterrupted.Tokenizer);
        Assert.Equal(File.ReadAllBytes(reference), File.ReadAllBytes(output));
    }

    [Fact]
    public void ABadShapeIsAUsageError()
    {
        using var dir = new TempDir();
        string data = dir.File("corpus.txt");
        File.WriteAllText(data, TinyCorpus.Text());
        var result = ClockLMProcess.Run("train", "--data", data, "--out", dir.File("x.gguf"), "--dim", "30", "--heads", "4");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("dim 30 is not a multiple of the head count 4", result.StdErr);
    }

    [Fact]
    public void AMissingValidationTextOrBadThreadCountIsAUsageError()
    {
        using var dir = new TempDir();
        string data = dir.File("corpus.txt");
        File.WriteAllText(data, TinyCorpus.Text());
        var missing = ClockLMProcess.Run("train", "--data", data, "--validation", dir.File("ruth.txt"), "--out", dir.File("x.gguf"));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("ruth.txt: no such validation text", missing.StdErr);
        var threads = ClockLMProcess.Run("train", "--data", data, "--out", dir.File("x.gguf"), "--threads", "-1");
        Assert.Equal(1, threads.ExitCode);
        Assert.Contains("--threads -1", threads.StdErr);
        Assert.False(File.Exists(dir.File("x.gguf")));
    }
}
