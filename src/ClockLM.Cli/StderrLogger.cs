using Microsoft.Extensions.Logging;

namespace ClockLM.Cli;

/// <summary>Writes what the library logs at <paramref name="minimum"/> or above to stderr, one line each
/// (<c>warning: ...</c>): the command line's view of a model load's fallbacks.</summary>
internal sealed class StderrLogger(LogLevel minimum) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        string level = logLevel switch { LogLevel.Warning => "warning", >= LogLevel.Error => "error", _ => "info" };
        Console.Error.WriteLine($"{level}: {formatter(state, exception)}");
    }
}
