using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>The models folder `clocklm list` and `clocklm show` read (as `clocklm serve --models-dir` serves it), and
/// how they print a model: as Ollama's list and show do, or as JSON for scripts.</summary>
internal static class ModelFolderOption
{
    public static Option<string> Create() => new("--models-dir")
    {
        Description = "Folder of .gguf models (and models.json aliases); default: the folder of the built-in model",
        DefaultValueFactory = _ => Path.GetDirectoryName(BuiltInModel.Path)!,
    };

    /// <summary>Bytes in decimal units, as Ollama prints them: 4.5 MB, 637 MB, 4.1 GB.</summary>
    public static string Size(long bytes) => bytes switch
    {
        >= 1_000_000_000 => (bytes / 1e9).ToString("0.0", CultureInfo.InvariantCulture) + " GB",
        >= 1_000_000 => (bytes / 1e6).ToString(bytes >= 100_000_000 ? "0" : "0.0", CultureInfo.InvariantCulture) + " MB",
        >= 1_000 => (bytes / 1e3).ToString("0", CultureInfo.InvariantCulture) + " KB",
        _ => bytes + " B",
    };

    public static JsonObject Json(string name, ModelSummary s) => new()
    {
        ["name"] = name,
        ["path"] = s.Path,
        ["architecture"] = s.Architecture,
        ["parameters"] = s.Parameters,
        ["parameter_size"] = s.ParameterSize,
        ["type"] = s.Type,
        ["size"] = s.FileBytes,
        ["context_length"] = s.ContextLength,
        ["embedding_length"] = s.Config.Dim,
        ["layers"] = s.Config.Layers,
        ["heads"] = s.Config.Heads,
        ["kv_heads"] = s.Config.KvHeads,
        ["vocab_size"] = s.Config.VocabSize,
        ["chat_template"] = s.ChatTemplate,
        ["modified_at"] = s.Modified.ToString("o", CultureInfo.InvariantCulture),
    };
}
