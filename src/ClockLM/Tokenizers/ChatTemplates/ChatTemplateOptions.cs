namespace ClockLM.Tokenizers.ChatTemplates;

/// <summary>
/// Sandbox limits for parsing and rendering a chat template. A template comes from a model file, so it is
/// untrusted input: every limit ends rendering with a <see cref="ChatTemplateLimitException"/>.
/// </summary>
public sealed record ChatTemplateOptions
{
    /// <summary>Default limits.</summary>
    public static ChatTemplateOptions Default { get; } = new();

    /// <summary>Longest template source accepted, in characters.</summary>
    public int MaxTemplateChars { get; init; } = 1 << 20;

    /// <summary>Longest rendered prompt, and longest string any expression may build, in characters.</summary>
    public int MaxOutputChars { get; init; } = 16 << 20;

    /// <summary>Total iterations of all <c>for</c> loops in one render.</summary>
    public long MaxLoopIterations { get; init; } = 1_000_000;

    /// <summary>Deepest chain of macro calls.</summary>
    public int MaxCallDepth { get; init; } = 64;

    /// <summary>Deepest nesting of statements or expressions in the source.</summary>
    public int MaxNestingDepth { get; init; } = 128;

    /// <summary>Longest list a template may build (e.g. <c>range(n)|list</c>, <c>[x] * n</c>).</summary>
    public int MaxListLength { get; init; } = 1 << 20;

    /// <summary>Wall-clock budget for one render.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The clock <c>strftime_now</c> reads (local time in Python; defaults to <see cref="DateTime.Now"/>).</summary>
    public Func<DateTime> Now { get; init; } = () => DateTime.Now;
}
