using ClockLM.Formats;
using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Cli;

/// <summary>Runs a command body and turns the errors a user can cause into one line on stderr and exit code 1: bad files
/// and arguments, chat templates that do not parse or render, numbers that overflow, memory that does not suffice, and
/// models that compute non-finite logits.</summary>
internal static class CommandErrors
{
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    /// <summary>Errors a user can cause (a file, an argument, a template, a model's numbers, the machine's memory),
    /// reported as one line; anything else is a bug in ClockLM and keeps its stack trace.</summary>
    public static bool IsUserError(Exception e) => e is GgufFormatException or ModelFormatException or FileNotFoundException
        or DirectoryNotFoundException or UnauthorizedAccessException or ArgumentException or UsageException
        or IOException or ChatTemplateException or OverflowException or OutOfMemoryException or NonFiniteOutputException;
}

/// <summary>A bad command-line value; the message says which option and what was expected.</summary>
internal sealed class UsageException(string message) : Exception(message);
