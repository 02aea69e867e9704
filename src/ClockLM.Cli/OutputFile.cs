namespace ClockLM.Cli;

/// <summary>A file a command writes: it must not be one of the files the command reads (through a symbolic link
/// either), or the command would destroy its own input.</summary>
internal static class OutputFile
{
    /// <summary>Throws a <see cref="UsageException"/> when <paramref name="output"/> names the same file as one of
    /// <paramref name="inputs"/> (null inputs are skipped).</summary>
    public static void CheckNotAnInput(string output, params (string? Path, string Role)[] inputs)
    {
        string target = Resolve(output);
        foreach (var (path, role) in inputs)
            if (path is not null && string.Equals(Resolve(path), target, StringComparison.Ordinal))
                throw new UsageException($"the output {output} is the {role} ({path}); write to another file");
    }

    private static string Resolve(string path)
    {
        var file = new FileInfo(Path.GetFullPath(path));
        return file.Exists && file.ResolveLinkTarget(returnFinalTarget: true) is { } link ? link.FullName : file.FullName;
    }
}
