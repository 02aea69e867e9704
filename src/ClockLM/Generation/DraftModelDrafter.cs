using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Generation;

/// <summary>
/// Drafting with a smaller model of the same vocabulary (llama.cpp's <c>-md</c>): the draft model keeps a sequence of
/// its own beside the target's and continues it greedily. Its KV cache holds the tokens it ran last time; before each
/// draft it runs only what changed since (the accepted tokens and the target's correction), from the first token where
/// the sequences part.
/// </summary>
public sealed class DraftModelDrafter : IDrafter
{
    private readonly Transformer _draft;
    private readonly List<int> _cached = []; // the tokens at positions 0.. of the draft's KV cache
    private readonly float _pMin;

    /// <summary>A drafter running <paramref name="draft"/> with a KV cache of <paramref name="contextLength"/> positions on
    /// <paramref name="pool"/>, stopping at a token it gives less than <paramref name="pMin"/> probability.</summary>
    public DraftModelDrafter(Model draft, int contextLength, WorkerPool? pool, float pMin)
    {
        ArgumentNullException.ThrowIfNull(draft);
        _draft = draft.CreateTransformer(contextLength, pool);
        _pMin = pMin;
    }

    /// <summary>Checks that <paramref name="draft"/> can draft for <paramref name="target"/>: the same number of tokens,
    /// the same piece for every id, the same BOS and EOS.</summary>
    /// <exception cref="ArgumentException">The vocabularies differ; the message names both files and the first difference.</exception>
    public static void CheckVocabulary(Model target, Model draft)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(draft);
        var t = target.Tokenizer;
        var d = draft.Tokenizer;
        string both = $"the draft model {draft.Path} cannot draft for {target.Path}";
        if (draft.Config.VocabSize != target.Config.VocabSize)
            throw new ArgumentException($"{both}: its vocabulary has {draft.Config.VocabSize} tokens, the target's {target.Config.VocabSize}; a draft model must share the target's vocabulary");
        if (d.BosId != t.BosId || d.EosId != t.EosId)
            throw new ArgumentException($"{both}: its BOS/EOS ids are {d.BosId}/{d.EosId}, the target's {t.BosId}/{t.EosId}");
        for (int id = 0; id < target.Config.VocabSize; id++)
            if (d.GetPiece(id) != t.GetPiece(id))
                throw new ArgumentException($"{both}: token {id} is '{d.GetPiece(id)}' in the draft and '{t.GetPiece(id)}' in the target; a draft model must share the target's vocabulary");
    }

    /// <inheritdoc/>
    public int Draft(ReadOnlySpan<int> tokens, Span<int> draft)
    {
        int n = tokens.Length;
        // Drafting k tokens runs positions up to n + k - 2.
        int max = Math.Min(draft.Length, _draft.ContextLength - n + 1);
        if (n == 0 || max < 1) return 0;

        // Run the tokens from where the draft's cache and the sequence part; at least the last, for its logits.
        int common = Math.Min(_cached.Count, n - 1);
        common = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_cached)[..common].CommonPrefixLength(tokens[..common]);
        _draft.Cache.Truncate(common);
        var logits = _draft.Evaluate(tokens[common..], common);
        _cached.RemoveRange(common, _cached.Count - common);
        foreach (int id in tokens[common..]) _cached.Add(id);

        int k = 0;
        while (true)
        {
            int next = ArgMax(logits, out float p);
            if (p < _pMin) break;
            draft[k++] = next;
            if (k == max) break;
            logits = _draft.Forward(next, n + k - 1);
            _cached.Add(next);
        }
        return k;
    }

    /// <summary>The first id of the largest logit, and its probability, softmax(logits)[id] = 1 / sum exp(l - max). The
    /// llama.cpp speculative harness drafts with the same rule.</summary>
    internal static int ArgMax(ReadOnlySpan<float> logits, out float probability)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        double sum = 0;
        float max = logits[best];
        foreach (float l in logits) sum += Math.Exp(l - max);
        probability = (float)(1 / sum);
        return best;
    }
}
