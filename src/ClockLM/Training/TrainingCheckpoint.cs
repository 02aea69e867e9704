using ClockLM.Gguf;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using ClockLM.Tokenizers;

namespace ClockLM.Training;

/// <summary>Thrown when a checkpoint file cannot be read: not a checkpoint, truncated, or for another model shape.</summary>
public sealed class CheckpointFormatException(string path, string problem) : IOException($"{path}: {problem}")
{
    /// <summary>The checkpoint file.</summary>
    public string Path { get; } = path;
}

/// <summary>
/// Everything a training run needs to continue exactly where it stopped: the options, the tokenizer, the step reached,
/// the weights and both optimisers' moments. Written to a temporary file and renamed, so a run killed while saving
/// keeps its previous checkpoint.
/// </summary>
public sealed class TrainingCheckpoint
{
    private const string Magic = "CLOCKLM-CHECKPOINT-1";

    /// <summary>The options of the run.</summary>
    public required TrainingOptions Options { get; init; }

    /// <summary>The tokenizer the data was encoded with.</summary>
    public required SentencePieceTokenizer Tokenizer { get; init; }

    /// <summary>Steps completed.</summary>
    public required int Step { get; init; }

    /// <summary>Training tokens processed so far.</summary>
    public required long TokensSeen { get; init; }

    /// <summary>Wall time spent training so far, over all sessions, in seconds.</summary>
    public required double ElapsedSeconds { get; init; }

    /// <summary>Training loss of the last step.</summary>
    public required double TrainLoss { get; init; }

    /// <summary>The last validation loss (NaN if none yet).</summary>
    public required double ValidationLoss { get; init; }

    /// <summary>Parameter values in GGUF order.</summary>
    public required IReadOnlyList<float[]> Weights { get; init; }

    /// <summary>For each parameter (GGUF order): AdamW's first and second moments, or null before the first step.</summary>
    public required IReadOnlyList<(float[] M, float[] V)?> Moments { get; init; }

    /// <summary>Steps taken by the optimiser (Adam's t).</summary>
    public required long OptimizerIterations { get; init; }

    /// <summary>Writes the checkpoint to <paramref name="path"/> atomically (<see cref="AtomicFile"/>: a temporary file
    /// flushed to disk, then a rename).</summary>
    public void Save(string path) => AtomicFile.Write(path, stream =>
    {
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Magic);
            writer.Write(JsonSerializer.Serialize(Options, TrainingOptionsJson.Default.TrainingOptions));
            writer.Write(Step);
            writer.Write(TokensSeen);
            writer.Write(ElapsedSeconds);
            writer.Write(TrainLoss);
            writer.Write(ValidationLoss);
            int n = Tokenizer.VocabSize;
            writer.Write(n);
            for (int i = 0; i < n; i++)
            {
                writer.Write(Tokenizer.GetPiece(i));
                writer.Write(Tokenizer.GetScore(i));
                writer.Write((int)Tokenizer.GetKind(i));
            }
            CheckpointTensors.Write(writer, Weights, Moments, OptimizerIterations);
        }
    });

    /// <summary>Reads a checkpoint written by <see cref="Save"/>.</summary>
    /// <exception cref="CheckpointFormatException">The file is not a checkpoint or is damaged.</exception>
    public static TrainingCheckpoint Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such checkpoint file", path);
        try
        {
            using var stream = File.OpenRead(path);
            using var reader = new BinaryReader(stream, Encoding.UTF8);
            if (reader.ReadString() != Magic) throw new CheckpointFormatException(path, "not a ClockLM training checkpoint");
            var options = JsonSerializer.Deserialize(reader.ReadString(), TrainingOptionsJson.Default.TrainingOptions)
                ?? throw new CheckpointFormatException(path, "the options are missing");
            if (options.Validate() is { } problem) throw new CheckpointFormatException(path, $"the options are not valid: {problem}");
            // The checkpoint holds the model's weights, so a shape whose embedding, attention and feed-forward matrices
            // alone need more bytes than the file has is damaged (and would exhaust memory when the model is built).
            var c = options.ModelConfig;
            double leastWeights = (double)c.VocabSize * c.Dim + (double)c.Layers * (2.0 * c.Dim * c.Dim + 3.0 * c.Dim * c.HiddenDim);
            if (leastWeights * sizeof(float) > stream.Length)
                throw new CheckpointFormatException(path,
                    $"the options describe a model of at least {leastWeights:0} weights, more than the {stream.Length}-byte file holds");
            int step = reader.ReadInt32();
            if (step < 0) throw new CheckpointFormatException(path, $"the step is {step}; expected 0 or more");
            long tokensSeen = reader.ReadInt64();
            if (tokensSeen < 0) throw new CheckpointFormatException(path, $"the tokens seen are {tokensSeen}; expected 0 or more");
            double elapsed = reader.ReadDouble(), trainLoss = reader.ReadDouble(), validationLoss = reader.ReadDouble();
            // Every count is bounded by the bytes left, so a damaged count cannot make a huge (or negative) allocation.
            int n = Count(reader, path, "tokenizer pieces", 1 + 4 + 4);
            if (n != options.VocabSize) throw new CheckpointFormatException(path, $"the tokenizer has {n} pieces but the options say {options.VocabSize}");
            var pieces = new string[n];
            var scores = new float[n];
            var kinds = new TokenKind[n];
            for (int i = 0; i < n; i++)
            {
                pieces[i] = reader.ReadString();
                scores[i] = reader.ReadSingle();
                int kind = reader.ReadInt32();
                kinds[i] = kind is >= 0 and <= (int)TokenKind.Byte
                    ? (TokenKind)kind
                    : throw new CheckpointFormatException(path, $"tokenizer piece {i} has kind {kind}; expected 0 to 6");
            }
            SentencePieceTokenizer tokenizer;
            try
            {
                tokenizer = new SentencePieceTokenizer(pieces, scores, kinds, BpeTrainer.BosId, BpeTrainer.EosId, BpeTrainer.UnknownId);
            }
            catch (ArgumentException e)
            {
                throw new CheckpointFormatException(path, $"the tokenizer is not valid: {e.Message}");
            }
            var (weights, moments, iterations) = CheckpointTensors.Read(reader, path);
            return new TrainingCheckpoint
            {
                Options = options, Tokenizer = tokenizer, Step = step, TokensSeen = tokensSeen, ElapsedSeconds = elapsed,
                TrainLoss = trainLoss, ValidationLoss = validationLoss, Weights = weights, Moments = moments,
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

    /// <summary>A count of entries of at least <paramref name="bytesEach"/> bytes: 0 or more, and no more than the
    /// bytes left in the file can hold.</summary>
    private static int Count(BinaryReader reader, string path, string what, int bytesEach)
    {
        int count = reader.ReadInt32();
        long left = reader.BaseStream.Length - reader.BaseStream.Position;
        if (count < 0 || count > left / bytesEach)
            throw new CheckpointFormatException(path, $"the checkpoint claims {count} {what}; the {left} bytes left hold at most {left / bytesEach}");
        return count;
    }
}

/// <summary>The checkpoint's training options as JSON, generated at build time: no reflection (native AOT).</summary>
[JsonSerializable(typeof(TrainingOptions))]
internal sealed partial class TrainingOptionsJson : JsonSerializerContext;
