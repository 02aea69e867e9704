using ClockLM.Tokenizers;

namespace ClockLM.Training;

/// <summary>
/// A text turned into token ids by the inference tokenizer itself, so that a trained model sees exactly the ids it
/// will be given at run time. Each line is encoded with its newline (and the tokenizer's space prefix). The validation
/// text is a separate one when given (a held-out book, say); otherwise every 20th line is held out (with fewer than 20
/// lines, the last tenth of the tokens is).
/// </summary>
public sealed class TrainingCorpus
{
    private TrainingCorpus(int[] train, int[] validation, int bosId)
    {
        Train = train;
        Validation = validation;
        BosId = bosId;
    }

    /// <summary>Token ids to learn from.</summary>
    public int[] Train { get; }

    /// <summary>Held-out token ids for the validation loss.</summary>
    public int[] Validation { get; }

    /// <summary>The id that starts every sequence.</summary>
    public int BosId { get; }

    /// <summary>The non-empty lines of a text.</summary>
    public static List<string> Lines(string text) =>
        text.Replace("\r\n", "\n").Split('\n').Where(line => line.Trim().Length > 0).ToList();

    /// <summary>Encodes <paramref name="lines"/> with <paramref name="tokenizer"/>: all of them for training when
    /// <paramref name="validationLines"/> are given, else all but the held-out ones.</summary>
    public static TrainingCorpus Encode(IReadOnlyList<string> lines, Tokenizer tokenizer, IReadOnlyList<string>? validationLines = null)
    {
        if (validationLines != null)
            return new TrainingCorpus([.. EncodeLines(lines, tokenizer).SelectMany(ids => ids)],
                [.. EncodeLines(validationLines, tokenizer).SelectMany(ids => ids)], tokenizer.BosId);
        var encoded = EncodeLines(lines, tokenizer);
        var train = new List<int>();
        var validation = new List<int>();
        for (int i = 0; i < lines.Count; i++)
            (lines.Count >= 20 && i % 20 == 19 ? validation : train).AddRange(encoded[i]);
        if (validation.Count == 0)
        {
            int split = train.Count - train.Count / 10;
            validation.AddRange(train.Skip(split));
            train.RemoveRange(split, train.Count - split);
        }
        return new TrainingCorpus(train.ToArray(), validation.ToArray(), tokenizer.BosId);
    }

    /// <summary>Each line with its newline, as the tokenizer encodes it at run time (no BOS).</summary>
    public static List<int>[] EncodeLines(IReadOnlyList<string> lines, Tokenizer tokenizer)
    {
        var encoded = new List<int>[lines.Count];
        Parallel.For(0, lines.Count, i => encoded[i] = tokenizer.Encode(lines[i] + "\n", addSpecial: false));
        return encoded;
    }

    /// <summary>
    /// Fills one training sequence starting at <paramref name="start"/> of <paramref name="stream"/>: inputs are BOS then
    /// stream[start .. start+seqLen−1), targets are stream[start .. start+seqLen), so position t predicts the token after it.
    /// </summary>
    public void Window(int[] stream, int start, int seqLen, Span<int> inputs, Span<int> targets)
    {
        inputs[0] = BosId;
        stream.AsSpan(start, seqLen - 1).CopyTo(inputs[1..]);
        stream.AsSpan(start, seqLen).CopyTo(targets);
    }

    /// <summary>
    /// Fills the (batch, seqLen) inputs and targets of training step <paramref name="step"/> with windows at random
    /// places of <see cref="Train"/>. The batch depends only on (seed, step): a resumed run sees the batches the
    /// uninterrupted one would have.
    /// </summary>
    public void TrainingBatch(int seed, int step, int batch, int seqLen, Span<int> inputs, Span<int> targets)
    {
        var random = new Random(unchecked((int)((uint)seed * 2654435761u ^ (uint)step * 40503u)));
        for (int b = 0; b < batch; b++)
        {
            int start = random.Next(Train.Length - seqLen + 1);
            Window(Train, start, seqLen, inputs.Slice(b * seqLen, seqLen), targets.Slice(b * seqLen, seqLen));
        }
    }

    /// <summary>
    /// Mean loss over <paramref name="evalBatches"/> batches of evenly spaced windows of <see cref="Validation"/> (the
    /// same windows every time). <paramref name="batchLoss"/> gives the mean loss of one (batch, seqLen) block of
    /// inputs and targets.
    /// </summary>
    public double ValidationLoss(int batch, int seqLen, int evalBatches, Func<int[], int[], double> batchLoss)
    {
        int windows = evalBatches * batch, span = Validation.Length - seqLen;
        var inputs = new int[batch * seqLen];
        var targets = new int[batch * seqLen];
        double total = 0;
        for (int first = 0; first < windows; first += batch)
        {
            for (int b = 0; b < batch; b++)
            {
                int start = (int)((long)span * (first + b) / Math.Max(1, windows - 1));
                Window(Validation, start, seqLen, inputs.AsSpan(b * seqLen, seqLen), targets.AsSpan(b * seqLen, seqLen));
            }
            total += batchLoss(inputs, targets);
        }
        return total / evalBatches;
    }
}
