using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace ClockLM.Tests.Deploy;

/// <summary>A `clocklm serve` process on 127.0.0.1 (stories260K unless told otherwise), ended by SIGTERM or killed on dispose.</summary>
public sealed class ServeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stderr;

    private ServeProcess(Process process, Task<string> stderr, Uri address)
    {
        _process = process;
        _stderr = stderr;
        Address = address;
    }

    /// <summary>Where it listens.</summary>
    public Uri Address { get; }

    /// <summary>Its TCP port.</summary>
    public int Port => Address.Port;

    /// <summary>Starts <c>dotnet DLL serve ...</c> (the tests' clocklm.dll unless <paramref name="dll"/> is given) on
    /// <paramref name="port"/> (0: a free one) and waits for its "listening on" line.</summary>
    public static async Task<ServeProcess> StartAsync(int port, IEnumerable<string> arguments, string? dll = null)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll ?? Path.Combine(AppContext.BaseDirectory, "clocklm.dll"));
        foreach (var a in arguments) info.ArgumentList.Add(a);
        info.ArgumentList.Add("--port");
        info.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
        var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string? line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(120));
        var match = Regex.Match(line ?? "", @"listening on (http://[^ ]+/)");
        if (!match.Success)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"clocklm serve did not start: '{line}' {await stderr}");
        }
        _ = process.StandardOutput.ReadToEndAsync(); // keep the pipe drained
        return new ServeProcess(process, stderr, new Uri(match.Groups[1].Value));
    }

    /// <summary>The arguments of a replica of the test model.</summary>
    public static string[] Replica(int slots) =>
        ["serve", "-m", ClockLM.Tests.SharedData.Stories260K, "-t", "1", "--parallel", slots.ToString(CultureInfo.InvariantCulture), "--ctx", "2048"];

    /// <summary>Sends SIGTERM: the server drains and exits.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    /// <summary>Waits for the process to exit; returns its exit code and standard error.</summary>
    public async Task<(int ExitCode, string StdErr)> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        return (_process.ExitCode, await _stderr);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
