using System.CommandLine;
using ClockLM.Formats;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tokenizers;

namespace ClockLM.Cli;

/// <summary>`clocklm convert MODEL.bin --tokenizer tokenizer.bin OUT.gguf`: a llama2.c checkpoint to an equivalent GGUF.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("model") { Description = "llama2.c checkpoint (.bin)" };
        var output = new Argument<string>("output") { Description = "GGUF file to write" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "llama2.c tokenizer.bin (default: tok{vocab}.bin or tokenizer.bin beside the model)" };
        var command = new Command("convert", "Convert a llama2.c checkpoint to a llama-architecture GGUF (F32)");
        command.Arguments.Add(input);
        command.Arguments.Add(output);
        command.Options.Add(tokenizer);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string inPath = result.GetValue(input)!, outPath = result.GetValue(output)!;
            OutputFile.CheckNotAnInput(outPath, (inPath, "checkpoint"), (result.GetValue(tokenizer), "tokenizer"));
            using var model = Model.Load(inPath, result.GetValue(tokenizer));
            if (result.GetValue(tokenizer) is null)
            {
                // The tokenizer was found beside the checkpoint (tok{vocab}.bin, else tokenizer.bin).
                string beside = Path.GetDirectoryName(Path.GetFullPath(inPath))!;
                OutputFile.CheckNotAnInput(outPath, (Path.Combine(beside, $"tok{model.Config.VocabSize}.bin"), "tokenizer beside the checkpoint"),
                    (Path.Combine(beside, "tokenizer.bin"), "tokenizer beside the checkpoint"));
            }
            if (model.Gguf is not null) throw new UsageException($"{inPath} is already a GGUF file");
            var spm = (SentencePieceTokenizer)model.Tokenizer;
            using (var bar = new ProgressBar($"converting {Path.GetFileName(inPath)}"))
                LlamaGgufExport.Write(outPath, Path.GetFileNameWithoutExtension(inPath), model.Config, spm,
                    separateOutput: !model.Weights.TiedOutput,
                    typeOf: _ => GgmlType.F32, LlamaGgufExport.FromWeights(model.Weights), progress: bar);
            Console.Error.WriteLine($"wrote {outPath} ({new FileInfo(outPath).Length} bytes)");
            return 0;
        }));
        return command;
    }
}
