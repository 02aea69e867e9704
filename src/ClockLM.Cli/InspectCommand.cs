using System.CommandLine;
using System.Text.Json.Nodes;
using ClockLM.Gguf;

namespace ClockLM.Cli;

/// <summary>`clocklm inspect PATH`: a GGUF file's metadata and tensor table.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "GGUF file" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: header, every metadata value in full, the tensor table" };
        var command = new Command("inspect", "Show a GGUF file's metadata and tensors");
        command.Arguments.Add(path);
        command.Options.Add(json);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            using var file = GgufFile.Open(result.GetValue(path)!);
            if (result.GetValue(json)) Console.WriteLine(Json(file).ToJsonString());
            else Print(file, Console.Out);
            return 0;
        }));
        return command;
    }

    public static void Print(GgufFile file, TextWriter output)
    {
        output.WriteLine($"{file.Path}: GGUF v{file.Version}, {file.FileLength} bytes, {file.MetadataKeys.Count} metadata keys, {file.Tensors.Count} tensors, alignment {file.Alignment}, data at {file.DataOffset}");
        output.WriteLine();
        int keyWidth = file.MetadataKeys.Select(k => k.Length).DefaultIfEmpty(3).Max();
        foreach (string key in file.MetadataKeys)
        {
            var value = file.Metadata[key];
            string shown = value.Type == GgufValueType.Array ? Preview(value) : value.ToString();
            output.WriteLine($"{key.PadRight(keyWidth)}  {value.Describe(),-22}  {shown}");
        }
        output.WriteLine();
        int nameWidth = file.Tensors.Select(t => t.Name.Length).DefaultIfEmpty(4).Max();
        output.WriteLine($"{"name".PadRight(nameWidth)}  {"type",-6}  {"shape",-20}  {"bytes",12}");
        long total = 0;
        foreach (var t in file.Tensors)
        {
            output.WriteLine($"{t.Name.PadRight(nameWidth)}  {t.Type,-6}  {t.ShapeText,-20}  {t.ByteCount,12}");
            total += t.ByteCount;
        }
        output.WriteLine($"{file.Tensors.Count} tensors, {total} bytes of data");
    }

    public static JsonObject Json(GgufFile file)
    {
        var metadata = new JsonObject();
        foreach (string key in file.MetadataKeys) metadata[key] = Json((object)file.Metadata[key]);
        return new JsonObject
        {
            ["path"] = file.Path,
            ["version"] = file.Version,
            ["file_bytes"] = file.FileLength,
            ["alignment"] = file.Alignment,
            ["data_offset"] = file.DataOffset,
            ["metadata"] = metadata,
            ["tensors"] = new JsonArray([.. file.Tensors.Select(t => (JsonNode)new JsonObject
            {
                ["name"] = t.Name,
                ["type"] = t.Type.ToString(),
                ["shape"] = new JsonArray([.. t.Dimensions.Select(d => (JsonNode)d)]),
                ["offset"] = t.Offset,
                ["bytes"] = t.ByteCount,
            })]),
        };
    }

    /// <summary>A metadata value as JSON: numbers, strings, booleans, arrays of them (nested arrays too).</summary>
    private static JsonNode? Json(object value) => value switch
    {
        GgufValue v => Json(v.Value),
        string v => v,
        bool v => v,
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        ulong v => v,
        long v => v,
        float v => float.IsFinite(v) ? v : v.ToString(System.Globalization.CultureInfo.InvariantCulture),
        double v => double.IsFinite(v) ? v : v.ToString(System.Globalization.CultureInfo.InvariantCulture),
        Array items => new JsonArray([.. items.Cast<object>().Select(Json)]),
        _ => value.ToString(),
    };

    private static string Preview(GgufValue array)
    {
        var items = ((Array)array.Value).Cast<object>().Take(8).Select(o => o is string s ? $"\"{s}\"" : o is GgufValue v ? v.ToString() : Convert.ToString(o, System.Globalization.CultureInfo.InvariantCulture));
        return "[" + string.Join(", ", items) + (array.Count > 8 ? ", ..." : "") + "]";
    }
}
