namespace ClockLM.Models;

/// <summary>
/// Reads a model file once from start to end, so its pages are in the operating system's page cache before the first
/// token needs them: a multi-GB file on a cold disk otherwise stalls the first cycles on page faults, with nothing to
/// show for it. Sequential reads of 4 MB are the fastest way to fill the cache; a file already cached reads at memory speed.
/// </summary>
public static class PageCache
{
    /// <summary>Files at least this large are worth warming with a progress bar (256 MiB).</summary>
    public const long LargeFileBytes = 256L << 20;

    /// <summary>Reads <paramref name="path"/> through; <paramref name="progress"/> hears the fraction read (0 to 1).</summary>
    public static void Fill(string path, IProgress<double>? progress = null, CancellationToken cancellation = default)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        long length = Math.Max(1, stream.Length), read = 0;
        var buffer = new byte[4 << 20];
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            cancellation.ThrowIfCancellationRequested();
            read += n;
            progress?.Report((double)read / length);
        }
    }
}
