using ClockLM.Clock;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// The rows that go through the cycles together, and their activations: row i is token <see cref="Tokens"/>[i] at
/// position <see cref="Positions"/>[i] of the sequence <see cref="Sequences"/>[i] (whose KV cache it reads and
/// writes, and whose logits it may set). One row is a token being decoded; the rows of one sequence at consecutive
/// positions are a prompt chunk; rows of different sequences are a batched decoding step. Rows of one sequence come
/// in position order. Every buffer is (rows, width), row-major.
/// </summary>
internal sealed class TokenBatch
{
    private readonly LlamaConfig _config;
    private int _capacity;

    public TokenBatch(LlamaConfig config)
    {
        _config = config;
        Seams = new long[SeamCount(config.Layers)];
        FetchedBytes = new long[config.Layers];
    }

    /// <summary>Rows in the batch.</summary>
    public int Count { get; private set; }

    /// <summary>Rows from this one on get logits (<see cref="Count"/>: none).</summary>
    public int LogitsFrom;

    public Transformer[] Sequences = [];   // (rows)
    public int[] Tokens = [], Positions = []; // (rows)

    public float[] X = [];        // the residual stream (rows, dim): the register file, changed only by write-back
    public float[] XB = [];       // normalized input of q/k/v, then of the feed-forward network (rows, dim); pinned
    public float[] Mid = [];      // resid_mid: x + the attention output, forwarded to execute (rows, dim)
    public float[] AttnOut = [];  // attention output projected back, hook_attn_out (rows, dim)
    public float[] FfnOut = [];   // feed-forward output, hook_mlp_out (rows, dim)
    public float[] Q = [];        // queries, all heads (rows, q_dim)
    public float[] K = [], V = []; // this position's keys and values (rows, kv_dim)
    public float[] Heads = [];    // attention of every head before the output projection (rows, q_dim); pinned
    public float[] HB = [];       // feed-forward gate, then the activation (rows, hidden_dim); pinned
    public float[] HB2 = [];      // feed-forward up (rows, hidden_dim)
    public float[] RopeCos = [], RopeSin = [];               // cos/sin of pos * theta_i per row (rows, head_size / 2)
    public float[] RopeCosSliding = [], RopeSinSliding = []; // the same for sliding-window layers' frequencies
    private float[] _logits = [];

    /// <summary>XB, Heads and HB as the inputs of matrix products, each loaded when its buffer is written.</summary>
    public readonly ProductInput Normed = new(), HeadsInput = new(), Hidden = new();

    /// <summary>The clock: the cycle and stage that run next, and whether the batch is between its start and commit.</summary>
    public int Layer;
    public Stage NextStage;
    public bool InFlight;

    /// <summary>Observers of the rows' sequences, each once (usually none or one).</summary>
    public readonly List<ICycleObserver> Observers = [];

    /// <summary>True when some row's sequence has a hook attached.</summary>
    public bool Hooked;

    /// <summary>
    /// The clock's seams while observers watch: one <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> where each
    /// piece of the pass ends and the next begins, so a stage costs one timestamp and the pieces tile the pass with no
    /// gap. Seam 0: the batch begins; 1: its embeddings are done; <see cref="SeamAfter"/>(layer, stage): that stage is
    /// done; the last: the commit is done (the one before it is where the commit began). (2 + 5 * layers + 1)
    /// </summary>
    public readonly long[] Seams;

    /// <summary>How long the batch's embeddings took, for the observers' <see cref="TokenEvent"/> (kept apart from the
    /// seams, which stepping moves).</summary>
    public long EmbeddingTicks;

    /// <summary>Weight bytes each layer's fetch stage asked to be brought in (layers).</summary>
    public readonly long[] FetchedBytes;

    /// <summary>Stages already reported to the observers, counted from cycle 0's fetch.</summary>
    public int StagesReported;

    /// <summary>What the observers are handed (made at the first report, then reused).</summary>
    public CycleReport? Report;

