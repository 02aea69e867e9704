using ClockLM.Chat;
using ClockLM.Server;

namespace ClockLM.Tests.Server;

/// <summary>The models folder: names and aliases, loading on use, the memory budget (least recently used first), keep-alive.</summary>
public sealed class ModelRegistryTests
{
    private static readonly SlotSchedulerOptions Small = new() { Slots = 1, ContextLength = 64 };

    [Fact]
    public async Task TheBudgetUnloadsTheLeastRecentlyUsedIdleModel()
    {
        await using var folder = new ModelFolder();
        File.Copy(folder.Stories, Path.Combine(folder.Path, "s2.gguf"));
        File.Copy(folder.Stories, Path.Combine(folder.Path, "s3.gguf"));
        long storiesBytes;
        using (var unlimited = ModelRegistry.FromFolder(folder.Path, new ModelFolderOptions { Scheduler = Small }))
        using (var lease = unlimited.Acquire(unlimited.Find("stories260K"), null))
            storiesBytes = lease.Model.Bytes;
        // File plus the KV cache of one slot of 64 positions: 5 layers, K and V of 32 F16 values (the default cache type).
        Assert.Equal(new FileInfo(folder.Stories).Length + 64 * 5 * 2 * 32 * 2, storiesBytes);

        using var registry = ModelRegistry.FromFolder(folder.Path, new ModelFolderOptions { Scheduler = Small, MaxLoadedBytes = 2 * storiesBytes });
        void Use(string name) => registry.Acquire(registry.Find(name), null).Dispose();
        string[] Loaded() => registry.Loaded.Select(m => m.Entry.Name).Order().ToArray();
        Use("stories260K");
        Use("s2");
        Use("stories260K"); // now s2 is the least recently used
        Use("s3");
        Assert.Equal(["s3", "stories260K"], Loaded());

        // Models in use are never unloaded: with both held, a third cannot load (503), and nothing was unloaded for it.
        using (registry.Acquire(registry.Find("s3"), null))
        using (registry.Acquire(registry.Find("stories260K"), null))
        {
            var busy = Assert.Throws<ApiException>(() => registry.Acquire(registry.Find("s2"), null));
            Assert.Equal(503, busy.Status);
            Assert.Equal("insufficient_memory", busy.Code);
            Assert.Equal(["s3", "stories260K"], Loaded());
        }
        var tooLarge = Assert.Throws<ApiException>(() => registry.Acquire(registry.Find("kjv"), null));
        Assert.Contains("needs about", tooLarge.Message);
        Assert.Equal("model_too_large", tooLarge.Code);
        Assert.Equal(registry.Loaded.Sum(m => m.Scheduler.Stats.Slots), registry.Stats.Slots);
    }

    [Fact]
    public async Task KeepAliveZeroUnloadsWhenTheLastRequestEnds()
    {
        await using var folder = new ModelFolder();
        using var registry = ModelRegistry.FromFolder(folder.Path, new ModelFolderOptions { Scheduler = Small });
        var entry = registry.Find("kjv:latest");
        Assert.Equal("kjv", entry.Name);
        var first = registry.Acquire(entry, TimeSpan.Zero);
        var second = registry.Acquire(registry.Find("clocklm-kjv"), TimeSpan.Zero); // the alias's file: the same model
        Assert.Same(first.Model, second.Model);
        first.Dispose();
        Assert.Single(registry.Loaded); // still in use by the second request
        second.Dispose();
        Assert.Empty(registry.Loaded);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("""{"models": {}}""", "unknown field 'models'; expected only 'aliases'")]
    [InlineData("""{"aliases": {"x": "missing.gguf"}}""", "aliases.x is 'missing.gguf'; expected one of the .gguf files")]
    [InlineData("""{"aliases": {"x": 3}}""", "aliases.x must be a string")]
    [InlineData("""{"aliases": {"Stories260K": "clocklm-kjv.gguf"}}""", "the name 'Stories260K' is taken twice")]
    [InlineData("""{"aliases": {"a b": "clocklm-kjv.gguf"}}""", "expected a non-empty name without spaces")]
    public async Task ABadModelsJsonIsOneClearError(string json, string expected)
    {
        await using var folder = new ModelFolder();
        File.WriteAllText(Path.Combine(folder.Path, "models.json"), json);
        var error = Assert.Throws<ArgumentException>(() => ModelRegistry.FromFolder(folder.Path));
        Assert.Contains("models.json", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void AFolderWithoutModelsIsAnError()
    {
        using var dir = new TempDir();
        Assert.Contains("no .gguf model files", Assert.Throws<ArgumentException>(() => ModelRegistry.FromFolder(dir.Path)).Message);
        Assert.Throws<DirectoryNotFoundException>(() => ModelRegistry.FromFolder(dir.File("none")));
    }

    [Theory]
    [InlineData("5m", 300.0)]
    [InlineData("1h30m", 5400.0)]
    [InlineData("300ms", 0.3)]
    [InlineData("0", 0.0)]
    [InlineData("90", 90.0)]
    [InlineData("2.5s", 2.5)]
    public void KeepAliveReadsGoDurations(string text, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), ModelFolderOptions.ParseKeepAlive(text));

    [Theory]
    [InlineData("-1")]
    [InlineData("-5m")]
    public void ANegativeKeepAliveIsForever(string text) => Assert.Equal(Timeout.InfiniteTimeSpan, ModelFolderOptions.ParseKeepAlive(text));

    [Theory]
    [InlineData("soon")]
    [InlineData("5x")]
    [InlineData("m")]
    [InlineData("")]
    public void ANonDurationIsRefused(string text) => Assert.Null(ModelFolderOptions.ParseKeepAlive(text));
}
