namespace ClockLM.Tests.Clock;

/// <summary>
/// A test that drives Debian's Chromium (<c>/usr/bin/chromium</c>, through Playwright; no browser download). Where the
/// README's set-up alone was followed, Chromium is missing: the test is then reported as skipped, naming the package
/// and the command that installs it, instead of failing. CI's .ci/run installs it, so there the test runs.
/// </summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    /// <summary>Where Debian's chromium package puts the browser.</summary>
    public const string ChromiumPath = "/usr/bin/chromium";

    public ChromiumFactAttribute() => Skip = SkipReason(ChromiumPath);

    /// <summary>Why a test needing the browser at <paramref name="path"/> cannot run here, or null when it can.</summary>
    public static string? SkipReason(string path) => File.Exists(path)
        ? null
        : $"{path} is missing: this test needs Debian's chromium package; install it with 'apt-get install -y chromium' (.ci/run does)";
}
