using ClockLM.Clock;
using System.Diagnostics;
using System.Runtime.InteropServices;
using ClockLM.Generation;
using ClockLM.Models;
using Microsoft.Extensions.Logging;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;
using ClockLM.Tokenizers;

namespace ClockLM.Chat;

/// <summary>
/// Runs many generations at once on one model with continuous batching: N slots, each with its own processor (KV cache
/// and scratch buffers; the weights are shared), driven by one scheduler thread in rounds. In a round every active slot
/// advances by one step (a chunk of its prompt, or one generated token); waiting requests take free slots between rounds,
/// and a cancelled request leaves its slot at the next round. A request's output depends only on its prompt, settings and
/// seed: each has its own sampler and its own KV cache, so it is the same whatever runs beside it.
/// </summary>
public sealed partial class SlotScheduler : IDisposable
{
    private readonly Model _model;
    private readonly SlotSchedulerOptions _options;
    private readonly Slot[] _slots;
    private readonly LinkedList<CompletionJob> _queue = new();
    private readonly object _gate = new();
    private readonly Thread _thread;
    private readonly BatchDecoder _decoder;
    private Transformer[] _batch = [];
    private int[] _batchTokens = [], _batchPositions = [];
    private bool _paused;
    private bool _disposed;

    // Counters (written by the scheduler thread or under _gate, read by Stats).
    private long _completed, _cancelled, _failed, _rejected, _promptTokens, _cachedPromptTokens, _generatedTokens, _busyTicks, _batchedTokens, _batchFallbacks, _contextShifts;
    private long _draftPasses, _draftedTokens, _acceptedTokens, _draftFallbacks;
    private long _admissions; // slots' last-use stamps
    private readonly SpeculativeOptions? _speculative;
    private volatile LoraAdapters? _lora; // the scales of requests that name none; null: the model's adapters apply

    /// <summary>Creates the slots and starts the scheduler thread.</summary>
    public SlotScheduler(Model model, SlotSchedulerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new SlotSchedulerOptions();
        if (options.Slots < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Slots, "slots must be 1 or more");
        if (options.QueueCapacity < 0) throw new ArgumentOutOfRangeException(nameof(options), options.QueueCapacity, "queue capacity must be 0 or more");
        if (options.PrefillChunk < 1) throw new ArgumentOutOfRangeException(nameof(options), options.PrefillChunk, "prefill chunk must be 1 or more");
        _model = model;
        _options = options;
        model.CheckMemoryFor(options.ContextLength ?? model.Config.ContextLength, options.Slots, options.KvCache);
        if (options.Speculative?.Validate() is { } problem) throw new ArgumentException(problem, nameof(options));
        _speculative = options.Speculative;
        _slots = new Slot[options.Slots];
        for (int i = 0; i < _slots.Length; i++)
            _slots[i] = new Slot(i, model.CreateTransformer(options.ContextLength, options.Pool, options.KvCache));
        ContextLength = _slots[0].Transformer.ContextLength;
        foreach (var slot in _slots)
            (slot.Drafter, slot.Draft) = (_speculative?.CreateDrafter(model, ContextLength, options.Pool), new int[_speculative?.DraftMax ?? 0]);
        if (options.Steering is { } steering && (steering.Layers != model.Config.Layers || steering.Dim != model.Config.Dim))
            throw new ArgumentException($"the steering is for {steering.Layers} layers of width {steering.Dim}; the model has {model.Config.Layers} of width {model.Config.Dim}", nameof(options));
        if (options.ContextShift && !_slots[0].Transformer.CanShiftContext)
            options.Logger?.LogWarning("context shift is on, but {Model} has learned absolute positions, not RoPE: its generations end where the context does", model.Path);
        if (options.Lora.Count > 0) _lora = model.CreateLora(options.Lora);
        _decoder = new BatchDecoder(model.Config, model.Weights, options.Pool);
        _thread = new Thread(Loop) { IsBackground = true, Name = "ClockLM scheduler" };
        _thread.Start();
    }

    /// <summary>The model generations run on.</summary>
    public Model Model => _model;

    /// <summary>Positions each slot holds: prompt plus generated tokens must fit.</summary>
    public int ContextLength { get; }

    /// <summary>The steering of requests that bring none (<see cref="SlotSchedulerOptions.Steering"/>).</summary>
    public ResidualSteering? Steering => _options.Steering;
    /// <summary>The LoRA adapters requests may name, in id order, at the scales of requests that name none (llama-server's
    /// <c>GET /lora-adapters</c>); empty when the scheduler has none of its own (<see cref="SlotSchedulerOptions.Lora"/>).</summary>
    public IReadOnlyList<ScaledLora> LoraAdapters => _lora?.Sources ?? [];

