using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;

namespace ClockLM.Chat;

/// <summary>One generation asked of a <see cref="SlotScheduler"/>: prompt ids, how to sample, when to stop, and what to report.</summary>
public sealed record CompletionRequest
{
    /// <summary>The prompt's token ids (BOS included when the model wants one).</summary>
    public required int[] PromptIds { get; init; }

    /// <summary>Most tokens to generate; null fills the context.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>How tokens are chosen; the seed makes the output repeatable.</summary>
    public SamplerOptions Sampler { get; init; } = new();

    /// <summary>A grammar every generated text must follow (GBNF, or a JSON schema converted by
    /// <see cref="JsonSchemaGrammar"/>); the generation may end only where the grammar is complete. Null: free text.</summary>
    public Grammar? Grammar { get; init; }

    /// <summary>Texts that end the generation when they appear; they are not part of the returned text.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary>Report each generated token's log-probability.</summary>
    public bool Logprobs { get; init; }

    /// <summary>How many most likely alternatives to report beside each token (0 to 20).</summary>
    public int TopLogprobs { get; init; }

    /// <summary>Prompt tokens a context shift keeps, after BOS (which is always kept), as llama.cpp's <c>n_keep</c>: -1 the
    /// whole prompt; null none beyond BOS. Used only when the scheduler shifts contexts.</summary>
    public int? KeepTokens { get; init; }

    /// <summary>Keep generating past end-of-generation tokens (until MaxTokens or the context is full).</summary>
    public bool IgnoreEndOfGeneration { get; init; }

    /// <summary>Start from the keys and values a slot holds for this prompt's leading tokens (llama.cpp's
    /// <c>cache_prompt</c>); false evaluates the whole prompt. The output is the same bits either way.</summary>
    public bool CachePrompt { get; init; } = true;

    /// <summary>Return a <see cref="ClockSummary"/> with the result.</summary>
    public bool ClockSummary { get; init; }

    /// <summary>Instead of generating, read the prompt and return its embedding (<see cref="CompletionResult.Embedding"/>):
    /// the mean of the tokens' final hidden states, unit length. The prompt may then fill the whole context.</summary>
    public bool Embed { get; init; }

    /// <summary>How many entries the clock summary's top-k holds.</summary>
    public int ClockSummaryTopK { get; init; } = 10;

    /// <summary>Directions added to the residual stream while this request runs (control vectors, feature steering);
    /// the scheduler's <see cref="SlotSchedulerOptions.Steering"/> when null. Each request's slot is steered on its own,
    /// so requests steered differently may share a batched step.</summary>
    public ResidualSteering? Steering { get; init; }

    /// <summary>The scales of the scheduler's LoRA adapters for this request (llama-server's per-request <c>lora</c>):
    /// each entry sets adapter <see cref="LoraScale.Id"/> (its index in <see cref="SlotSchedulerOptions.Lora"/>) to its
    /// scale, and every adapter not named runs at 0. Null: the scheduler's current scales
    /// (<see cref="SlotScheduler.LoraAdapters"/>). Each slot applies its own adapters row by row, so requests with
    /// different scales may share a batched step.</summary>
    public IReadOnlyList<LoraScale>? Lora { get; init; }

    /// <summary>Most alternatives <see cref="TopLogprobs"/> may ask for.</summary>
    public const int MaxTopLogprobs = 20;
}

/// <summary>One adapter's scale, by its id: llama-server's <c>{"id": 0, "scale": 0.5}</c>.</summary>
/// <param name="Id">The adapter's index among those the server loaded at start.</param>
/// <param name="Scale">Its scale (0 leaves it out; llama.cpp's <c>--lora-scaled</c> scale).</param>
public readonly record struct LoraScale(int Id, float Scale);

/// <summary>Why a generation ended.</summary>
public enum FinishReason
{
    /// <summary>An end-of-generation token or a stop sequence.</summary>
    Stop,
    /// <summary>MaxTokens were generated or the context is full.</summary>
    Length,
    /// <summary>The caller cancelled (for example a client that disconnected).</summary>
    Cancelled,
}

/// <summary>A generated token's log-probability under the model (log-softmax of the raw logits, before sampling settings).</summary>
/// <param name="Id">Token id.</param>
/// <param name="Text">The token's text (its bytes decoded as UTF-8 on their own).</param>
/// <param name="Logprob">Natural log of its probability.</param>
/// <param name="Top">The most likely tokens at that position, most likely first (empty unless asked for).</param>
public sealed record TokenLogprob(int Id, string Text, float Logprob, IReadOnlyList<TokenLogprob> Top);

/// <summary>What one generated token adds: the text it releases (possibly empty while a stop sequence or a UTF-8 character
/// is still undecided) and its log-probability when asked for.</summary>
public sealed record CompletionUpdate(int TokenId, string Text, TokenLogprob? Logprob);

/// <summary>A finished generation.</summary>
public sealed record CompletionResult(
    int PromptTokens,
    int[] GeneratedIds,
    string Text,
    FinishReason Finish,
    TimeSpan QueueTime,
    TimeSpan PromptTime,
    TimeSpan DecodeTime,
    ClockSummary? Clock)
{
    /// <summary>Generated tokens.</summary>
    public int CompletionTokens => GeneratedIds.Length;

    /// <summary>Leading prompt tokens taken from the slot's KV cache instead of evaluated (OpenAI's
    /// <c>usage.prompt_tokens_details.cached_tokens</c>).</summary>
    public int CachedTokens { get; init; }

    /// <summary>The prompt's embedding (dim) when the request asked for one (<see cref="CompletionRequest.Embed"/>).</summary>
    public float[]? Embedding { get; init; }
}

/// <summary>
/// ClockLM's report beside an answer: where the time went, cycle by cycle, and what each cycle would have predicted at
/// the final position (the logit lens: the final norm and output head applied to the residual stream after that cycle).
/// </summary>
/// <param name="Layers">Cycles (transformer layers) each token passes.</param>
/// <param name="PromptTime">Time to evaluate the prompt.</param>
/// <param name="DecodeTime">Time from the first sampled token to the end.</param>
/// <param name="TimePerCycle">Average time of one cycle of one token: (prompt + decode time) / (tokens run × layers).</param>
/// <param name="FinalTopK">The most likely next tokens at the final position, most likely first (probabilities at temperature 1).</param>
/// <param name="Cycles">Per cycle: mean time per token by stage, and the logit lens at the final position.</param>
public sealed record ClockSummary(int Layers, TimeSpan PromptTime, TimeSpan DecodeTime, TimeSpan TimePerCycle,
    IReadOnlyList<TokenLogprob> FinalTopK, IReadOnlyList<CycleSummary> Cycles);

/// <summary>One cycle (layer) in a <see cref="ClockSummary"/>.</summary>
/// <param name="Layer">The layer.</param>
/// <param name="PerToken">Mean time of the whole cycle per token.</param>
/// <param name="Stages">Mean time per token of each stage, by stage name (fetch, decode, memory, execute, write-back).</param>
/// <param name="Lens">The logit lens after this cycle at the final position: most likely tokens first.</param>
public sealed record CycleSummary(int Layer, TimeSpan PerToken, IReadOnlyDictionary<string, TimeSpan> Stages, IReadOnlyList<TokenLogprob> Lens);
