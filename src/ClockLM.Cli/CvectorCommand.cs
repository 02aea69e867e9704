using System.CommandLine;
using System.Globalization;
using ClockLM.Models;
using ClockLM.Steering;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm cvector`: makes a control vector from paired prompts (llama.cpp's cvector-generator): line i of --positive
/// against line i of --negative, the mean (or first principal component) of their residual streams' differences per
/// layer, written as llama.cpp's control-vector GGUF.
/// </summary>
internal static class CvectorCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var positive = new Option<string?>("--positive") { Description = "Positive prompts, one per line (\\n and other escapes are read as in llama.cpp)", HelpName = "FILE" };
        var negative = new Option<string?>("--negative") { Description = "Negative prompts, one per line, paired with the positive ones", HelpName = "FILE" };
        var output = new Option<string?>("--out", "-o") { Description = "The control vector to write (GGUF)", HelpName = "FILE" };
        var method = new Option<string>("--method") { Description = "mean or pca", DefaultValueFactory = _ => "mean" };
        var layers = new Option<string?>("--layers") { Description = "Layers to write directions for, A-B (default: 1 to the last)", HelpName = "A-B" };

        var command = new Command("cvector", "Make a control vector from positive and negative prompts (llama.cpp's format)");
        model.AddTo(command);
        foreach (var o in new Option[] { positive, negative, output, method, layers })
            command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string positivePath = result.GetValue(positive) ?? throw new UsageException("--positive is required: a file of prompts, one per line");
            string negativePath = result.GetValue(negative) ?? throw new UsageException("--negative is required: a file of prompts, one per line");
            string outPath = result.GetValue(output) ?? throw new UsageException("--out is required: the control-vector file to write");
            var options = new ControlVectorOptions
            {
                Method = result.GetValue(method) switch
                {
                    "mean" => ControlVectorMethod.Mean,
                    "pca" => ControlVectorMethod.Pca,
                    var other => throw new UsageException($"--method is '{other}', expected mean or pca"),
                },
            };
            var pos = PromptFile.Read(positivePath).ToList();
            var neg = PromptFile.Read(negativePath).ToList();
            if (pos.Count != neg.Count)
                throw new UsageException($"{positivePath} has {pos.Count} prompts but {negativePath} has {neg.Count}; they go in pairs, line by line");
            if (pos.Count == 0) throw new UsageException($"{positivePath} has no prompts (empty lines are skipped)");

            using var m = model.Load(result);
            if (result.GetValue(layers) is { } range)
            {
                string[] parts = range.Split('-');
                if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int first)
                    || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int last)
                    || first < 1 || last < first || last >= m.Config.Layers)
                    throw new UsageException($"--layers is '{range}', expected A-B with 1 <= A <= B <= {m.Config.Layers - 1}");
                options = options with { FirstLayer = first, LastLayer = last };
            }
            else if (m.Config.Layers < 2)
                throw new UsageException($"{m.Path} has one layer; control vectors steer layers 1 and up");

            var vector = ControlVectorMaker.Make(m, pos, neg, options);
            vector.Save(outPath);
            Console.WriteLine($"{outPath}: {vector.Directions.Count} directions (layers {vector.Directions.Keys.Min()}-{vector.LastLayer}, " +
                $"{vector.Dim} values each, {options.Method.ToString().ToLowerInvariant()} of {pos.Count} prompt pairs)");
            return 0;
        }));
        return command;
    }
}
