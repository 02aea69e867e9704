using ClockLM.Clock;
using ClockLM.Models;
using Microsoft.Playwright;

namespace ClockLM.Tests.Clock;

/// <summary>The HTML report rendered in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no download).
/// Skipped, with the install command, where the browser is missing.</summary>
public class HtmlReportBrowserTests
{
    private const string ChromiumPath = ChromiumFactAttribute.ChromiumPath;

    /// <summary>A report of "Once upon a time" and 3 greedy tokens on stories260K.</summary>
    private static (string Path, int Passes, int Tokens) WriteReport(TempDir dir)
    {
        using var model = Model.Load(SharedData.Stories260K);
        var trace = ClockTrace.Run(model.CreateTransformer(32), ReferenceOutputs.Stories260K[0].Ids[..5], 3);
        string path = dir.File("report.html");
        HtmlReport.Write(trace, id => model.Tokenizer.GetPiece(id), "stories260K <trace> & \"report\"", path);
        return (path, trace.Passes.Length, trace.Tokens.Length);
    }

    /// <summary>Chromium with a fresh profile folder (a persistent context is how Playwright takes a user-data dir).</summary>
    private static async Task<IBrowserContext> LaunchChromium(IPlaywright playwright, string profile, ViewportSize? viewport = null)
    {
        return await playwright.Chromium.LaunchPersistentContextAsync(profile, new BrowserTypeLaunchPersistentContextOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            ViewportSize = viewport,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync"],
        });
    }

    [ChromiumFact]
    public async Task ReportRendersInChromiumWithoutScriptErrorsOrNetwork()
    {
        using var dir = new TempDir();
        var (path, passes, tokens) = WriteReport(dir);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchChromium(playwright, dir.File("profile"));
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        var requests = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        page.Console += (_, m) => { if (m.Type == "error") errors.Add(m.Text); };
        page.Request += (_, r) => { if (!r.Url.StartsWith("file:")) requests.Add(r.Url); };

        await page.GotoAsync(new Uri(path).AbsoluteUri);
        await page.WaitForSelectorAsync("body[data-rendered=true]", new() { Timeout = 15000 });

        Assert.Empty(errors);
        Assert.Empty(requests);
        Assert.Equal("stories260K <trace> & \"report\"", await page.TitleAsync());
        // Timeline: per pass (the prompt's chunk, then each generated token), an embedding, 5 cycles × 5 stages and a commit.
        Assert.Equal(4, passes);
        Assert.Equal(passes * (1 + 25 + 1), await page.Locator("#timeline rect").CountAsync());
        // Lens grid: a header row plus one row per cycle, one cell per position.
        Assert.Equal(1 + 5, await page.Locator("#lens tr").CountAsync());
        Assert.Equal(5 * tokens, await page.Locator("#lens td").CountAsync());
        // The last cycle of the last prompt token (position 4) predicts ',' as the model does.
        string cell = await page.Locator("#lens tr").Nth(5).Locator("td").Nth(4).InnerTextAsync();
        Assert.StartsWith("\",\"", cell);
        // Attention: one heatmap per layer and head.
        Assert.Equal(5 * 8, await page.Locator("canvas.heatmap").CountAsync());
    }

    [ChromiumFact]
    public async Task ScreenshotOfTheReportIsAPictureOfIt()
    {
        using var dir = new TempDir();
        var (path, _, _) = WriteReport(dir);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchChromium(playwright, dir.File("profile"), new() { Width = 1200, Height = 900 });
        var page = await browser.NewPageAsync();
        await page.GotoAsync(new Uri(path).AbsoluteUri);
        await page.WaitForSelectorAsync("body[data-rendered=true]", new() { Timeout = 15000 });
        byte[] png = await page.ScreenshotAsync(new() { FullPage = true });
        File.WriteAllBytes(dir.File("report.png"), png);

        // PNG signature, then IHDR: width and height, big-endian, at bytes 16..23.
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        int width = (png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19];
        int height = (png[20] << 24) | (png[21] << 16) | (png[22] << 8) | png[23];
        Assert.Equal(1200, width);
        Assert.True(height > 900, $"a full-page screenshot of the report should be taller than the viewport, got {height}");
        // A blank page compresses to almost nothing; the timeline, grid and heatmaps do not.
        Assert.True(png.Length > 20_000, $"screenshot is only {png.Length} bytes");
        // The stage colour of execute (#d35400) appears in the timeline.
        var timeline = await page.Locator("#timeline rect[fill='#d35400']").CountAsync();
        Assert.True(timeline > 0);
    }

    [Fact]
    public void BrowserTestsSkipVisiblyWhereChromiumIsMissingAndRunWhereItIsPresent()
    {
        string? reason = ChromiumFactAttribute.SkipReason("/nonexistent/chromium");
        Assert.Equal("/nonexistent/chromium is missing: this test needs Debian's chromium package; install it with 'apt-get install -y chromium' (.ci/run does)", reason);
        Assert.Equal(File.Exists(ChromiumPath) ? null : ChromiumFactAttribute.SkipReason(ChromiumPath), new ChromiumFactAttribute().Skip);
        // The two browser tests carry the attribute, so they are reported as skipped rather than failed.
        foreach (string test in new[] { nameof(ReportRendersInChromiumWithoutScriptErrorsOrNetwork), nameof(ScreenshotOfTheReportIsAPictureOfIt) })
            Assert.Single(typeof(HtmlReportBrowserTests).GetMethod(test)!.GetCustomAttributes(typeof(ChromiumFactAttribute), false));
        Assert.Contains("apt-get install -y -qq chromium", File.ReadAllText(Path.Combine(SharedData.RepoRoot, ".ci", "run")));
    }
}
