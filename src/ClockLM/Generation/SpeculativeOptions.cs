using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Generation;

/// <summary>
/// Speculative decoding: where draft tokens come from and how many are verified at once. A drafter proposes the next
/// few tokens cheaply — a small model sharing the vocabulary (<see cref="DraftModel"/>, llama.cpp's <c>-md</c>) or the
/// continuation of an earlier occurrence of the last few tokens in the context (<see cref="Lookup"/>, prompt lookup) —
/// and the model checks all of them in one pass over its weights (<see cref="SpeculativeDecoder"/>). The output is
/// the same as without drafts, token for token; only the speed changes.
/// </summary>
public sealed record SpeculativeOptions
{
    /// <summary>A smaller model with the same vocabulary that drafts greedily; null when drafting by lookup.</summary>
    public Model? DraftModel { get; init; }

    /// <summary>Prompt lookup: the longest n-gram (up to this many tokens) ending the context that occurred earlier in
    /// it is continued as it went on there. 0 when drafting with <see cref="DraftModel"/>.</summary>
    public int Lookup { get; init; }

    /// <summary>Most tokens drafted for one verification pass (llama.cpp's <c>--draft-max</c>, default 16).</summary>
    public int DraftMax { get; init; } = 16;

    /// <summary>Fewest drafted tokens worth a verification pass; shorter drafts are dropped and the token runs alone
    /// (llama.cpp's <c>--draft-min</c>, default 0).</summary>
    public int DraftMin { get; init; }

    /// <summary>A draft model stops drafting at a token it gives less than this probability (llama.cpp's
    /// <c>--draft-p-min</c>, default 0.75): an unlikely draft is likely to be rejected and costs a row of the pass.</summary>
    public float DraftPMin { get; init; } = 0.75f;

    /// <summary>Checks the values; returns a description of the first bad one or null.</summary>
    public string? Validate()
    {
        if (DraftModel is null && Lookup == 0) return "speculative decoding needs a draft model or a lookup n-gram size";
        if (DraftModel is not null && Lookup != 0) return "a draft model and lookup drafting cannot be combined; choose one";
        if (Lookup is < 0 or > 64) return $"the lookup n-gram size is {Lookup}, expected 1 to 64";
        if (DraftMax is < 1 or > 256) return $"draft-max is {DraftMax}, expected 1 to 256";
        if (DraftMin < 0 || DraftMin > DraftMax) return $"draft-min is {DraftMin}, expected 0 to draft-max ({DraftMax})";
        if (!(DraftPMin >= 0 && DraftPMin <= 1)) return $"draft-p-min is {DraftPMin}, expected a value in [0, 1]";
        return null;
    }

    /// <summary>A drafter for one sequence of <paramref name="target"/> with a context of <paramref name="contextLength"/>
    /// positions (a draft model gets a KV cache of its own that long, and runs on <paramref name="pool"/>).</summary>
    /// <exception cref="ArgumentException">The options are invalid, or the draft model's vocabulary is not the target's.</exception>
    public IDrafter CreateDrafter(Model target, int contextLength, WorkerPool? pool)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (Validate() is { } problem) throw new ArgumentException(problem);
        if (Lookup > 0) return new PromptLookupDrafter(Lookup);
        DraftModelDrafter.CheckVocabulary(target, DraftModel!);
        return new DraftModelDrafter(DraftModel!, contextLength, pool, DraftPMin);
    }
}

/// <summary>Counts of a speculative decoder's work.</summary>
/// <param name="Passes">Verification passes: a token and its drafts run together.</param>
/// <param name="Drafted">Tokens drafted into those passes.</param>
/// <param name="Accepted">Drafted tokens that turned out to be the model's own choice, so their rows were used.</param>
public readonly record struct SpeculativeStats(long Passes, long Drafted, long Accepted)
{
    /// <summary>The share of drafted tokens accepted (0 when none was drafted).</summary>
    public double AcceptanceRate => Drafted == 0 ? 0 : (double)Accepted / Drafted;

    /// <summary>Both counts together.</summary>
    public static SpeculativeStats operator +(SpeculativeStats a, SpeculativeStats b) =>
        new(a.Passes + b.Passes, a.Drafted + b.Drafted, a.Accepted + b.Accepted);
}
