using System.Globalization;
using ClockLM.Gguf;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// What `ollama list` and `ollama show` tell of a model, read from a GGUF file's header alone (metadata and tensor table;
/// no weight is read): architecture, parameter count, weight type, size, context length and chat template.
/// </summary>
/// <param name="Path">The file.</param>
/// <param name="Architecture"><c>general.architecture</c>, e.g. <c>llama</c>.</param>
/// <param name="Parameters">Values in all tensors.</param>
/// <param name="Type">The weights' type: the name of <c>general.file_type</c> (e.g. <c>Q4_K_M</c>), else the type holding the most bytes.</param>
/// <param name="FileBytes">Size of the file.</param>
/// <param name="Config">Shape: width, layers, heads, vocabulary, context length.</param>
/// <param name="ChatTemplate"><c>tokenizer.chat_template</c>, or null when the file has none (ChatML is used then).</param>
/// <param name="Modified">When the file was last written (UTC).</param>
public sealed record ModelSummary(string Path, string Architecture, long Parameters, string Type, long FileBytes,
    LlamaConfig Config, string? ChatTemplate, DateTime Modified)
{
    /// <summary>Context length the model was trained for.</summary>
    public int ContextLength => Config.ContextLength;

    /// <summary>Parameters as people write them: <c>1.1M</c>, <c>7.2B</c>.</summary>
    public string ParameterSize => Parameters switch
    {
        >= 1_000_000_000 => (Parameters / 1e9).ToString("0.#", CultureInfo.InvariantCulture) + "B",
        >= 1_000_000 => (Parameters / 1e6).ToString("0.#", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (Parameters / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "K",
        _ => Parameters.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Reads the summary of a GGUF model file.</summary>
    /// <exception cref="GgufFormatException">Not a GGUF file, or a model ClockLM cannot run.</exception>
    public static ModelSummary Read(string path)
    {
        using var file = GgufFile.Open(path);
        return Read(file);
    }

    /// <summary>The summary of an opened model: its GGUF file's, or for a llama2.c checkpoint (F32, no template) one
    /// counted from the configuration.</summary>
    public static ModelSummary Of(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Gguf is { } gguf) return Read(gguf);
        var c = model.Config;
        long perLayer = 2L * c.Dim                                  // attention and feed-forward norms
            + (long)c.Dim * c.QDim * 2 + (long)c.Dim * c.KvDim * 2  // wq, wo; wk, wv
            + 3L * c.Dim * c.HiddenDim;                             // w1, w2, w3
        long parameters = (long)c.VocabSize * c.Dim * (model.Weights.TiedOutput ? 1 : 2) + c.Layers * perLayer + c.Dim;
        return new ModelSummary(model.Path, "llama", parameters, "F32", model.FileBytes, c, null, File.GetLastWriteTimeUtc(model.Path));
    }

    /// <summary>The summary of an open GGUF file.</summary>
    public static ModelSummary Read(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var config = LlamaGguf.ReadConfig(file);
        long parameters = file.Tensors.Sum(t => t.ElementCount);
        string? named = file.Has("general.file_type") ? QuantizationScheme.NameOfFileType(file.GetInteger("general.file_type")) : null;
        string type = named ?? file.Tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Sum(t => t.ByteCount)).Select(g => g.Key.ToString()).FirstOrDefault() ?? "F32";
        return new ModelSummary(file.Path, file.GetString("general.architecture"), parameters, type, file.FileLength, config,
            file.GetStringOrNull("tokenizer.chat_template"), File.GetLastWriteTimeUtc(file.Path));
    }
}
