using System.CommandLine;
using ClockLM.Models;

namespace ClockLM.Cli;

/// <summary>`clocklm synth --shape NAME --type TYPE OUT.gguf`: a random-weight llama model of a realistic shape.</summary>
internal static class SynthCommand
{
    public static Command Create()
    {
        var shape = new Option<string>("--shape") { Description = $"Model shape: {string.Join(", ", SyntheticModel.Shapes.Select(s => s.Name))}", Required = true };
        var type = new Option<string>("--type") { Description = $"Weight type: {string.Join(", ", QuantizationScheme.Names)}", DefaultValueFactory = _ => "F32" };
        var vocab = new Option<string?>("--vocab") { Description = "GGUF file whose vocabulary the model uses: SentencePiece as it is, or for qwen2-0.5b the byte-level vocabulary its 151,936 entries are built from (default: ../shared/vocab/ggml-vocab-llama-spm.gguf, or ggml-vocab-deepseek-llm.gguf for qwen2-0.5b)" };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1UL };
        var output = new Argument<string>("output") { Description = "GGUF file to write" };
        var command = new Command("synth", "Write a random-weight llama-architecture GGUF (weights N(0, 0.02), norms 1) of a named shape");
        command.Options.Add(shape);
        command.Options.Add(type);
        command.Options.Add(vocab);
        command.Options.Add(seed);
        command.Arguments.Add(output);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            var modelShape = SyntheticModel.Shape(result.GetValue(shape)!);
            var scheme = QuantizationScheme.Parse(result.GetValue(type)!);
            string outPath = result.GetValue(output)!;
            string vocabulary = result.GetValue(vocab) ?? modelShape.DefaultVocab;
            OutputFile.CheckNotAnInput(outPath, (vocabulary, "vocabulary"));
            SyntheticModel.Write(outPath, modelShape, vocabulary, scheme, result.GetValue(seed));
            Console.Error.WriteLine($"wrote {outPath}: {modelShape.Name} {scheme.Name}, {new FileInfo(outPath).Length} bytes");
            return 0;
        }));
        return command;
    }
}
