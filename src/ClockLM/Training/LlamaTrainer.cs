using System.Diagnostics;
using ClockLM.Nn;
using ClockLM.Tokenizers;

namespace ClockLM.Training;

/// <summary>Where a training run stands after a step.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="Steps">Steps the run will take.</param>
/// <param name="Loss">Training loss of this step.</param>
/// <param name="ValidationLoss">Validation loss, when it was evaluated after this step; otherwise null.</param>
/// <param name="LearningRate">The learning rate this step used.</param>
/// <param name="TokensSeen">Training tokens processed so far (all sessions).</param>
/// <param name="TokensPerSecond">Training throughput of this session.</param>
/// <param name="Elapsed">Wall time spent training so far (all sessions).</param>
/// <param name="Remaining">Estimated time to the last step.</param>
/// <param name="CheckpointSaved">True when a checkpoint was written after this step.</param>
public sealed record TrainingProgress(
    int Step, int Steps, double Loss, double? ValidationLoss, double LearningRate, long TokensSeen,
    double TokensPerSecond, TimeSpan Elapsed, TimeSpan Remaining, bool CheckpointSaved)
{
    /// <summary>The progress after <paramref name="step"/> of a run that started (or resumed) at
    /// <paramref name="startStep"/>: the rate is this session's (<paramref name="sessionTokens"/> in
    /// <paramref name="seconds"/>), the time left assumes the steps to come take as long as this session's did, and
    /// the elapsed time adds the earlier sessions' <paramref name="previousSeconds"/>.</summary>
    public static TrainingProgress After(int step, int steps, int startStep, double loss, double? validationLoss, double learningRate,
        long tokensSeen, long sessionTokens, double previousSeconds, double seconds, bool checkpointSaved) =>
        new(step, steps, loss, validationLoss, learningRate, tokensSeen, sessionTokens / Math.Max(seconds, 1e-9),
            TimeSpan.FromSeconds(previousSeconds + seconds), TimeSpan.FromSeconds((steps - step) * seconds / Math.Max(1, step - startStep)),
            checkpointSaved);
}

/// <summary>The outcome of a training run.</summary>
/// <param name="Model">The trained model.</param>
/// <param name="Tokenizer">The tokenizer the text was encoded with.</param>
/// <param name="Step">Steps completed.</param>
/// <param name="TokensSeen">Training tokens processed (all sessions).</param>
/// <param name="Elapsed">Wall time of the training steps (all sessions; tokenizer training and encoding excluded).</param>
/// <param name="TrainLoss">Loss of the last step.</param>
/// <param name="ValidationLoss">The last validation loss.</param>
/// <param name="InitialLoss">Loss of the first step (NaN for a resumed run).</param>
/// <param name="ResumedFromStep">The checkpoint's step when the run was resumed, else null.</param>
/// <param name="Corpus">The encoded text: training and validation ids.</param>
public sealed record TrainingResult(
    LlamaTrainingModel Model, SentencePieceTokenizer Tokenizer, int Step, long TokensSeen, TimeSpan Elapsed,
    double TrainLoss, double ValidationLoss, double InitialLoss, int? ResumedFromStep, TrainingCorpus Corpus);

