using ClockLM.Formats;
using ClockLM.Gguf;

namespace ClockLM.Cli;

/// <summary>Runs a command body and turns the errors a user can cause into one line on stderr and exit code 1.</summary>
internal static class CommandErrors
{
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is GgufFormatException or ModelFormatException or FileNotFoundException
            or DirectoryNotFoundException or UnauthorizedAccessException or ArgumentException or UsageException
            or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}

/// <summary>A bad command-line value; the message says which option and what was expected.</summary>
internal sealed class UsageException(string message) : Exception(message);
