using System.Diagnostics;

namespace ClockLM.Cli;

/// <summary>
/// A one-line progress bar on stderr, redrawn at most ten times a second: <c>label [#####-----]  42%  12 s</c>.
/// Drawn only when stderr is a terminal, so logs and pipes get no carriage-return noise; Dispose ends the line.
/// </summary>
internal sealed class ProgressBar(string label) : IProgress<double>, IDisposable
{
    private const int Width = 30;
    private readonly bool _visible = !Console.IsErrorRedirected;
    private readonly long _started = Stopwatch.GetTimestamp();
    private long _drawnAt;
    private double _fraction;
    private bool _drawn;

    public void Report(double value)
    {
        _fraction = Math.Clamp(value, 0, 1);
        if (!_visible) return;
        long now = Stopwatch.GetTimestamp();
        if (_drawn && _fraction < 1 && Stopwatch.GetElapsedTime(_drawnAt, now) < TimeSpan.FromMilliseconds(100)) return;
        _drawnAt = now;
        Draw();
    }

    private void Draw()
    {
        int filled = (int)(_fraction * Width);
        var elapsed = Stopwatch.GetElapsedTime(_started);
        Console.Error.Write($"\r{label} [{new string('#', filled)}{new string('-', Width - filled)}] {_fraction,4:P0}  {elapsed.TotalSeconds:F0} s ");
        _drawn = true;
    }

    public void Dispose()
    {
        if (!_drawn) return;
        Draw();
        Console.Error.WriteLine();
    }
}
