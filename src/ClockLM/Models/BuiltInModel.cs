namespace ClockLM.Models;

/// <summary>
/// The model ClockLM trained itself on the King James Bible (6.6M parameters, models/README.md): it ships beside every
/// application that uses ClockLM (the package copies it to <c>models/clocklm-kjv.gguf</c> in the output folder), so
/// that ClockLM runs offline with no download.
/// </summary>
public static class BuiltInModel
{
    /// <summary>The file's name.</summary>
    public const string FileName = "clocklm-kjv.gguf";

    /// <summary>Where the built-in model is: <c>models/clocklm-kjv.gguf</c> beside the application.</summary>
    public static string Path => System.IO.Path.Combine(AppContext.BaseDirectory, "models", FileName);

    /// <summary>Opens the built-in model.</summary>
    /// <exception cref="FileNotFoundException">The file is not beside the application (it was not copied to the output).</exception>
    public static Model Load()
    {
        string path = Path;
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: the built-in model is not beside the application; it is copied there from the ClockLM package or project at build time", path);
        return Model.Load(path);
    }
}
