using System.Diagnostics;

namespace ClockLM.Tests.Cli;

/// <summary>The `clocklm` command packs as a .NET tool that installs and runs the built-in model from the package alone.</summary>
public class DotnetToolTests
{
    [Fact]
    public void TheToolPackageInstallsAndRunsTheBuiltInModel()
    {
        using var dir = new TempDir();
        string packages = dir.File("packages"), tools = dir.File("tools");
        // The CLI was built beside the tests, in the tests' configuration: pack that build, under a version of its own.
        string configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        string version = $"0.0.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}";
        Dotnet(TimeSpan.FromMinutes(3), "pack", Path.Combine(SharedData.RepoRoot, "src", "ClockLM.Cli", "ClockLM.Cli.csproj"),
            "-c", configuration, "--no-build", "-o", packages, $"-p:PackageVersion={version}", "-nodeReuse:false");
        Assert.True(File.Exists(Path.Combine(packages, $"ClockLM.Cli.{version}.nupkg")));

        Dotnet(TimeSpan.FromMinutes(3), "tool", "install", "--tool-path", tools, "--add-source", packages, "--version", version, "ClockLM.Cli");
        var run = Start(Path.Combine(tools, "clocklm"), TimeSpan.FromMinutes(1), "run", "--temp", "0", "-n", "8", "In the beginning");
        Assert.True(run.ExitCode == 0, $"clocklm run exited {run.ExitCode}: {run.StdErr}");
        Assert.StartsWith("In the beginning", run.StdOut);
        Assert.Contains("decode: 8 tokens", run.StdErr);

        // The same continuation as the command built from the repository.
        var local = ClockLMProcess.Run("run", "--temp", "0", "-n", "8", "In the beginning");
        Assert.Equal(local.StdOut, run.StdOut);
    }

    private static void Dotnet(TimeSpan timeout, params string[] args)
    {
        var result = Start("dotnet", timeout, args);
        Assert.True(result.ExitCode == 0, $"dotnet {string.Join(' ', args)} exited {result.ExitCode}:\n{result.StdOut}\n{result.StdErr}");
    }

    private static ClockLMProcess.Result Start(string file, TimeSpan timeout, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeout}");
        }
        return new ClockLMProcess.Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
