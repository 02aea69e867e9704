using System.CommandLine;
using ClockLM.Nn;
using ClockLM.Tensors;
using ClockLM.Training;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm train --data corpus.txt --out model.gguf`: trains a Llama-architecture model and its BPE tokenizer on a text
/// and writes a GGUF that ClockLM and llama.cpp run. Checkpoints go to OUT.ckpt; `--resume` continues from there.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var defaults = new TrainingOptions();
        var data = new Option<string>("--data") { Description = "Training text (UTF-8; each line is a document, every 20th held out for validation unless --validation is given)", Required = true };
        var validation = new Option<string?>("--validation") { Description = "Held-out text for the validation loss (then every line of --data trains)" };
        var output = new Option<string>("--out", "-o") { Description = "The GGUF to write", Required = true };
        var dim = new Option<int>("--dim") { Description = "Width of the residual stream", DefaultValueFactory = _ => defaults.Dim };
        var layers = new Option<int>("--layers") { Description = "Transformer layers", DefaultValueFactory = _ => defaults.Layers };
        var heads = new Option<int>("--heads") { Description = "Query heads", DefaultValueFactory = _ => defaults.Heads };
        var kvHeads = new Option<int>("--kv-heads") { Description = "Key/value heads", DefaultValueFactory = _ => defaults.KvHeads };
        var ffn = new Option<int>("--ffn") { Description = "Feed-forward width", DefaultValueFactory = _ => defaults.HiddenDim };
        var vocab = new Option<int>("--vocab") { Description = "Vocabulary size of the BPE tokenizer", DefaultValueFactory = _ => defaults.VocabSize };
        var context = new Option<int>("--context") { Description = "Tokens per training sequence (the context length)", DefaultValueFactory = _ => defaults.ContextLength };
        var batch = new Option<int>("--batch") { Description = "Sequences per step", DefaultValueFactory = _ => defaults.Batch };
        var steps = new Option<int>("--steps") { Description = "Optimisation steps", DefaultValueFactory = _ => defaults.Steps };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (warm-up, then cosine decay to a tenth)", DefaultValueFactory = _ => defaults.LearningRate };
        var warmup = new Option<int>("--warmup") { Description = "Warm-up steps", DefaultValueFactory = _ => defaults.WarmupSteps };
        var seed = new Option<int>("--seed") { Description = "Seed for the initial weights and the batch order", DefaultValueFactory = _ => defaults.Seed };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints (0: none)", DefaultValueFactory = _ => defaults.CheckpointEvery };
        var evalEvery = new Option<int>("--eval-every") { Description = "Steps between validation losses", DefaultValueFactory = _ => defaults.EvalEvery };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint file (default: OUT.ckpt)" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the checkpoint (its shape and settings) if it exists" };
        var f16 = new Option<bool>("--f16") { Description = "Write matrices as F16 (half the size) instead of F32" };
        var threads = new Option<int>("--threads", "-t") { Description = "Threads (0: one per processor); the result is the same for any count", DefaultValueFactory = _ => 0 };

        var command = new Command("train", "Train a small Llama-architecture model and its tokenizer on a text, and write a GGUF");
        foreach (var o in new Option[] { data, validation, output, dim, layers, heads, kvHeads, ffn, vocab, context, batch, steps, lr, warmup, seed, checkpointEvery, evalEvery, checkpoint, resume, f16, threads })
            command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string dataPath = result.GetValue(data)!, outPath = result.GetValue(output)!;
            double peak = result.GetValue(lr);
            var options = new TrainingOptions
            {
                Dim = result.GetValue(dim), Layers = result.GetValue(layers), Heads = result.GetValue(heads),
                KvHeads = result.GetValue(kvHeads), HiddenDim = result.GetValue(ffn), VocabSize = result.GetValue(vocab),
                ContextLength = result.GetValue(context), Batch = result.GetValue(batch), Steps = result.GetValue(steps),
                LearningRate = peak, MinLearningRate = peak / 10, WarmupSteps = result.GetValue(warmup), Seed = result.GetValue(seed),
                CheckpointEvery = result.GetValue(checkpointEvery), EvalEvery = result.GetValue(evalEvery),
                Threads = result.GetValue(threads),
            };
            if (options.Validate() is { } problem) throw new UsageException(problem);
            if (!File.Exists(dataPath)) throw new FileNotFoundException($"{dataPath}: no such training text", dataPath);
            string? validationPath = result.GetValue(validation);
            if (validationPath != null && !File.Exists(validationPath))
                throw new FileNotFoundException($"{validationPath}: no such validation text", validationPath);
            string checkpointPath = result.GetValue(checkpoint) ?? outPath + ".ckpt";
            OutputFile.CheckNotAnInput(outPath, (dataPath, "training text"), (checkpointPath, "checkpoint"));
            OutputFile.CheckNotAnInput(checkpointPath, (dataPath, "training text"));
            bool resuming = result.GetValue(resume);
            if (resuming && !File.Exists(checkpointPath))
                Console.Error.WriteLine($"no checkpoint at {checkpointPath}: starting from step 0");

            string text = File.ReadAllText(dataPath);
            string? validationText = validationPath != null ? File.ReadAllText(validationPath) : null;
            var err = Console.Error;
            err.WriteLine($"{options.ThreadCount} threads; matrix products: {(ComputeContext.Vectorized ? "8-lane FMA" : "scalar (no AVX2/FMA here)")}");
            var trained = LlamaTrainer.Train(text, options, checkpointPath, resuming, p =>
            {
                string validation = p.ValidationLoss is { } v ? $" | val {v:F4}" : "";
                string saved = p.CheckpointSaved ? " | checkpoint" : "";
                err.WriteLine($"step {p.Step}/{p.Steps} | loss {p.Loss:F4}{validation} | lr {p.LearningRate:G3} | " +
                    $"{p.TokensPerSecond:F0} tok/s | {p.TokensSeen:N0} tokens | elapsed {p.Elapsed:hh\\:mm\\:ss} | ETA {p.Remaining:hh\\:mm\\:ss}{saved}");
            }, validationText: validationText);
            if (trained.ResumedFromStep is { } from) err.WriteLine($"resumed from step {from} ({checkpointPath})");
            err.WriteLine($"text: {trained.Corpus.Train.Length:N0} training and {trained.Corpus.Validation.Length:N0} validation tokens " +
                $"with a {trained.Tokenizer.VocabSize}-piece vocabulary");

            var type = result.GetValue(f16) ? GgmlType.F16 : GgmlType.F32;
            trained.Model.ExportGguf(outPath, Path.GetFileNameWithoutExtension(outPath), trained.Tokenizer, type);
            var c = trained.Model.Config;
            Console.WriteLine($"wrote {outPath}: {trained.Model.ParameterCount:N0} parameters (dim {c.Dim}, {c.Layers} layers, " +
                $"{c.Heads} heads, {c.KvHeads} kv heads, ffn {c.HiddenDim}, vocab {c.VocabSize}, context {c.ContextLength}); " +
                $"{trained.Step} steps, {trained.TokensSeen:N0} tokens in {trained.Elapsed:hh\\:mm\\:ss} " +
                $"({trained.TokensSeen / Math.Max(trained.Elapsed.TotalSeconds, 1e-9):F0} tok/s); " +
                $"train loss {trained.TrainLoss:F4}, validation loss {trained.ValidationLoss:F4}");
            return 0;
        }));
        return command;
    }
}