    /// <summary>
    /// Sets the scales of requests that name none (llama-server's <c>POST /lora-adapters</c>): each entry sets one
    /// adapter's scale, and adapters not named go to 0. Requests already submitted keep the scales they were submitted
    /// under.
    /// </summary>
    /// <param name="scales">The new scales by adapter id.</param>
    /// <param name="field">The field that holds them, for errors (e.g. "" for a body that is the list itself).</param>
    /// <exception cref="CompletionRequestException">An id that names no adapter, an id named twice, or a scale that is
    /// not a finite number; the parameter names the entry's field.</exception>
    public void SetLoraScales(IReadOnlyList<LoraScale> scales, string field = "lora")
    {
        ArgumentNullException.ThrowIfNull(scales);
        var resolved = ResolveLora(scales, field);
        _lora = resolved;
    }

    /// <summary>The adapters of the scheduler's list at <paramref name="scales"/> (unnamed ones at 0), checked as
    /// <see cref="SetLoraScales"/> says; null when the scheduler has no list (an empty <paramref name="scales"/> then
    /// leaves the model's adapters to apply).</summary>
    private LoraAdapters? ResolveLora(IReadOnlyList<LoraScale> scales, string field)
    {
        var adapters = _options.Lora;
        var set = new float[adapters.Count];
        var named = new bool[adapters.Count];
        for (int i = 0; i < scales.Count; i++)
        {
            var (id, scale) = scales[i];
            string at = $"{field}[{i}]";
            if (adapters.Count == 0)
                throw new CompletionRequestException($"{at}.id", $"{at}.id is {id} but no LoRA adapter was loaded (start the server with --lora FILE or --lora-scaled FILE SCALE)");
            if ((uint)id >= (uint)adapters.Count)
                throw new CompletionRequestException($"{at}.id", $"{at}.id is {id}; expected an adapter id from 0 to {adapters.Count - 1} (GET /lora-adapters lists them)");
            if (named[id])
                throw new CompletionRequestException($"{at}.id", $"{at}.id is {id}, which an earlier entry already names; name each adapter once");
            if (!float.IsFinite(scale))
                throw new CompletionRequestException($"{at}.scale", $"{at}.scale is {scale}; expected a finite number");
            (set[id], named[id]) = (scale, true);
        }
        if (adapters.Count == 0) return null;
        return _model.CreateLora(adapters.Select((a, i) => new ScaledLora(a.Adapter, set[i])));
    }

    /// <summary>True when a generation that fills its context shifts it and goes on (<see cref="SlotSchedulerOptions.ContextShift"/>).</summary>
    public bool ContextShift => _options.ContextShift && _slots[0].Transformer.CanShiftContext;

    /// <summary>Number of slots.</summary>
    public int Slots => _slots.Length;

    /// <summary>Where the scheduler and its clients report fallbacks; nowhere when null.</summary>
    internal ILogger? Logger => _options.Logger;

