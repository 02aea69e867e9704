namespace ClockLM.Tokenizers.ChatTemplates;

/// <summary>
/// A chat template could not be parsed or rendered. <see cref="Line"/> and <see cref="Column"/> (1-based)
/// point at the template text responsible; both are 0 when no position applies.
/// </summary>
public class ChatTemplateException : Exception
{
    /// <summary>1-based line in the template source, or 0.</summary>
    public int Line { get; }

    /// <summary>1-based column in the template source, or 0.</summary>
    public int Column { get; }

    /// <summary>The message without the position prefix.</summary>
    public string Reason { get; }

    public ChatTemplateException(int line, int column, string reason)
        : base(line > 0 ? $"chat template {line}:{column}: {reason}" : $"chat template: {reason}")
    {
        Line = line;
        Column = column;
        Reason = reason;
    }
}

/// <summary>The template text is not valid Jinja (or uses a construct ClockLM does not support).</summary>
public sealed class ChatTemplateSyntaxException(int line, int column, string reason)
    : ChatTemplateException(line, column, reason);

/// <summary>
/// Rendering hit one of the sandbox limits of <see cref="ChatTemplateOptions"/>
/// (loop iterations, call depth, nesting, output size, template size or time).
/// </summary>
public sealed class ChatTemplateLimitException(int line, int column, string limit, string reason)
    : ChatTemplateException(line, column, reason)
{
    /// <summary>Name of the limit that was exceeded, e.g. <c>MaxLoopIterations</c>.</summary>
    public string Limit { get; } = limit;
}

/// <summary>The template itself rejected its input by calling <c>raise_exception(message)</c>.</summary>
public sealed class ChatTemplateRaisedException(int line, int column, string templateMessage)
    : ChatTemplateException(line, column, $"raise_exception: {templateMessage}")
{
    /// <summary>The message the template passed to <c>raise_exception</c>.</summary>
    public string TemplateMessage { get; } = templateMessage;
}
