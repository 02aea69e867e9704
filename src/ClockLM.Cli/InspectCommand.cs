using System.CommandLine;
using ClockLM.Gguf;

namespace ClockLM.Cli;

/// <summary>`clocklm inspect PATH`: a GGUF file's metadata and tensor table.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "GGUF file" };
        var command = new Command("inspect", "Show a GGUF file's metadata and tensors");
        command.Arguments.Add(path);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            using var file = GgufFile.Open(result.GetValue(path)!);
            Print(file, Console.Out);
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

    private static string Preview(GgufValue array)
    {
        var items = ((Array)array.Value).Cast<object>().Take(8).Select(o => o is string s ? $"\"{s}\"" : o is GgufValue v ? v.ToString() : Convert.ToString(o, System.Globalization.CultureInfo.InvariantCulture));
        return "[" + string.Join(", ", items) + (array.Count > 8 ? ", ..." : "") + "]";
    }
}