    /// <summary>
    /// Queues a generation. Returns at once; the job's <see cref="CompletionJob.Updates"/> stream its tokens.
    /// Cancelling <paramref name="cancellation"/> ends it within one round (or removes it from the queue).
    /// </summary>
    /// <exception cref="CompletionRequestException">The prompt or max tokens do not fit the context, or a setting is out of range.</exception>
    /// <exception cref="QueueFullException">Every slot is busy and the queue is full.</exception>
    public CompletionJob Submit(CompletionRequest request, CancellationToken cancellation = default)
    {
        int maxTokens = Validate(request);
        var lora = request.Lora is { } scales ? ResolveLora(scales, "lora") : _lora;
        var job = new CompletionJob(request, maxTokens, lora, cancellation);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            bool slotFree = !_paused && _slots.Count(s => s.Job is null && !s.Reserved) > _queue.Count;
            if (!slotFree && _queue.Count >= _options.QueueCapacity)
            {
                _rejected++;
                throw new QueueFullException(_options.QueueCapacity);
            }
            var node = _queue.AddLast(job);
            Monitor.Pulse(_gate);
            if (cancellation.CanBeCanceled)
                job.QueueRegistration = cancellation.Register(() => Dequeue(node));
        }
        return job;
    }

    /// <summary>Holds waiting requests in the queue (running ones go on) until <see cref="Resume"/>: for draining a server.</summary>
    public void Pause()
    {
        lock (_gate) _paused = true;
    }

    /// <summary>Lets waiting requests take slots again.</summary>
    public void Resume()
    {
        lock (_gate)
        {
            _paused = false;
            Monitor.Pulse(_gate);
        }
    }

    /// <summary>A snapshot of the counters and the current load.</summary>
    public SchedulerStats Stats
    {
        get
        {
            lock (_gate)
            {
                int active = 0;
                long used = 0;
                foreach (var s in _slots)
                {
                    if (s.Job is null) continue;
                    active++;
                    used += s.Position;
                }
                return new SchedulerStats(_slots.Length, active, _queue.Count, _options.QueueCapacity,
                    _completed, _cancelled, _failed, _rejected, _promptTokens, _generatedTokens,
                    used, (long)_slots.Length * ContextLength, TimeSpan.FromTicks(Interlocked.Read(ref _busyTicks)))
                {
                    CachedPromptTokens = _cachedPromptTokens,
                    BatchedTokens = _batchedTokens,
                    BatchFallbacks = _batchFallbacks,
                    DraftPasses = _draftPasses,
                    DraftedTokens = _draftedTokens,
                    AcceptedDraftTokens = _acceptedTokens,
                    DraftFallbacks = _draftFallbacks,
                    ContextShifts = _contextShifts,
                };
            }
        }
    }

    private int Validate(CompletionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        int prompt = request.PromptIds.Length;
        if (prompt == 0)
            throw new CompletionRequestException("prompt", "the prompt is empty (no tokens, and the tokenizer adds no BOS)");
        foreach (int id in request.PromptIds)
            if ((uint)id >= (uint)_model.Config.VocabSize)
                throw new CompletionRequestException("prompt", $"token id {id} is outside the vocabulary (0..{_model.Config.VocabSize - 1})");
        if (request.Embed)
            return prompt <= ContextLength ? 0 : throw new CompletionRequestException("input",
                $"the input is {prompt} tokens but the context holds {ContextLength}; shorten it or start the server with a larger --ctx");
        if (prompt >= ContextLength)
            throw new CompletionRequestException("prompt",
                $"the prompt is {prompt} tokens but the context holds {ContextLength}; shorten the prompt or start the server with a larger --ctx");
        if (request.Sampler.Validate() is { } problem)
            throw new CompletionRequestException("sampler", problem);
        if (request.TopLogprobs is < 0 or > CompletionRequest.MaxTopLogprobs)
            throw new CompletionRequestException("top_logprobs", $"top_logprobs is {request.TopLogprobs}; expected 0 to {CompletionRequest.MaxTopLogprobs}");
        // The vocabulary's trie is built once per model, here on the caller's thread rather than in a round.
        if (request.Grammar is not null) TokenTrie.For(_model.Tokenizer, _model.Config.VocabSize);
        if (request.ClockSummaryTopK is < 1 or > 100)
            throw new CompletionRequestException("clocklm.top_k", $"the clock summary's top_k is {request.ClockSummaryTopK}; expected 1 to 100");
        if (request.Steering is { } steering && (steering.Layers != _model.Config.Layers || steering.Dim != _model.Config.Dim))
            throw new CompletionRequestException("clocklm.steer",
                $"the steering is for {steering.Layers} layers of width {steering.Dim}; the model has {_model.Config.Layers} of width {_model.Config.Dim}");
        if (request.KeepTokens is < -1)
            throw new CompletionRequestException("n_keep", $"n_keep is {request.KeepTokens}; expected -1 (the whole prompt) or a count of tokens");
        // Without a max, the generation fills the context once (and ends there, or shifts once and stops after as many
        // tokens); past the context, it ends with Length unless the context shifts.
        if (request.MaxTokens is not { } max) return ContextLength - prompt;
        if (max < 1)
            throw new CompletionRequestException("max_tokens", $"max_tokens is {max}; expected 1 or more");
        return max;
    }

    private void Dequeue(LinkedListNode<CompletionJob> node)
    {
        lock (_gate)
        {
            if (node.List is null) return; // already admitted
            _queue.Remove(node);
            _cancelled++;
        }
        var job = node.Value;
        job.Complete(new CompletionResult(job.Request.PromptIds.Length, [], "", FinishReason.Cancelled,
            Stopwatch.GetElapsedTime(job.EnqueuedAt), TimeSpan.Zero, TimeSpan.Zero, null));
    }

    private void Loop()
    {
        var active = new List<Slot>(_slots.Length);
        while (true)
        {
            lock (_gate)
            {
                // Admission: between rounds, waiting requests join the running batch.
                while (!_paused && _queue.Count > 0 && ChooseSlot(_queue.First!.Value) is { } free)
                {
                    var job = _queue.First!.Value;
                    _queue.RemoveFirst();
                    free.Start(job, _model, _options.Steering, ++_admissions);
                }
                active.Clear();
                foreach (var s in _slots)
                    if (s.Job is not null) active.Add(s);
                if (active.Count == 0)
                {
                    if (_disposed) return;
                    Monitor.Wait(_gate);
                    continue;
                }
            }
            long start = Stopwatch.GetTimestamp();
            Round(active);
            Interlocked.Add(ref _busyTicks, Stopwatch.GetElapsedTime(start).Ticks);
        }
    }

    /// <summary>
    /// One round: every active slot advances one step, all of them in one pass over the weights
    /// (<see cref="BatchDecoder.Run"/>): the next chunks of the prompts being read (at most
    /// <see cref="SlotSchedulerOptions.PrefillChunk"/> prompt tokens in all, the earliest request first), and every
    /// decoding slot's last token with the tokens drafted after it. Each slot then samples from its own rows' logits,
    /// which are bit-identical to running the slot alone.
    /// </summary>
    private void Round(List<Slot> active)
    {
        var stepping = new List<Slot>(active.Count);
        foreach (var slot in active)
        {
            if (slot.Job!.Cancellation.IsCancellationRequested) Finish(slot, FinishReason.Cancelled);
            else stepping.Add(slot);
        }
        if (stepping.Count == 0) return;
        Plan(stepping);
        if (stepping.Count == 1)
        {
            Guard(stepping[0], () => { RunRows(stepping); Advance(stepping[0]); });
            return;
        }
        try
        {
            RunRows(stepping);
        }
        catch (Exception e)
        {
            lock (_gate) _batchFallbacks++;
            _options.Logger?.LogWarning(e, "a batched step of {Slots} slots failed; the slots run one by one", stepping.Count);
            foreach (var slot in stepping)
                Guard(slot, () => { RunRows([slot]); Advance(slot); });
            return;
        }
        foreach (var slot in stepping)
        {
            long before = slot.Generated.Count;
            Guard(slot, () => Advance(slot));
            lock (_gate) _batchedTokens += slot.Generated.Count - before;
        }
    }

    /// <summary>What each slot runs this round: the prompt tokens of its next chunk, or the tokens drafted after its last
    /// token.</summary>
    private void Plan(List<Slot> stepping)
    {
        int budget = _options.PrefillChunk;
        foreach (var slot in stepping.OrderBy(s => s.StartedAt))
        {
            (slot.ChunkRows, slot.DraftCount) = (0, 0);
            if (slot.Reading)
            {
                slot.ChunkRows = Math.Min(budget, slot.Prompt.Length - slot.Prefilled);
                budget -= slot.ChunkRows;
            }
            else if (slot.Drafter is { } drafter && !slot.Job!.Request.ClockSummary)
            {
                // Drafts for the tokens still wanted after this one, within the context; a drafter that fails costs only
                // its drafts.
                int max = Math.Min(Math.Min(slot.DraftLength.Next(_speculative!.DraftMin, _speculative.DraftMax), slot.Job.MaxTokens - slot.Generated.Count - 1), ContextLength - 1 - slot.Position);
                if (max < Math.Max(1, _speculative.DraftMin)) continue;
                try
                {
                    int k = drafter.Draft(CollectionsMarshal.AsSpan(slot.History), slot.Draft.AsSpan(0, max));
                    slot.DraftCount = k >= _speculative.DraftMin ? k : 0;
                }
                catch (Exception e)
                {
                    lock (_gate) _draftFallbacks++;
                    _options.Logger?.LogWarning(e, "drafting for slot {Slot} failed; its token runs without drafts", slot.Index);
                }
            }
        }
    }

    /// <summary>Runs the slots' rows in one pass: first the prompt tokens whose logits nobody reads, then the rows whose
    /// logits are sampled (a prompt's last token; a decoding slot's token and its drafts).</summary>
    private void RunRows(List<Slot> slots)
    {
        int rows = 0;
        foreach (var slot in slots) rows += slot.Reading ? slot.ChunkRows : 1 + slot.DraftCount;
        if (_batch.Length < rows) (_batch, _batchTokens, _batchPositions) = (new Transformer[rows], new int[rows], new int[rows]);
        int row = 0;
        void Add(Slot slot, int token, int position) => (_batch[row], _batchTokens[row], _batchPositions[row++]) = (slot.Transformer, token, position);
        foreach (var slot in slots)
        {
            bool last = slot.Prefilled + slot.ChunkRows == slot.Prompt.Length;
            for (int i = 0; i < slot.ChunkRows - (last ? 1 : 0); i++) Add(slot, slot.Prompt[slot.Prefilled + i], slot.Prefilled + i);
        }
        int logitsFrom = row;
        foreach (var slot in slots)
        {
            slot.LogitsRow = row;
            if (slot.Reading)
            {
                int end = slot.Prefilled + slot.ChunkRows;
                if (end == slot.Prompt.Length) Add(slot, slot.Prompt[end - 1], end - 1);
                continue;
            }
            Add(slot, slot.LastToken, slot.Position);
            for (int i = 0; i < slot.DraftCount; i++) Add(slot, slot.Draft[i], slot.Position + 1 + i);
        }
        try
        {
            _decoder.Run(_batch.AsSpan(0, rows), _batchTokens.AsSpan(0, rows), _batchPositions.AsSpan(0, rows), logitsFrom);
        }
        finally
        {
            Array.Clear(_batch);
        }
    }

    /// <summary>A slot's step after its rows ran: its prompt read on, or its tokens sampled, the token after each accepted
    /// draft from the next row, until a sampled token differs from the draft (the rows after it are dropped: the next
    /// token runs there) or the job ends.</summary>
    private void Advance(Slot slot)
    {
        if (slot.Reading)
        {
            if (slot.ChunkRows == 0) return; // its prompt waits for the next round
            slot.Prefilled += slot.ChunkRows;
            slot.Position = slot.Prefilled;
            if (slot.Prefilled < slot.Prompt.Length) return;
            slot.PromptTime = Stopwatch.GetElapsedTime(slot.StartedAt);
            slot.DecodeStartedAt = Stopwatch.GetTimestamp();
            lock (_gate)
            {
                _promptTokens += slot.Prompt.Length - slot.Reused;
                _cachedPromptTokens += slot.Reused;
            }
            if (slot.Embedding is not null) Finish(slot, FinishReason.Stop);
            else Commit(slot, _decoder.RowLogits(slot.LogitsRow));
            return;
        }
        int accepted = 0;
        for (int j = 0; ; j++)
        {
            slot.Position++;
            Commit(slot, _decoder.RowLogits(slot.LogitsRow + j));
            if (slot.Job is null || j == slot.DraftCount || slot.LastToken != slot.Draft[j]) break;
            accepted++;
        }
        if (slot.DraftCount == 0) return;
        // The rows after the first rejected draft leave the KV cache: the next token runs where they began.
        if (slot.Job is not null && accepted < slot.DraftCount) slot.Transformer.Cache.Truncate(slot.Position);
        slot.DraftLength.Record(slot.DraftCount, accepted);
        lock (_gate)
        {
            _draftPasses++;
            _draftedTokens += slot.DraftCount;
            _acceptedTokens += accepted;
        }
    }

    /// <summary>Samples the next token from <paramref name="logits"/>, streams its text, and ends the job on a stop.</summary>
    private void Commit(Slot slot, ReadOnlySpan<float> logits)
    {
        var job = slot.Job!;
        var request = job.Request;
        NonFiniteOutputException.ThrowIfBadLogits(logits, slot.Position - 1);
        int next = slot.Sampler!.Sample(logits, CollectionsMarshal.AsSpan(slot.History));
        if (request.ClockSummary) slot.FinalTopK = TopTokens(logits, request.ClockSummaryTopK);
        if (!request.IgnoreEndOfGeneration && _model.Tokenizer.IsEndOfGeneration(next))
        {
            Finish(slot, FinishReason.Stop);
            return;
        }
        TokenLogprob? logprob = request.Logprobs || request.TopLogprobs > 0 ? Logprob(logits, next, request.TopLogprobs) : null;
        slot.History.Add(next);
        slot.Generated.Add(next);
        lock (_gate) _generatedTokens++;
        string text = slot.StopFilter!.Append(slot.Detokenizer!.Append(next));
        slot.Text.Append(text);
        job.Publish(new CompletionUpdate(next, text, logprob));
        slot.LastToken = next;
        if (slot.StopFilter.Stopped) Finish(slot, FinishReason.Stop);
        else if (slot.Generated.Count >= job.MaxTokens) Finish(slot, FinishReason.Length);
        else if (slot.Position >= slot.Transformer.ContextLength && !ShiftContext(slot)) Finish(slot, FinishReason.Length);
    }

    /// <summary>
    /// The slot's context is full: with <see cref="SlotSchedulerOptions.ContextShift"/>, keep BOS and the request's
    /// n_keep prompt tokens, drop half of the positions after them (as llama.cpp: n_discard = (n_past - n_keep) / 2) and
    /// go on. False, with the slot as it was, when shifting is off or nothing can be dropped.
    /// </summary>
    private bool ShiftContext(Slot slot)
    {
        if (!_options.ContextShift || !slot.Transformer.CanShiftContext) return false;
        var prompt = slot.Prompt;
        int bos = prompt.Length > 0 && prompt[0] == _model.Tokenizer.BosId ? 1 : 0;
        int keep = slot.Job!.Request.KeepTokens switch
        {
            null => bos,
            -1 => prompt.Length,
            int n => Math.Min(prompt.Length, n + bos),
        };
        int discard = (slot.Position - keep) / 2;
        if (discard < 1) return false;
        slot.Transformer.ShiftContext(keep, discard);
        slot.Position -= discard;
        slot.ExactLength = Math.Min(slot.ExactLength, keep);
        lock (_gate) _contextShifts++;
        return true;
    }

    private void Guard(Slot slot, Action step)
    {
        try
        {
            step();
        }
        catch (Exception e)
        {
            // An engine error ends this request only; the other slots go on.
            var job = slot.Job!;
            lock (_gate)
            {
                _failed++;
                slot.Job = null;
                slot.Transformer.Cache.Truncate(0); // the step may have left it half written
            }
            slot.StopObserving();
            job.Fail(e);
        }
    }

    private void Finish(Slot slot, FinishReason reason)
    {
        var job = slot.Job!;
        if (reason != FinishReason.Cancelled)
        {
            // Whatever a stop sequence or an unfinished character held back is released at the end.
            string rest = slot.StopFilter!.Append(slot.Detokenizer!.Flush()) + slot.StopFilter.Flush();
            if (rest.Length > 0)
            {
                slot.Text.Append(rest);
                job.Publish(new CompletionUpdate(-1, rest, null));
            }
        }
        var promptTime = slot.PromptTime;
        var decodeTime = slot.DecodeStartedAt == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(slot.DecodeStartedAt);
        ClockSummary? clock = null;
        if (job.Request.ClockSummary)
        {
            long cycles = (long)(slot.Prefilled - slot.Reused + Math.Max(0, slot.Generated.Count - 1)) * _model.Config.Layers;
            var perCycle = cycles == 0 ? TimeSpan.Zero : (promptTime + decodeTime) / cycles;
            clock = new ClockSummary(_model.Config.Layers, promptTime, decodeTime, perCycle, slot.FinalTopK ?? [],
                CycleSummaries(slot, job.Request.ClockSummaryTopK));
        }
        float[]? embedding = reason == FinishReason.Cancelled ? null : slot.Embedding?.ToVector();
        slot.StopObserving();
        var result = new CompletionResult(slot.Prompt.Length, slot.Generated.ToArray(), slot.Text.ToString(), reason,
            slot.QueueTime, promptTime, decodeTime, clock) { CachedTokens = slot.Reused, Embedding = embedding };
        lock (_gate)
        {
            if (reason == FinishReason.Cancelled) _cancelled++;
            else _completed++;
            slot.Job = null;
            // The next request may start from these tokens' keys and values: all of them, or after a context shift only
            // those before the dropped ones (the moved keys were re-rotated, and later entries saw the dropped tokens).
            slot.Transformer.Cache.Truncate(Math.Min(slot.Position, slot.ExactLength));
        }
        job.Complete(result);
    }

    /// <summary>Per-cycle times from the slot's totals, and the logit lens of each cycle's residual at the final position.</summary>
    private List<CycleSummary> CycleSummaries(Slot slot, int k)
    {
        var result = new List<CycleSummary>();
        if (slot.Totals is null || slot.LensResiduals is null) return result;
        var lens = new LogitLens(slot.Transformer);
        for (int layer = 0; layer < _model.Config.Layers; layer++)
        {
            var stages = Enum.GetValues<Stage>().ToDictionary(s => s.Name(), s => slot.Totals.PerToken(layer, s));
            var top = lens.Top(slot.LensResiduals[layer], k)
                .Select(t => new TokenLogprob(t.Token, TokenText(t.Token), MathF.Log(t.Probability), [])).ToList();
            result.Add(new CycleSummary(layer, slot.Totals.PerToken(layer), stages, top));
        }
        return result;
    }

    private TokenLogprob Logprob(ReadOnlySpan<float> logits, int id, int top)
    {
        float logSum = LogSumExp(logits);
        var alternatives = top > 0 ? TopTokens(logits, top, logSum) : [];
        return new TokenLogprob(id, TokenText(id), logits[id] - logSum, alternatives);
    }

    private List<TokenLogprob> TopTokens(ReadOnlySpan<float> logits, int k) => TopTokens(logits, k, LogSumExp(logits));

    private List<TokenLogprob> TopTokens(ReadOnlySpan<float> logits, int k, float logSum)
    {
        // Selection of the k largest (ties: lower id first); k is small.
        var best = new List<int>(k);
        for (int round = 0; round < Math.Min(k, logits.Length); round++)
        {
            int pick = -1;
            for (int i = 0; i < logits.Length; i++)
                if (!best.Contains(i) && (pick < 0 || logits[i] > logits[pick])) pick = i;
            best.Add(pick);
        }
        var top = new List<TokenLogprob>(best.Count);
        foreach (int i in best) top.Add(new TokenLogprob(i, TokenText(i), logits[i] - logSum, []));
        return top;
    }

    private string TokenText(int id)
    {
        // Decoded as if after an ordinary token, so a leading space stays (it is only dropped right after BOS).
        var bytes = new List<byte>();
        int ordinary = _model.Tokenizer.BosId == 0 ? 1 : 0;
        _model.Tokenizer.AppendBytes(id, ordinary, bytes);
        return System.Text.Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>log(sum(exp(x))), with the maximum subtracted for stability.</summary>
    private static float LogSumExp(ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (float v in x) max = MathF.Max(max, v);
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        return max + (float)Math.Log(sum);
    }

    /// <summary>Stops the scheduler thread after the running jobs finish; queued jobs are cancelled.</summary>
    public void Dispose()
    {
        List<CompletionJob> waiting;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            waiting = _queue.ToList();
            _queue.Clear();
            Monitor.Pulse(_gate);
        }
        foreach (var job in waiting)
            job.Complete(new CompletionResult(job.Request.PromptIds.Length, [], "", FinishReason.Cancelled, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, null));
        _thread.Join();
    }

    /// <summary>One sequence's state: its processor, the job it runs, and what its KV cache holds between jobs.</summary>
    private sealed class Slot(int index, Transformer transformer)
    {
        public int Index { get; } = index;
        public Transformer Transformer { get; } = transformer;
        public CompletionJob? Job;
        public int[] Prompt = [];
        public int Prefilled, Position, LastToken;
        public IDrafter? Drafter;      // proposes tokens after the last one when speculative decoding is on
        public int[] Draft = [];       // (draft max) this round's drafted tokens
        public DraftLength DraftLength; // drafts per round, following acceptance
        public int ChunkRows, DraftCount, LogitsRow; // this round: prompt tokens run, tokens drafted, the first row with logits

        /// <summary>True while the prompt is being read (no token sampled yet).</summary>
        public bool Reading => Prefilled < Prompt.Length;
        public int Reused;        // prompt tokens of the job taken from the cache: positions [0, Reused) were not evaluated
        public int ExactLength;   // cache positions [0, ExactLength) hold History's tokens as a fresh evaluation would
        public ResidualSteering? CacheSteering; // the steering the cached entries were computed with
        public LoraAdapters? CacheLora;          // the LoRA adapters they were computed with (null: none)
        public long LastUsed;     // admission stamp of the last job (0: never used)
        public bool Reserved;     // its cache is being saved, restored or erased: no job may start on it
        public Sampler? Sampler;
        public StreamingDetokenizer? Detokenizer;
        public StopSequenceFilter? StopFilter;
        public readonly List<int> History = [];
        public readonly List<int> Generated = [];
        public readonly System.Text.StringBuilder Text = new();
        public long StartedAt, DecodeStartedAt;
        public TimeSpan QueueTime, PromptTime;
        public List<TokenLogprob>? FinalTopK;
        public CycleTotals? Totals;
        public float[][]? LensResiduals;   // (layers, dim): resid_post of each cycle at the latest position
        public MeanPooling? Embedding;

        /// <summary>Attaches the clock for a job that asked for the clock summary.</summary>
        public void StartObserving(int layers, int dim)
        {
            Totals = new CycleTotals(layers);
            var residuals = LensResiduals = new float[layers][];
            for (int l = 0; l < layers; l++) residuals[l] = new float[dim];
            Transformer.Observer = Totals;
            Transformer.Hook = (point, layer, position, activation) =>
            {
                if (point == ActivationPoint.ResidPost) activation.CopyTo(residuals[layer]);
            };
        }

        /// <summary>Detaches the clock, so the next job on this slot runs without it.</summary>
        public void StopObserving()
        {
            Transformer.Observer = null;
            Transformer.Hook = null;
            Totals = null;
            LensResiduals = null;
            Embedding = null;
        }

        /// <summary>Collects each prompt token's last hidden state for a job that asked for an embedding.</summary>
        private void StartEmbedding(Model model)
        {
            var embedding = Embedding = new MeanPooling(model);
            int last = model.Config.Layers - 1;
            Transformer.Hook = (point, layer, position, activation) =>
            {
                if (point == ActivationPoint.ResidPost && layer == last) embedding.Add(activation, position);
            };
        }

        public void Start(CompletionJob job, Model model, ResidualSteering? defaultSteering, long stamp)
        {
            Job = job;
            Prompt = job.Request.PromptIds;
            // The cached prefix is kept; the last prompt token is always evaluated, for the logits of the first sample.
            // An embedding averages every token's hidden state, which the cache does not hold: its prompt is read whole.
            var steering = job.Request.Steering ?? defaultSteering;
            var lora = job.Lora ?? model.Lora;
            Reused = job.Request.CachePrompt && !job.Request.Embed ? Math.Min(CommonPrefix(this, Prompt, steering, lora), Prompt.Length - 1) : 0;
            Prefilled = Position = Reused;
            Transformer.Cache.Truncate(Reused); // roll back to the reused prefix
            ExactLength = int.MaxValue;
            CacheSteering = steering;
            CacheLora = lora;
            LastUsed = stamp;
            DraftLength = default;
            LastToken = -1;
            var constraint = job.Request.Grammar is { } grammar
                ? new GrammarConstraint(grammar, TokenTrie.For(model.Tokenizer, model.Config.VocabSize))
                : null;
            Sampler = new Sampler(model.Config.VocabSize, job.Request.Sampler, constraint);
            Detokenizer = new StreamingDetokenizer(model.Tokenizer);
            // The prompt's ids prime the detokenizer, so the first generated piece is decoded after its real predecessor.
            foreach (int id in Prompt) Detokenizer.Append(id);
            Detokenizer.Flush();
            StopFilter = new StopSequenceFilter(job.Request.Stop);
            if (job.Request.ClockSummary) StartObserving(model.Config.Layers, model.Config.Dim);
            if (job.Request.Embed) StartEmbedding(model);
            Transformer.Steering = steering;
            Transformer.Lora = job.Lora;
            History.Clear();
            History.AddRange(Prompt);
            Generated.Clear();
            Text.Clear();
            StartedAt = Stopwatch.GetTimestamp();
            DecodeStartedAt = 0;
            QueueTime = Stopwatch.GetElapsedTime(job.EnqueuedAt);
            PromptTime = TimeSpan.Zero;
            FinalTopK = null;
        }
    }
}

