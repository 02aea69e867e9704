using ClockLM.Gguf;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// One low-rank update of a base matrix W (out × in): W' = W + s·B·A with A (rank × in) and B (out × rank), both
/// row-major as GGUF stores them (llama.cpp's <c>lora_a</c> has ggml shape [in, rank], <c>lora_b</c> [rank, out]).
/// </summary>
/// <param name="A">(rank, in): projects the product's input down to rank values.</param>
/// <param name="B">(out, rank): projects those back up to the product's output.</param>
/// <param name="Rank">Rows of A, columns of B.</param>
/// <param name="Inputs">Columns of A: the base matrix's input width.</param>
/// <param name="Outputs">Rows of B: the base matrix's output width.</param>
public sealed record LoraPair(float[] A, float[] B, int Rank, int Inputs, int Outputs);

/// <summary>
/// A LoRA adapter in llama.cpp's GGUF format (what <c>convert_lora_to_gguf.py</c> writes and
/// <c>llama_adapter_lora_init</c> reads): <c>general.type = adapter</c>, <c>general.architecture</c> the base model's,
/// <c>adapter.type = lora</c>, <c>adapter.lora.alpha</c> (F32), and for every adapted base tensor NAME a pair
/// <c>NAME.lora_a</c> and <c>NAME.lora_b</c> (e.g. <c>blk.0.attn_q.weight.lora_a</c>; <c>token_embd.weight</c>'s the other way round, see <see cref="EmbeddingTensor"/>), of any type ClockLM reads
/// (F32, F16, BF16, Q8_0...: the converter's default is F16). Tensors named <c>*_norm.weight</c> are skipped, as
/// llama.cpp skips them (counted in <see cref="SkippedTensors"/>).
/// </summary>
/// <remarks>
/// Applied at scale s (<c>--lora-scaled FILE s</c>), a pair adds s·(alpha/rank)·B·(A·x) to the product W·x, and just
/// s·B·(A·x) when alpha is 0 or absent — llama.cpp's rule (<c>llama_adapter_lora_weight::get_scale</c>), which is
/// PEFT's scaling = alpha / rank for a file that states its alpha. The adapter is read into memory (it is small: rank
/// × (in + out) values per matrix); the base weights are never touched (<see cref="LoraAdapters"/>).
/// </remarks>
public sealed class LoraAdapter
{
    /// <summary>Suffix of the down projection's tensor name.</summary>
    public const string SuffixA = ".lora_a";

    /// <summary>Suffix of the up projection's tensor name.</summary>
    public const string SuffixB = ".lora_b";

    /// <summary>The token embedding's tensor name. Its pair is stored the other way round (llama.cpp's
    /// <c>build_inp_embd</c> gathers rows of A by token): lora_a has ggml shape [rank, vocab] and lora_b [rank, dim].
    /// In memory it is kept like every other pair, A (rank, vocab) and B (dim, rank): the embedding as a product that
    /// maps a one-hot token (vocab) to its row (dim).</summary>
    public const string EmbeddingTensor = "token_embd.weight";

    private byte[]? _contentHash;

    /// <summary>Creates an adapter from pairs by base tensor name.</summary>
    /// <exception cref="ArgumentException">No pair, a pair whose arrays do not have its shape, or a non-finite alpha.</exception>
    public LoraAdapter(string architecture, float alpha, IReadOnlyDictionary<string, LoraPair> pairs)
    {
        ArgumentException.ThrowIfNullOrEmpty(architecture);
        ArgumentNullException.ThrowIfNull(pairs);
        if (!float.IsFinite(alpha)) throw new ArgumentException($"LoRA alpha {alpha} is not a finite number", nameof(alpha));
        if (pairs.Count == 0) throw new ArgumentException("a LoRA adapter needs at least one pair of matrices", nameof(pairs));
        foreach (var (name, p) in pairs)
            if (p.Rank <= 0 || p.Inputs <= 0 || p.Outputs <= 0 || p.A.Length != (long)p.Rank * p.Inputs || p.B.Length != (long)p.Outputs * p.Rank)
                throw new ArgumentException($"LoRA pair '{name}': A has {p.A.Length} values and B {p.B.Length}; rank {p.Rank}, in {p.Inputs}, out {p.Outputs} need {(long)p.Rank * p.Inputs} and {(long)p.Outputs * p.Rank}", nameof(pairs));
        Architecture = architecture;
        Alpha = alpha;
        Pairs = pairs;
    }