/// <summary>
/// Trains a <see cref="LlamaTrainingModel"/> on a text: a BPE tokenizer learnt from the text, batches of random
/// windows, AdamW with warm-up plus cosine decay and gradient clipping, a held-out validation loss, and checkpoints
/// from which a stopped run continues bit for bit as if it had never stopped (batch order depends only on the seed
/// and the step number). The steps run on <see cref="TrainingOptions.Threads"/> threads through a
/// <see cref="ComputeContext"/>; the weights come out the same bits for any thread count.
/// </summary>
public static class LlamaTrainer
{
    /// <summary>Runs training to <see cref="TrainingOptions.Steps"/>, or until <paramref name="cancellation"/> is signalled
    /// (then it returns the state reached, without saving: the last checkpoint stands, as after a kill).</summary>
    /// <param name="text">The training text.</param>
    /// <param name="options">Shape and settings; when resuming, the checkpoint's are used instead.</param>
    /// <param name="checkpointPath">Where checkpoints are written (and read from when resuming); null for none.</param>
    /// <param name="resume">Continue from <paramref name="checkpointPath"/> if that file exists.</param>
    /// <param name="progress">Called after every step.</param>
    /// <param name="cancellation">Stops the run between steps.</param>
    /// <param name="validationText">Held-out text for the validation loss; null holds out every 20th line of <paramref name="text"/>.</param>
    public static TrainingResult Train(string text, TrainingOptions options, string? checkpointPath = null, bool resume = false,
        Action<TrainingProgress>? progress = null, CancellationToken cancellation = default, string? validationText = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        TrainingCheckpoint? checkpoint = resume && checkpointPath != null && File.Exists(checkpointPath)
            ? TrainingCheckpoint.Load(checkpointPath)
            : null;
        // A resumed run keeps its checkpoint's settings, on this run's threads.
        if (checkpoint != null) options = checkpoint.Options with { Threads = options.Threads };
        if (options.Validate() is { } problem) throw new ArgumentException(problem, nameof(options));

        var lines = TrainingCorpus.Lines(text);
        if (lines.Count == 0) throw new ArgumentException("the training text is empty", nameof(text));
        List<string>? validationLines = null;
        if (validationText != null)
        {
            validationLines = TrainingCorpus.Lines(validationText);
            if (validationLines.Count == 0) throw new ArgumentException("the validation text is empty", nameof(validationText));
        }
        var tokenizer = checkpoint?.Tokenizer ?? BpeTrainer.Train(lines, options.VocabSize);
        // A vocabulary that ran out of merges is smaller than asked: the model gets the tokenizer's size.
        if (tokenizer.VocabSize != options.VocabSize) options = options with { VocabSize = tokenizer.VocabSize };
        var corpus = TrainingCorpus.Encode(lines, tokenizer, validationLines);
        int seqLen = options.ContextLength;
        if (corpus.Train.Length < seqLen || corpus.Validation.Length < seqLen)
            throw new ArgumentException($"the text gives {corpus.Train.Length} training and {corpus.Validation.Length} validation tokens; " +
                $"both need at least --context {seqLen}", nameof(text));

        var model = new LlamaTrainingModel(options.ModelConfig, options.Seed);
        var parameters = model.Parameters();
        // Decay the matrices (embedding included), not the norms' gains.
        var optimizer = new AdamW(options.LearningRate, options.WeightDecay, beta1: 0.9, beta2: 0.95, epsilon: 1e-8);
        var norms = new AdamW(options.LearningRate, weightDecay: 0, beta1: 0.9, beta2: 0.95, epsilon: 1e-8);
        var matrices = parameters.Where(p => p.Rank == 2).ToList();
        var gains = parameters.Where(p => p.Rank != 2).ToList();

        int startStep = 0;
        long tokensSeen = 0;
        double previousSeconds = 0, loss = double.NaN, validationLoss = double.NaN, initialLoss = double.NaN;
        if (checkpoint != null)
        {
            Restore(checkpoint, parameters, optimizer, norms, checkpointPath!);
            startStep = checkpoint.Step;
            tokensSeen = checkpoint.TokensSeen;
            previousSeconds = checkpoint.ElapsedSeconds;
            loss = checkpoint.TrainLoss;
            validationLoss = checkpoint.ValidationLoss;
        }

        using var compute = new ComputeContext(options.ThreadCount);
        var schedule = new WarmupCosineSchedule(options.LearningRate, options.MinLearningRate, Math.Min(options.WarmupSteps, options.Steps), options.Steps);
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
            var lossTensor = model.Loss(inputs, targets, batch, seqLen, compute);
            lossTensor.Backward();
            GradientClipping.ClipByGlobalNorm(parameters, options.ClipNorm, compute);
            double lr = schedule.At(step);
            optimizer.LearningRate = lr;
            norms.LearningRate = lr;
            optimizer.Step(matrices, compute);
            norms.Step(gains, compute);

            loss = lossTensor.Scalar;
            lossTensor.ReleaseGraph(compute);
            if (step == startStep && checkpoint == null) initialLoss = loss;
            step++;
            tokensSeen += batch * seqLen;
            sessionTokens += batch * seqLen;

            double? evaluated = null;
            if (step == options.Steps || (options.EvalEvery > 0 && step % options.EvalEvery == 0))
                validationLoss = (double)(evaluated = ValidationLoss(model, corpus, options, compute));

            double seconds = clock.Elapsed.TotalSeconds;
            bool saved = false;
            if (checkpointPath != null && options.CheckpointEvery > 0 && (step % options.CheckpointEvery == 0 || step == options.Steps))
            {
                Capture(options, tokenizer, step, tokensSeen, previousSeconds + seconds, loss, validationLoss, parameters, optimizer, norms)
                    .Save(checkpointPath);
                saved = true;
            }
            progress?.Invoke(TrainingProgress.After(step, options.Steps, startStep, loss, evaluated, lr, tokensSeen, sessionTokens,
                previousSeconds, seconds, saved));
        }

