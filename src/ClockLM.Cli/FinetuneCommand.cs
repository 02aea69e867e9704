using System.CommandLine;
using ClockLM.Training;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm finetune --model BASE --data text.txt --out adapter.gguf`: trains LoRA pairs on a frozen base model and
/// writes them as a llama.cpp LoRA adapter (`--lora` in ClockLM and llama.cpp). Checkpoints go to OUT.ckpt; `--resume`
/// continues from there.
/// </summary>
internal static class FinetuneCommand
{
    public static Command Create()
    {
        var defaults = new FinetuneOptions();
        var model = new ModelOptions();
        var data = new Option<string>("--data") { Description = "Training text (UTF-8; each line is a document, every 20th held out for validation)", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "The LoRA adapter GGUF to write", Required = true };
        var rank = new Option<int>("--lora-rank") { Description = "Rank of every LoRA pair", DefaultValueFactory = _ => defaults.Rank };
        var alpha = new Option<float>("--lora-alpha") { Description = "LoRA alpha: the update is scaled by alpha / rank", DefaultValueFactory = _ => defaults.Alpha };
        var targets = new Option<string>("--targets") { Description = "Products to adapt, comma-separated: attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down, output", DefaultValueFactory = _ => string.Join(",", defaults.Targets) };
        var context = new Option<int>("--context") { Description = "Tokens per training sequence", DefaultValueFactory = _ => defaults.ContextLength };
        var batch = new Option<int>("--batch") { Description = "Sequences per step", DefaultValueFactory = _ => defaults.Batch };
        var steps = new Option<int>("--steps") { Description = "Optimisation steps", DefaultValueFactory = _ => defaults.Steps };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (warm-up, then cosine decay to a tenth)", DefaultValueFactory = _ => defaults.LearningRate };
        var warmup = new Option<int>("--warmup") { Description = "Warm-up steps", DefaultValueFactory = _ => defaults.WarmupSteps };
        var seed = new Option<int>("--seed") { Description = "Seed for A's initial values and the batch order", DefaultValueFactory = _ => defaults.Seed };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints (0: none)", DefaultValueFactory = _ => defaults.CheckpointEvery };
        var evalEvery = new Option<int>("--eval-every") { Description = "Steps between validation losses", DefaultValueFactory = _ => defaults.EvalEvery };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint file (default: OUT.ckpt)" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the checkpoint (its settings) if it exists" };

        var command = new Command("finetune", "Train a LoRA adapter for a model on a text, and write it in llama.cpp's adapter format");
        model.AddTo(command);
        foreach (var o in new Option[] { data, output, rank, alpha, targets, context, batch, steps, lr, warmup, seed, checkpointEvery, evalEvery, checkpoint, resume })
            command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string dataPath = result.GetValue(data)!, outPath = result.GetValue(output)!;
            var options = new FinetuneOptions
            {
                Rank = result.GetValue(rank), Alpha = result.GetValue(alpha),
                Targets = result.GetValue(targets)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                ContextLength = result.GetValue(context), Batch = result.GetValue(batch), Steps = result.GetValue(steps),
                LearningRate = result.GetValue(lr), WarmupSteps = result.GetValue(warmup), Seed = result.GetValue(seed),
                CheckpointEvery = result.GetValue(checkpointEvery), EvalEvery = result.GetValue(evalEvery),
            };
            if (options.Validate() is { } problem) throw new UsageException(problem);
            if (!File.Exists(dataPath)) throw new FileNotFoundException($"{dataPath}: no such training text", dataPath);
            string checkpointPath = result.GetValue(checkpoint) ?? outPath + ".ckpt";
            string basePath = result.GetValue(model.Model) ?? ClockLM.Models.BuiltInModel.Path;
            OutputFile.CheckNotAnInput(outPath, (dataPath, "training text"), (checkpointPath, "checkpoint"), (basePath, "base model"));
            OutputFile.CheckNotAnInput(checkpointPath, (dataPath, "training text"), (basePath, "base model"));
            bool resuming = result.GetValue(resume);
            if (resuming && !File.Exists(checkpointPath))
                Console.Error.WriteLine($"no checkpoint at {checkpointPath}: starting from step 0");

            using var m = model.Load(result);
            if (LoraTrainingModel<float>.Unsupported(m) is { } reason)
                throw new UsageException($"{m.Path}: finetune trains Llama-architecture models (RMSNorm, adjacent-pair RoPE, SwiGLU, no biases); this one has {reason}");
            string text = File.ReadAllText(dataPath);
            var err = Console.Error;
            var trained = LoraFinetuner.Train(m, text, options, checkpointPath, resuming, p =>
            {
                string validation = p.ValidationLoss is { } v ? $" | val {v:F4}" : "";
                string saved = p.CheckpointSaved ? " | checkpoint" : "";
                err.WriteLine($"step {p.Step}/{p.Steps} | loss {p.Loss:F4}{validation} | lr {p.LearningRate:G3} | " +
                    $"{p.TokensPerSecond:F0} tok/s | {p.TokensSeen:N0} tokens | elapsed {p.Elapsed:hh\\:mm\\:ss} | ETA {p.Remaining:hh\\:mm\\:ss}{saved}");
            });
            if (trained.ResumedFromStep is { } from) err.WriteLine($"resumed from step {from} ({checkpointPath})");
            err.WriteLine($"text: {trained.Corpus.Train.Length:N0} training and {trained.Corpus.Validation.Length:N0} validation tokens");

            trained.Model.ToAdapter(m.Architecture).Save(outPath, Path.GetFileNameWithoutExtension(outPath));
            Console.WriteLine($"wrote {outPath}: {trained.Model.Pairs.Count} LoRA pairs of rank {trained.Model.Rank}, alpha {trained.Model.Alpha} " +
                $"({trained.Model.ParameterCount:N0} parameters) for {Path.GetFileName(m.Path)}; {trained.Step} steps, {trained.TokensSeen:N0} tokens in " +
                $"{trained.Elapsed:hh\\:mm\\:ss}; validation loss {trained.BaseValidationLoss:F4} (base) -> {trained.ValidationLoss:F4}");
            return 0;
        }));
        return command;
    }
}
