using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using ClockLM.Gguf;

namespace ClockLM.Training;

/// <summary>
/// Everything a LoRA fine-tuning run needs to continue exactly where it stopped: the options, which base model it
/// adapts (file name and size), the step reached, the pairs' values and AdamW's moments. Written atomically
/// (<see cref="AtomicFile"/>), so a run killed while saving keeps its previous checkpoint.
/// </summary>
public sealed class FinetuneCheckpoint
{
    private const string Magic = "CLOCKLM-LORA-CHECKPOINT-1";

    /// <summary>The options of the run.</summary>
    public required FinetuneOptions Options { get; init; }

    /// <summary>File name of the base model.</summary>
    public required string BaseName { get; init; }

    /// <summary>Size of the base model file in bytes.</summary>
    public required long BaseBytes { get; init; }

    /// <summary>Steps completed.</summary>
    public required int Step { get; init; }

    /// <summary>Training tokens processed so far.</summary>
    public required long TokensSeen { get; init; }

    /// <summary>Wall time spent training so far, over all sessions, in seconds.</summary>
    public required double ElapsedSeconds { get; init; }

    /// <summary>Training loss of the last step.</summary>
    public required double TrainLoss { get; init; }

    /// <summary>The last validation loss.</summary>
    public required double ValidationLoss { get; init; }

    /// <summary>The base model's validation loss (before any step).</summary>
    public required double BaseValidationLoss { get; init; }

    /// <summary>Values of A and B of every pair, in <see cref="LoraTrainingModel{T}.Parameters"/> order.</summary>
    public required IReadOnlyList<float[]> Weights { get; init; }

    /// <summary>AdamW's first and second moments of each, or null before the first step.</summary>
    public required IReadOnlyList<(float[] M, float[] V)?> Moments { get; init; }

    /// <summary>Steps taken by the optimiser (Adam's t).</summary>
    public required long OptimizerIterations { get; init; }

    /// <summary>Writes the checkpoint atomically.</summary>
    public void Save(string path) => AtomicFile.Write(path, stream =>
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        writer.Write(Magic);
        writer.Write(JsonSerializer.Serialize(Options, FinetuneOptionsJson.Default.FinetuneOptions));
        writer.Write(BaseName);
        writer.Write(BaseBytes);
        writer.Write(Step);
        writer.Write(TokensSeen);
        writer.Write(ElapsedSeconds);
        writer.Write(TrainLoss);
        writer.Write(ValidationLoss);
        writer.Write(BaseValidationLoss);
        CheckpointTensors.Write(writer, Weights, Moments, OptimizerIterations);
    });

    /// <summary>Reads a checkpoint written by <see cref="Save"/>.</summary>
    /// <exception cref="CheckpointFormatException">The file is not a LoRA checkpoint or is damaged.</exception>
    public static FinetuneCheckpoint Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such checkpoint file", path);
        try
        {
            using var stream = File.OpenRead(path);
            using var reader = new BinaryReader(stream, Encoding.UTF8);
            if (reader.ReadString() != Magic) throw new CheckpointFormatException(path, "not a ClockLM LoRA fine-tuning checkpoint");
            var options = JsonSerializer.Deserialize(reader.ReadString(), FinetuneOptionsJson.Default.FinetuneOptions)
                ?? throw new CheckpointFormatException(path, "the options are missing");
            if (options.Validate() is { } problem) throw new CheckpointFormatException(path, $"the options are not valid: {problem}");
            string baseName = reader.ReadString();
            long baseBytes = reader.ReadInt64();
            int step = reader.ReadInt32();
            long tokens = reader.ReadInt64();
            if (step < 0 || tokens < 0) throw new CheckpointFormatException(path, $"step {step} and tokens {tokens}; expected 0 or more");
            double elapsed = reader.ReadDouble(), loss = reader.ReadDouble(), validation = reader.ReadDouble(), baseValidation = reader.ReadDouble();
            var (weights, moments, iterations) = CheckpointTensors.Read(reader, path);
            return new FinetuneCheckpoint
            {
                Options = options, BaseName = baseName, BaseBytes = baseBytes, Step = step, TokensSeen = tokens, ElapsedSeconds = elapsed,
                TrainLoss = loss, ValidationLoss = validation, BaseValidationLoss = baseValidation, Weights = weights, Moments = moments,
                OptimizerIterations = iterations,
            };
        }
        catch (EndOfStreamException)
        {
            throw new CheckpointFormatException(path, "the file ends early (truncated checkpoint)");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, $"the options cannot be read: {e.Message}");
        }
        catch (FormatException e)
        {
            throw new CheckpointFormatException(path, $"a text field is damaged: {e.Message}");
        }
    }
}

/// <summary>The checkpoint's options as JSON, generated at build time: no reflection (native AOT).</summary>
[JsonSerializable(typeof(FinetuneOptions))]
internal sealed partial class FinetuneOptionsJson : JsonSerializerContext;