        return new TrainingResult(model, tokenizer, step, tokensSeen, TimeSpan.FromSeconds(previousSeconds + clock.Elapsed.TotalSeconds),
            loss, validationLoss, initialLoss, checkpoint?.Step, corpus);
    }

    /// <summary>Mean loss over evenly spaced windows of the held-out tokens (the same windows every time).</summary>
    public static double ValidationLoss(LlamaTrainingModel model, TrainingCorpus corpus, TrainingOptions options, ComputeContext? compute = null) =>
        corpus.ValidationLoss(options.Batch, options.ContextLength, options.EvalBatches, (inputs, targets) =>
        {
            var loss = model.Loss(inputs, targets, options.Batch, options.ContextLength, compute);
            double value = loss.Scalar;
            if (compute != null) loss.ReleaseGraph(compute);
            return value;
        });

    private static TrainingCheckpoint Capture(TrainingOptions options, SentencePieceTokenizer tokenizer, int step, long tokensSeen,
        double seconds, double loss, double validationLoss, IReadOnlyList<Tensor<float>> parameters, AdamW optimizer, AdamW norms)
    {
        var moments = new List<(float[], float[])?>();
        foreach (var p in parameters)
        {
            var owner = p.Rank == 2 ? optimizer : norms;
            var m = owner.GetState<float>(p, 0);
            var v = owner.GetState<float>(p, 1);
            moments.Add(m != null && v != null ? ((float[])m.Clone(), (float[])v.Clone()) : null);
        }
        return new TrainingCheckpoint
        {
            Options = options, Tokenizer = tokenizer, Step = step, TokensSeen = tokensSeen, ElapsedSeconds = seconds,
            TrainLoss = loss, ValidationLoss = validationLoss,
            Weights = parameters.Select(p => (float[])p.Data.Clone()).ToList(),
            Moments = moments, OptimizerIterations = optimizer.Iterations,
        };
    }

    private static void Restore(TrainingCheckpoint checkpoint, IReadOnlyList<Tensor<float>> parameters, AdamW optimizer, AdamW norms, string path)
    {
        if (checkpoint.Weights.Count != parameters.Count)
            throw new CheckpointFormatException(path, $"{checkpoint.Weights.Count} tensors, but the model has {parameters.Count}");
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            if (checkpoint.Weights[i].Length != p.Length)
                throw new CheckpointFormatException(path, $"tensor {i} holds {checkpoint.Weights[i].Length} values, but the model's has {p.Length}");
            checkpoint.Weights[i].CopyTo(p.Data, 0);
            if (checkpoint.Moments[i] is { } moments)
            {
                var owner = p.Rank == 2 ? optimizer : norms;
                owner.SetState(p, 0, moments.M);
                owner.SetState(p, 1, moments.V);
            }
        }
        optimizer.RestoreIterations(checkpoint.OptimizerIterations);
        norms.RestoreIterations(checkpoint.OptimizerIterations);
    }
}