    /// <summary>The architecture of the base models it adapts (<c>general.architecture</c>).</summary>
    public string Architecture { get; }

    /// <summary><c>adapter.lora.alpha</c>; 0 when the file has none (then no alpha/rank factor applies).</summary>
    public float Alpha { get; }

    /// <summary>The pairs by the name of the base tensor they adapt (<c>blk.N.attn_q.weight</c>, <c>output.weight</c>...).</summary>
    public IReadOnlyDictionary<string, LoraPair> Pairs { get; }

    /// <summary>The file it was read from, when it was read from one (named in errors).</summary>
    public string? Path { get; private init; }

    /// <summary>Tensors of the file that were skipped (llama.cpp skips <c>*_norm.weight</c> too).</summary>
    public IReadOnlyList<string> SkippedTensors { get; private init; } = [];

    /// <summary>SHA-256 over the alpha and every pair in name order (name, rank, the bytes of A and B), computed once:
    /// two adapters with the same hash change a model alike at the same scale.</summary>
    public byte[] ContentHash => _contentHash ??= Hash();

    private byte[] Hash()
    {
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        hash.AppendData(BitConverter.GetBytes(Alpha));
        foreach (var (name, p) in Pairs.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            hash.AppendData(BitConverter.GetBytes(p.Rank));
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(p.A.AsSpan()));
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(p.B.AsSpan()));
        }
        return hash.GetHashAndReset();
    }

    /// <summary>The factor B·A·x is multiplied by for a pair of <paramref name="rank"/> at <paramref name="scale"/>:
    /// scale·alpha/rank, or scale alone when alpha is 0 (llama.cpp's rule).</summary>
    public float Factor(float scale, int rank) => Alpha != 0 ? scale * Alpha / rank : scale;

    /// <summary>Reads a LoRA adapter GGUF, checking what llama.cpp's loader checks (the metadata, every pair complete,
    /// lora_a and lora_b of matching rank) and that every value is finite.</summary>
    /// <exception cref="GgufFormatException">The file is not a LoRA adapter or breaks one of those rules; the message
    /// names the field or tensor, its value and what was expected.</exception>
    public static LoraAdapter Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such LoRA adapter file", path);
        using var file = GgufFile.Open(path);
        string? type = file.GetStringOrNull("general.type");
        if (type != "adapter")
            throw new GgufFormatException(path, $"general.type is {Quote(type)}; a LoRA adapter has 'adapter' (is this a model rather than an adapter?)");
        string? adapterType = file.GetStringOrNull("adapter.type");
        if (adapterType != "lora")
            throw new GgufFormatException(path, $"adapter.type is {Quote(adapterType)}; expected 'lora'");
        string architecture = file.GetStringOrNull("general.architecture")
            ?? throw new GgufFormatException(path, "general.architecture is missing; expected the base model's architecture (e.g. 'llama')");
        double alpha = file.GetNumber("adapter.lora.alpha", 0);
        if (!double.IsFinite(alpha)) throw new GgufFormatException(path, $"adapter.lora.alpha is {alpha}; expected a finite number");

        var a = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        var b = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        var skipped = new List<string>();
        foreach (var tensor in file.Tensors)
        {
            string name = tensor.Name;
            if (name.EndsWith(SuffixA, StringComparison.Ordinal)) a[name[..^SuffixA.Length]] = tensor;
            else if (name.EndsWith(SuffixB, StringComparison.Ordinal)) b[name[..^SuffixB.Length]] = tensor;
            else if (name.EndsWith("_norm.weight", StringComparison.Ordinal)) skipped.Add(name);
            else throw new GgufFormatException(path, $"tensor '{name}' is not a LoRA matrix; expected names ending in {SuffixA} or {SuffixB}");
        }
        if (a.Count == 0 && b.Count == 0) throw new GgufFormatException(path, "the adapter has no .lora_a/.lora_b tensors");

        var pairs = new Dictionary<string, LoraPair>(StringComparer.Ordinal);
        foreach (string name in a.Keys.Union(b.Keys).Order(StringComparer.Ordinal))
        {
            if (!a.TryGetValue(name, out var ta) || !b.TryGetValue(name, out var tb))
                throw new GgufFormatException(path, $"tensor '{name}{(ta is null ? SuffixB : SuffixA)}' has no {(ta is null ? SuffixA : SuffixB)} partner; a LoRA pair needs both");
            if (ta.Dimensions.Length != 2 || tb.Dimensions.Length != 2)
                throw new GgufFormatException(path, $"LoRA pair '{name}': lora_a is {ta.ShapeText} and lora_b {tb.ShapeText}; both must be matrices");
            // ggml shapes: lora_a [in, rank], lora_b [rank, out]; the embedding's lora_a [rank, vocab], lora_b [rank, dim].
            bool embedding = name == EmbeddingTensor;
            long rank = embedding ? ta.Dimensions[0] : ta.Dimensions[1], inputs = embedding ? ta.Dimensions[1] : ta.Dimensions[0], outputs = tb.Dimensions[1];
            if (tb.Dimensions[0] != rank)
                throw new GgufFormatException(path, embedding
                    ? $"LoRA pair '{name}': lora_a {ta.ShapeText} has rank {rank} but lora_b {tb.ShapeText} has {tb.Dimensions[0]}; expected lora_a [rank, vocab] and lora_b [rank, dim] for the embedding"
                    : $"LoRA pair '{name}': lora_a {ta.ShapeText} has rank {rank} but lora_b {tb.ShapeText} has {tb.Dimensions[0]}; expected lora_a [in, rank] and lora_b [rank, out] (a transposed lora_a, as old finetune files have, is not read)");
            if (rank <= 0 || inputs <= 0 || outputs <= 0 || rank > int.MaxValue / 4 || inputs * rank > int.MaxValue / 4 || outputs * rank > int.MaxValue / 4)
                throw new GgufFormatException(path, $"LoRA pair '{name}': shapes {ta.ShapeText} and {tb.ShapeText} are empty or too large");
            float[] down = Floats(file, path, ta);
            pairs[name] = new LoraPair(embedding ? Transpose(down, (int)inputs, (int)rank) : down, Floats(file, path, tb), (int)rank, (int)inputs, (int)outputs);
        }
        return new LoraAdapter(architecture, (float)alpha, pairs) { SkippedTensors = skipped, Path = path };
    }

    /// <summary>Writes the adapter in llama.cpp's format (F32 matrices, which llama.cpp reads as it reads the
    /// converter's F16 ones); the file appears whole or not at all.</summary>
    public void Save(string path, string? name = null)
    {
        var writer = new GgufWriter();
        writer.Set("general.architecture", Architecture);
        writer.Set("general.type", "adapter");
        if (name is not null) writer.Set("general.name", name);
        writer.Set("adapter.type", "lora");
        writer.Set("adapter.lora.alpha", Alpha);
        foreach (var (tensor, p) in Pairs.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (tensor == EmbeddingTensor) writer.AddTensor(tensor + SuffixA, [p.Rank, p.Inputs], Transpose(p.A, p.Rank, p.Inputs));
            else writer.AddTensor(tensor + SuffixA, [p.Inputs, p.Rank], p.A);
            writer.AddTensor(tensor + SuffixB, [p.Rank, p.Outputs], p.B);
        }
        writer.Write(path);
    }

    /// <summary>The transpose (cols, rows) of a row-major (rows, cols) matrix.</summary>
    private static float[] Transpose(float[] m, int rows, int cols)
    {
        var t = new float[m.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
        return t;
    }

    private static float[] Floats(GgufFile file, string path, GgufTensorInfo tensor)
    {
        int rows = checked((int)tensor.RowCount), cols = checked((int)tensor.RowLength);
        TensorView view;
        try
        {
            view = file.GetView(tensor);
        }
        catch (Exception e) when (e is NotSupportedException or ArgumentException)
        {
            throw new GgufFormatException(path, $"tensor '{tensor.Name}' is {tensor.Type}, a type ClockLM cannot read ({e.Message})");
        }
        var values = new float[(long)rows * cols];
        for (int r = 0; r < rows; r++) view.DequantizeRow(r, values.AsSpan(r * cols, cols));
        foreach (float v in values)
            if (!float.IsFinite(v)) throw new GgufFormatException(path, $"tensor '{tensor.Name}' holds {v}; every value must be finite");
        return values;
    }

    private static string Quote(string? value) => value is null ? "missing" : $"'{value}'";
}