    /// <summary>The seam where <paramref name="stage"/> of <paramref name="layer"/> ends (it begins at the one before).</summary>
    public static int SeamAfter(int layer, Stage stage) => 2 + layer * StageNames.Count + (int)stage;

    /// <summary>Seams of a pass through <paramref name="layers"/> cycles: begin, embeddings, every stage, commit.</summary>
    public static int SeamCount(int layers) => 3 + layers * StageNames.Count;

    /// <summary>Loads rows: <paramref name="sequences"/>[i] runs <paramref name="tokens"/>[i] at
    /// <paramref name="positions"/>[i]; rows from <paramref name="logitsFrom"/> on will get logits.</summary>
    public void Load(ReadOnlySpan<Transformer> sequences, ReadOnlySpan<int> tokens, ReadOnlySpan<int> positions, int logitsFrom)
    {
        int n = sequences.Length;
        Reserve(n);
        sequences.CopyTo(Sequences);
        tokens.CopyTo(Tokens);
        positions.CopyTo(Positions);
        (Count, LogitsFrom) = (n, logitsFrom);
        Observers.Clear();
        Hooked = false;
        foreach (var s in sequences)
        {
            if (s.Observer is { } o && !Observers.Contains(o)) Observers.Add(o);
            Hooked |= s.Hook is not null;
        }
    }

    /// <summary>Forgets the rows' sequences, so the batch does not keep them alive.</summary>
    public void Release() => Array.Clear(Sequences, 0, Count);

    /// <summary>Row <paramref name="i"/> of a (rows, <paramref name="width"/>) buffer.</summary>
    public static Span<float> Row(float[] buffer, int i, int width) => buffer.AsSpan(i * width, width);

    private float[] _patterns = [];
    private int[] _patternOffsets = [];

    /// <summary>Room for every row's attention weights, row i (heads, pos+1) at <see cref="PatternOffset"/>(i): kept
    /// only while a hook reads them.</summary>
    public float[] Patterns(int heads)
    {
        if (_patternOffsets.Length < Count + 1) _patternOffsets = new int[Count + 1];
        long total = 0;
        for (int i = 0; i < Count; i++)
        {
            _patternOffsets[i] = checked((int)total);
            total += (long)heads * (Positions[i] + 1);
        }
        if (_patterns.Length < total) _patterns = new float[total];
        return _patterns;
    }

    /// <summary>Where row <paramref name="i"/>'s attention weights start in <see cref="Patterns"/>.</summary>
    public int PatternOffset(int i) => _patternOffsets[i];

    /// <summary>Row <paramref name="i"/>'s attention weights, (heads, pos+1).</summary>
    public Span<float> Pattern(int i, int heads) => _patterns.AsSpan(_patternOffsets[i], heads * (Positions[i] + 1));

    /// <summary>Room for the logits of <paramref name="rows"/> rows (rows, vocab).</summary>
    public float[] Logits(int rows)
    {
        if (_logits.Length < (long)rows * _config.VocabSize) _logits = new float[(long)rows * _config.VocabSize];
        return _logits;
    }

    private void Reserve(int rows)
    {
        if (rows <= _capacity) return;
        var c = _config;
        int half = c.HeadSize / 2;
        X = new float[rows * c.Dim];
        XB = GC.AllocateArray<float>(rows * c.Dim, pinned: true);
        Mid = new float[rows * c.Dim];
        AttnOut = new float[rows * c.Dim];
        FfnOut = new float[rows * c.Dim];
        Q = new float[rows * c.QDim];
        K = new float[rows * c.KvDim];
        V = new float[rows * c.KvDim];
        Heads = GC.AllocateArray<float>(rows * c.QDim, pinned: true);
        HB = GC.AllocateArray<float>(rows * c.HiddenDim, pinned: true);
        HB2 = new float[rows * c.HiddenDim];
        RopeCos = new float[rows * half];
        RopeSin = new float[rows * half];
        RopeCosSliding = new float[rows * half];
        RopeSinSliding = new float[rows * half];
        Sequences = new Transformer[rows];
        Tokens = new int[rows];
        Positions = new int[rows];
        _capacity = rows;
    }
}
