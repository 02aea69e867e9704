using System.Diagnostics;
using ClockLM.Models;
using ClockLM.Nn;

namespace ClockLM.Training;

/// <summary>The outcome of a LoRA fine-tuning run.</summary>
/// <param name="Model">The base with its trained pairs.</param>
/// <param name="Step">Steps completed.</param>
/// <param name="TokensSeen">Training tokens processed (all sessions).</param>
/// <param name="Elapsed">Wall time of the training steps (all sessions).</param>
/// <param name="TrainLoss">Loss of the last step.</param>
/// <param name="ValidationLoss">The last validation loss.</param>
/// <param name="BaseValidationLoss">The base model's validation loss on the same windows.</param>
/// <param name="ResumedFromStep">The checkpoint's step when the run was resumed, else null.</param>
/// <param name="Corpus">The encoded text: training and validation ids.</param>
public sealed record FinetuneResult(
    LoraTrainingModel<float> Model, int Step, long TokensSeen, TimeSpan Elapsed, double TrainLoss, double ValidationLoss,
    double BaseValidationLoss, int? ResumedFromStep, TrainingCorpus Corpus);

/// <summary>
/// Trains LoRA pairs on a frozen base model (<see cref="LoraTrainingModel{T}"/>) on a text encoded by the base's own
/// tokenizer: batches of random windows, AdamW with warm-up plus cosine decay and gradient clipping, a held-out
/// validation loss (the base's first, then the adapted model's), and checkpoints from which a stopped run continues
/// bit for bit (batch order depends only on the seed and the step number), as <see cref="LlamaTrainer"/> does for
/// whole models.
/// </summary>
public static class LoraFinetuner
{
    /// <summary>Runs fine-tuning to <see cref="FinetuneOptions.Steps"/>, or until <paramref name="cancellation"/> is
    /// signalled (then it returns the state reached, without saving).</summary>
    /// <param name="model">The base model (any type ClockLM reads; dequantized to F32 for the training graph).</param>
    /// <param name="text">The training text.</param>
    /// <param name="options">LoRA shape and settings; when resuming, the checkpoint's are used instead.</param>
    /// <param name="checkpointPath">Where checkpoints are written (and read from when resuming); null for none.</param>
    /// <param name="resume">Continue from <paramref name="checkpointPath"/> if that file exists.</param>
    /// <param name="progress">Called after every step.</param>
    /// <param name="cancellation">Stops the run between steps.</param>
    public static FinetuneResult Train(Model model, string text, FinetuneOptions options, string? checkpointPath = null, bool resume = false,
        Action<TrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(text);
        var checkpoint = resume && checkpointPath != null && File.Exists(checkpointPath) ? FinetuneCheckpoint.Load(checkpointPath) : null;
        string baseName = Path.GetFileName(model.Path);
        if (checkpoint != null)
        {
            if (checkpoint.BaseName != baseName || checkpoint.BaseBytes != model.FileBytes)
                throw new CheckpointFormatException(checkpointPath!, $"the checkpoint adapts {checkpoint.BaseName} ({checkpoint.BaseBytes} bytes), not {baseName} ({model.FileBytes} bytes)");
            options = checkpoint.Options;
        }
        if (options.Validate() is { } problem) throw new ArgumentException(problem, nameof(options));
        int seqLen = options.ContextLength;
        if (seqLen > model.Config.ContextLength)
            throw new ArgumentException($"--context {seqLen} exceeds the base model's context length {model.Config.ContextLength}", nameof(options));
        if (options.AdaptsOutput && model.Weights.TiedOutput)
            throw new ArgumentException($"--targets output: {model.Path} ties its output head to token_embd.weight, which LoRA does not adapt; name the layers' products only");
        if (model.Tokenizer.BosId < 0) throw new ArgumentException($"{model.Path}: the tokenizer has no BOS token to start training sequences with");

        var lines = TrainingCorpus.Lines(text);
        if (lines.Count == 0) throw new ArgumentException("the training text is empty", nameof(text));
        var corpus = TrainingCorpus.Encode(lines, model.Tokenizer);
        if (corpus.Train.Length < seqLen || corpus.Validation.Length < seqLen)
            throw new ArgumentException($"the text gives {corpus.Train.Length} training and {corpus.Validation.Length} validation tokens; " +
                $"both need at least --context {seqLen}", nameof(text));

        var lora = new LoraTrainingModel<float>(model.Config, LoraTrainingModel<float>.BaseTensors(model), options.Rank, options.Alpha,
            options.LayerTargets(), options.AdaptsOutput, options.Seed);
        var parameters = lora.Parameters();
        var optimizer = new AdamW(options.LearningRate, options.WeightDecay, beta1: 0.9, beta2: 0.999, epsilon: 1e-8);

        int startStep = 0;
        long tokensSeen = 0;
        double previousSeconds = 0, loss = double.NaN, validationLoss, baseValidationLoss;
        if (checkpoint != null)
        {
            Restore(checkpoint, parameters, optimizer, checkpointPath!);
            (startStep, tokensSeen, previousSeconds) = (checkpoint.Step, checkpoint.TokensSeen, checkpoint.ElapsedSeconds);
            (loss, validationLoss, baseValidationLoss) = (checkpoint.TrainLoss, checkpoint.ValidationLoss, checkpoint.BaseValidationLoss);
        }
        else validationLoss = baseValidationLoss = ValidationLoss(lora, corpus, options); // B = 0: the base model's

        var schedule = new WarmupCosineSchedule(options.LearningRate, options.LearningRate / 10, Math.Min(options.WarmupSteps, options.Steps), options.Steps);
        int batch = options.Batch;
        var inputs = new int[batch * seqLen];
        var targets = new int[batch * seqLen];
        var clock = Stopwatch.StartNew();
        long sessionTokens = 0;
        int step = startStep;
        while (step < options.Steps && !cancellation.IsCancellationRequested)
        {
            corpus.TrainingBatch(options.Seed, step, batch, seqLen, inputs, targets);
            foreach (var p in parameters) p.ZeroGrad();
            var lossTensor = lora.Loss(inputs, targets, batch, seqLen);
            lossTensor.Backward();
            GradientClipping.ClipByGlobalNorm(parameters, options.ClipNorm);
            double lr = schedule.At(step);
            optimizer.LearningRate = lr;
            optimizer.Step(parameters);
            loss = lossTensor.Scalar;
            step++;
            tokensSeen += batch * seqLen;
            sessionTokens += batch * seqLen;

            double? evaluated = null;
            if (step == options.Steps || (options.EvalEvery > 0 && step % options.EvalEvery == 0))
                validationLoss = (double)(evaluated = ValidationLoss(lora, corpus, options));
            double seconds = clock.Elapsed.TotalSeconds;
            bool saved = false;
            if (checkpointPath != null && options.CheckpointEvery > 0 && (step % options.CheckpointEvery == 0 || step == options.Steps))
            {
                Capture(options, baseName, model.FileBytes, step, tokensSeen, previousSeconds + seconds, loss, validationLoss, baseValidationLoss,
                    parameters, optimizer).Save(checkpointPath);
                saved = true;
            }
            progress?.Invoke(TrainingProgress.After(step, options.Steps, startStep, loss, evaluated, lr, tokensSeen, sessionTokens,
                previousSeconds, seconds, saved));
        }
        return new FinetuneResult(lora, step, tokensSeen, TimeSpan.FromSeconds(previousSeconds + clock.Elapsed.TotalSeconds),
            loss, validationLoss, baseValidationLoss, checkpoint?.Step, corpus);
    }