/// <summary>A snapshot of a <see cref="SlotScheduler"/>'s load and counters.</summary>
/// <param name="Slots">Slots in all.</param>
/// <param name="ActiveSlots">Slots running a request.</param>
/// <param name="QueueDepth">Requests waiting for a slot.</param>
/// <param name="QueueCapacity">Most requests that may wait.</param>
/// <param name="Completed">Requests that ended normally (stop or length).</param>
/// <param name="Cancelled">Requests cancelled while queued or running.</param>
/// <param name="Failed">Requests ended by an engine error.</param>
/// <param name="Rejected">Requests refused because the queue was full.</param>
/// <param name="PromptTokens">Prompt tokens evaluated (those taken from a slot's cache are <see cref="SchedulerStats.CachedPromptTokens"/>).</param>
/// <param name="GeneratedTokens">Tokens generated.</param>
/// <param name="KvCacheUsed">KV-cache positions in use across the slots.</param>
/// <param name="KvCacheCapacity">KV-cache positions in all (slots × context length).</param>
/// <param name="BusyTime">Time the scheduler thread spent running rounds.</param>
public sealed record SchedulerStats(int Slots, int ActiveSlots, int QueueDepth, int QueueCapacity,
    long Completed, long Cancelled, long Failed, long Rejected, long PromptTokens, long GeneratedTokens,
    long KvCacheUsed, long KvCacheCapacity, TimeSpan BusyTime)
{
    /// <summary>Prompt tokens whose keys and values a slot's cache already held, so they were not evaluated.</summary>
    public long CachedPromptTokens { get; init; }

    /// <summary>Tokens decoded in batched steps, several slots in one pass over the weights.</summary>
    public long BatchedTokens { get; init; }

    /// <summary>Batched steps that failed, after which their slots ran one by one.</summary>
    public long BatchFallbacks { get; init; }

    /// <summary>Speculative decoding: slot steps that verified drafted tokens.</summary>
    public long DraftPasses { get; init; }

    /// <summary>Speculative decoding: tokens drafted into those steps.</summary>
    public long DraftedTokens { get; init; }

    /// <summary>Speculative decoding: drafted tokens the model chose too, whose rows were used.</summary>
    public long AcceptedDraftTokens { get; init; }

    /// <summary>Speculative decoding: drafts that failed, after which the slot's token ran without drafts.</summary>
    public long DraftFallbacks { get; init; }

    /// <summary>Context shifts: generations that filled their context and went on after dropping half of it.</summary>
    public long ContextShifts { get; init; }

    /// <summary>Generated tokens per second of busy time.</summary>
    public double GeneratedTokensPerSecond => GeneratedTokens / Math.Max(BusyTime.TotalSeconds, 1e-9);
}
