namespace ClockLM.Tests;

/// <summary>Locates the repository and the shared data folder (../shared beside the repository, or $CLOCKLM_SHARED).</summary>
public static class SharedData
{
    /// <summary>The repository root (the folder holding ClockLM.slnx).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The shared data folder.</summary>
    public static string Root { get; } =
        Environment.GetEnvironmentVariable("CLOCKLM_SHARED") is { Length: > 0 } env
            ? env
            : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static string Stories260K => Path.Combine(Root, "models", "stories260K", "stories260K.bin");
    public static string Tok512 => Path.Combine(Root, "models", "stories260K", "tok512.bin");
    public static string Vocab(string name) => Path.Combine(Root, "vocab", name);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ClockLM.slnx")))
                return dir.FullName;
        throw new InvalidOperationException($"no ClockLM.slnx above {AppContext.BaseDirectory}");
    }
}

/// <summary>A temporary directory removed when disposed.</summary>
public sealed class TempDir : IDisposable
{
    /// <summary>A new directory under the system's temporary folder, or under <paramref name="under"/>.</summary>
    public TempDir(string? under = null)
    {
        Path = under is null
            ? Directory.CreateTempSubdirectory("clocklm-test-").FullName
            : Directory.CreateDirectory(System.IO.Path.Combine(under, $"clocklm-test-{Guid.NewGuid():N}")).FullName;
    }

    public string Path { get; }
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