    /// <summary>Mean loss over evenly spaced windows of the held-out tokens (the same windows every time).</summary>
    public static double ValidationLoss(LoraTrainingModel<float> model, TrainingCorpus corpus, FinetuneOptions options) =>
        corpus.ValidationLoss(options.Batch, options.ContextLength, options.EvalBatches,
            (inputs, targets) => model.Loss(inputs, targets, options.Batch, options.ContextLength).Scalar);

    private static FinetuneCheckpoint Capture(FinetuneOptions options, string baseName, long baseBytes, int step, long tokensSeen, double seconds,
        double loss, double validationLoss, double baseValidationLoss, IReadOnlyList<Tensor<float>> parameters, AdamW optimizer) => new()
    {
        Options = options, BaseName = baseName, BaseBytes = baseBytes, Step = step, TokensSeen = tokensSeen, ElapsedSeconds = seconds,
        TrainLoss = loss, ValidationLoss = validationLoss, BaseValidationLoss = baseValidationLoss,
        Weights = parameters.Select(p => (float[])p.Data.Clone()).ToList(),
        Moments = parameters.Select(p => optimizer.GetState<float>(p, 0) is { } m && optimizer.GetState<float>(p, 1) is { } v
            ? ((float[])m.Clone(), (float[])v.Clone()) : ((float[], float[])?)null).ToList(),
        OptimizerIterations = optimizer.Iterations,
    };

    private static void Restore(FinetuneCheckpoint checkpoint, IReadOnlyList<Tensor<float>> parameters, AdamW optimizer, string path)
    {
        if (checkpoint.Weights.Count != parameters.Count)
            throw new CheckpointFormatException(path, $"{checkpoint.Weights.Count} tensors, but the LoRA pairs have {parameters.Count}");
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            if (checkpoint.Weights[i].Length != p.Length)
                throw new CheckpointFormatException(path, $"tensor {i} holds {checkpoint.Weights[i].Length} values, but the pair's has {p.Length}");
            checkpoint.Weights[i].CopyTo(p.Data, 0);
            if (checkpoint.Moments[i] is { } moments)
            {
                if (moments.M.Length != p.Length || moments.V.Length != p.Length)
                    throw new CheckpointFormatException(path, $"the moments of tensor {i} do not have its {p.Length} values");
                optimizer.SetState(p, 0, moments.M);
                optimizer.SetState(p, 1, moments.V);
            }
        }
        optimizer.RestoreIterations(checkpoint.OptimizerIterations);
    }
}
