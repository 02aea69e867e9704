using System.CommandLine;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>`clocklm quantize IN OUT TYPE`: re-writes a GGUF model's matrices in another type.</summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "GGUF model to read" };
        var output = new Argument<string>("output") { Description = "GGUF file to write" };
        var type = new Argument<string>("type") { Description = $"Target type: {string.Join(", ", QuantizationScheme.Names)}" };
        var command = new Command("quantize", "Convert a GGUF model's weight matrices to another type (norms stay F32)");
        command.Arguments.Add(input);
        command.Arguments.Add(output);
        command.Arguments.Add(type);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            var scheme = QuantizationScheme.Parse(result.GetValue(type)!);
            string inPath = result.GetValue(input)!, outPath = result.GetValue(output)!;
            OutputFile.CheckNotAnInput(outPath, (inPath, "input"));
            using (var bar = new ProgressBar($"quantizing to {scheme.Name}"))
                ModelQuantizer.Quantize(inPath, outPath, scheme, bar);
            Console.Error.WriteLine($"wrote {outPath}: {scheme.Name}, {new FileInfo(inPath).Length} -> {new FileInfo(outPath).Length} bytes");
            return 0;
        }));
        return command;
    }
}
