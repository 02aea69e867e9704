using System.CommandLine;
using ClockLM.Clock;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm capture`: runs every prompt of a file and streams the activations at chosen hook points into a safetensors
/// file (one tensor per point, positions × width, with token_ids and prompt_offsets) for analysis elsewhere.
/// </summary>
internal static class CaptureCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var data = new Option<string?>("--data", "-d") { Description = "Prompts, one per line (empty lines skipped; \\n and other escapes read as in llama.cpp)", HelpName = "FILE" };
        var points = new Option<string?>("--points") { Description = "Hook points, comma-separated TransformerLens names, e.g. blocks.3.hook_resid_post,blocks.1.attn.hook_z", HelpName = "NAMES" };
        var output = new Option<string?>("--out", "-o") { Description = "The safetensors file to write", HelpName = "FILE" };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context length (default: the model's)" };

        var command = new Command("capture", "Run prompts and write the activations at hook points to a safetensors file");
        model.AddTo(command);
        foreach (var o in new Option[] { data, points, output, ctx })
            command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string dataPath = result.GetValue(data) ?? throw new UsageException("--data is required: a file of prompts, one per line");
            string outPath = result.GetValue(output) ?? throw new UsageException("--out is required: the safetensors file to write");
            string names = result.GetValue(points) ?? throw new UsageException("--points is required, e.g. blocks.0.hook_resid_post");
            var parsed = new List<(ActivationPoint, int)>();
            foreach (string name in names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                try { parsed.Add(ActivationPoints.Parse(name)); }
                catch (FormatException e) { throw new UsageException($"--points: {e.Message}"); }
            }
            if (!File.Exists(dataPath)) throw new FileNotFoundException($"{dataPath}: no such prompt file", dataPath);
            int? contextLength = result.GetValue(ctx);
            if (contextLength is <= 0) throw new UsageException($"--ctx is {contextLength}, expected a positive number");

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            var transformer = m.CreateTransformer(contextLength, pool);
            // The prompts are streamed from the file, twice (the shapes, then the activations), never all in memory.
            IEnumerable<int[]> Prompts() => PromptFile.Read(dataPath).Select(prompt => m.Tokenizer.Encode(prompt).ToArray());
            var summary = ActivationExport.Write(transformer, Prompts, parsed, outPath,
                new Dictionary<string, string> { ["model"] = Path.GetFileName(m.Path), ["prompts_file"] = Path.GetFileName(dataPath) });
            Console.WriteLine($"{outPath}: {parsed.Count} points, {summary.Positions} positions of {summary.Prompts} prompts, {summary.Bytes} bytes");
            return 0;
        }));
        return command;
    }
}
