using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Families;

/// <summary>A tensor of a family's GGUF layout: a matrix (rows, cols) or, with one row, a vector.</summary>
public sealed record FamilyTensor(string Name, int Rows, int Cols);

/// <summary>
/// Random-weight GGUF files in the tensor names and metadata keys llama.cpp reads for an architecture, with the small
/// SentencePiece vocabulary (the oracle is given token ids, so any vocabulary type the architecture accepts works).
/// </summary>
public static class FamilyModels
{
    /// <summary>The tensors every Llama-like family shares: token embedding, per-layer attention and feed-forward
    /// norms, output projection and down projection, final norm and an untied output head.</summary>
    public static List<FamilyTensor> LlamaLayout(LlamaConfig c, bool fusedQkv = false, bool fusedGateUp = false)
    {
        var tensors = new List<FamilyTensor> { new("token_embd.weight", c.VocabSize, c.Dim) };
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            tensors.Add(new(p + "attn_norm.weight", 1, c.Dim));
            if (fusedQkv) tensors.Add(new(p + "attn_qkv.weight", c.QDim + 2 * c.KvDim, c.Dim));
            else
            {
                tensors.Add(new(p + "attn_q.weight", c.QDim, c.Dim));
                tensors.Add(new(p + "attn_k.weight", c.KvDim, c.Dim));
                tensors.Add(new(p + "attn_v.weight", c.KvDim, c.Dim));
            }
            tensors.Add(new(p + "attn_output.weight", c.Dim, c.QDim));
            tensors.Add(new(p + "ffn_norm.weight", 1, c.Dim));
            if (fusedGateUp) tensors.Add(new(p + "ffn_up.weight", 2 * c.HiddenDim, c.Dim));
            else
            {
                tensors.Add(new(p + "ffn_gate.weight", c.HiddenDim, c.Dim));
                tensors.Add(new(p + "ffn_up.weight", c.HiddenDim, c.Dim));
            }
            tensors.Add(new(p + "ffn_down.weight", c.Dim, c.HiddenDim));
        }
        tensors.Add(new("output_norm.weight", 1, c.Dim));
        tensors.Add(new("output.weight", c.VocabSize, c.Dim));
        return tensors;
    }

    /// <summary>
    /// A small random-weight model of each family the engine runs, in its own layout and keys, with every option of
    /// the family on: llama (Llama 3 RoPE frequency factors), qwen2 (q/k/v biases, halves RoPE), qwen3 (head norms,
    /// heads wider than dim / heads, tied output), gemma2 (GELU gate, post-norms, soft-caps, sliding window on every
    /// other layer), gemma3 (head norms, five sliding layers with their own RoPE base, then a global one), phi3 (fused
    /// attn_qkv and gate/up) and gpt2 (learned positions, LayerNorm, biases, plain GELU). Windows of 5 positions, so a
    /// few hundred positions cross them many times.
    /// </summary>
    public static void WriteArchitecture(string path, string arch, int contextLength)
    {
        var shape = new LlamaConfig(Dim: 128, HiddenDim: 256, Layers: 3, Heads: 4, KvHeads: 2, VocabSize: 400, ContextLength: contextLength, RmsEpsilon: 1e-6f);
        var wide = shape with { HeadDim = 48 };
        List<FamilyTensor> WithEachLayer(LlamaConfig c, List<FamilyTensor> tensors, params (string Suffix, int Length)[] vectors)
        {
            for (int l = 0; l < c.Layers; l++)
                foreach (var (suffix, length) in vectors) tensors.Add(new($"blk.{l}.{suffix}", 1, length));
            return tensors;
        }
        List<FamilyTensor> Tied(List<FamilyTensor> tensors)
        {
            tensors.RemoveAll(t => t.Name == "output.weight");
            return tensors;
        }
        void WideHeads(GgufWriter w)
        {
            w.Set($"{arch}.attention.key_length", 48u);
            w.Set($"{arch}.attention.value_length", 48u);
            w.Set($"{arch}.attention.sliding_window", 5u);
        }
        switch (arch)
        {
            case "llama":
                var llama = FamilyModels.LlamaLayout(shape);
                llama.Add(new("rope_freqs.weight", 1, shape.HeadSize / 2));
                Write(path, arch, shape, llama, seed: 3, ropeFactor: i => 1 + i % 4);
                break;
            case "qwen2":
                Write(path, arch, shape with { RopeBase = 1000000f }, WithEachLayer(shape, LlamaLayout(shape),
                    ("attn_q.bias", shape.QDim), ("attn_k.bias", shape.KvDim), ("attn_v.bias", shape.KvDim)), seed: 7);
                break;
            case "qwen3":
                Write(path, arch, wide, Tied(WithEachLayer(wide, LlamaLayout(wide), ("attn_q_norm.weight", 48), ("attn_k_norm.weight", 48))), w =>
                {
                    w.Set("qwen3.attention.key_length", 48u);
                    w.Set("qwen3.attention.value_length", 48u);
                }, seed: 9);
                break;
            case "gemma2":
                Write(path, arch, wide with { Layers = 4 }, Tied(WithEachLayer(wide with { Layers = 4 }, LlamaLayout(wide with { Layers = 4 }),
                    ("post_attention_norm.weight", 128), ("post_ffw_norm.weight", 128))), w =>
                {
                    WideHeads(w);
                    w.Set("gemma2.attn_logit_softcapping", 0.5f);
                    w.Set("gemma2.final_logit_softcapping", 1.0f);
                }, seed: 17);
                break;
            case "gemma3":
                var gemma3 = wide with { Layers = 7, RopeBase = 1000000f };
                Write(path, arch, gemma3, Tied(WithEachLayer(gemma3, LlamaLayout(gemma3), ("post_attention_norm.weight", 128),
                    ("post_ffw_norm.weight", 128), ("attn_q_norm.weight", 48), ("attn_k_norm.weight", 48))), WideHeads, seed: 19);
                break;
            case "phi3":
                var phi3 = shape with { KvHeads = 4, RmsEpsilon = 1e-5f };
                Write(path, arch, phi3, LlamaLayout(phi3, fusedQkv: true, fusedGateUp: true), seed: 13);
                break;
            case "gpt2":
                WriteGpt2(path, layers: 2, contextLength);
                break;
            default:
                throw new ArgumentException($"no example model of architecture '{arch}'", nameof(arch));
        }
    }

    /// <summary>A random-weight GPT-2 GGUF with the real GPT-2 vocabulary: learned positions, LayerNorm with biases, fused
    /// QKV and biases everywhere (dim 64, 4 heads, ffn 256). Returns its configuration.</summary>
    public static LlamaConfig WriteGpt2(string path, int layers, int contextLength)
    {
        string vocab = SharedData.Vocab("ggml-vocab-gpt-2.gguf");
        int vocabSize;
        using (var file = GgufFile.Open(vocab))
            vocabSize = file.GetArray<string>("tokenizer.ggml.tokens").Length;
        var c = new LlamaConfig(Dim: 64, HiddenDim: 256, Layers: layers, Heads: 4, KvHeads: 4, VocabSize: vocabSize, ContextLength: contextLength);
        var tensors = new List<FamilyTensor> { new("token_embd.weight", vocabSize, c.Dim), new("position_embd.weight", c.ContextLength, c.Dim) };
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            tensors.AddRange([
                new(p + "attn_norm.weight", 1, c.Dim), new(p + "attn_norm.bias", 1, c.Dim),
                new(p + "attn_qkv.weight", 3 * c.Dim, c.Dim), new(p + "attn_qkv.bias", 1, 3 * c.Dim),
                new(p + "attn_output.weight", c.Dim, c.Dim), new(p + "attn_output.bias", 1, c.Dim),
                new(p + "ffn_norm.weight", 1, c.Dim), new(p + "ffn_norm.bias", 1, c.Dim),
                new(p + "ffn_up.weight", c.HiddenDim, c.Dim), new(p + "ffn_up.bias", 1, c.HiddenDim),
                new(p + "ffn_down.weight", c.Dim, c.HiddenDim), new(p + "ffn_down.bias", 1, c.Dim),
            ]);
        }
        tensors.AddRange([new("output_norm.weight", 1, c.Dim), new("output_norm.bias", 1, c.Dim), new("output.weight", vocabSize, c.Dim)]);
        Write(path, "gpt2", c, tensors, w => w.Set("gpt2.attention.layer_norm_epsilon", 1e-5f), seed: 23, std: 0.1f,
            vocabularyFile: vocab);
        return c;
    }

    /// <summary>Writes an F32 model of <paramref name="arch"/>: the shape under <c>{arch}.*</c> keys, <paramref name="extra"/>
    /// for family-specific keys, and the tensors with random values: matrices N(0, std), norm weights 1 + N(0, 0.1),
    /// biases N(0, 0.1), and RoPE frequency factors from <paramref name="ropeFactor"/>.</summary>
    public static void Write(string path, string arch, LlamaConfig c, IEnumerable<FamilyTensor> tensors,
        Action<GgufWriter>? extra = null, ulong seed = 1, float std = 0.05f, Func<int, float>? ropeFactor = null,
        SentencePieceTokenizer? vocabulary = null, string? vocabularyFile = null)
    {
        var writer = new GgufWriter();
        writer.Set("general.architecture", arch);
        writer.Set("general.name", $"random {arch}");
        writer.Set($"{arch}.context_length", (uint)c.ContextLength);
        writer.Set($"{arch}.embedding_length", (uint)c.Dim);
        writer.Set($"{arch}.block_count", (uint)c.Layers);
        writer.Set($"{arch}.feed_forward_length", (uint)c.HiddenDim);
        writer.Set($"{arch}.rope.dimension_count", (uint)c.HeadSize);
        writer.Set($"{arch}.attention.head_count", (uint)c.Heads);
        writer.Set($"{arch}.attention.head_count_kv", (uint)c.KvHeads);
        writer.Set($"{arch}.attention.layer_norm_rms_epsilon", c.RmsEpsilon);
        writer.Set($"{arch}.rope.freq_base", c.RopeBase);
        extra?.Invoke(writer);
        if (vocabularyFile is null) LlamaGgufExport.AddTokenizer(writer, vocabulary ?? TestModels.SmallVocabulary(c.VocabSize));
        else
        {
            // Every tokenizer.* key of another GGUF file (a byte-level BPE vocabulary with its merges).
            using var file = GgufFile.Open(vocabularyFile);
            foreach (string key in file.MetadataKeys.Where(k => k.StartsWith("tokenizer.", StringComparison.Ordinal)))
                writer.Set(key, file.Metadata[key]);
        }

        foreach (var (name, rows, cols) in tensors)
        {
            long[] dims = rows == 1 ? [cols] : [cols, rows];
            writer.AddTensor(name, GgmlType.F32, dims, stream =>
            {
                var values = new float[cols];
                var bytes = new byte[GgmlTypeInfo.RowBytes(GgmlType.F32, cols)];
                for (int r = 0; r < rows; r++)
                {
                    var rng = new GaussianRandom(seed ^ SyntheticModel.StableHash(name) * 0x9E3779B97F4A7C15UL ^ (ulong)(r + 1) * 0xD1B54A32D192ED03UL);
                    for (int i = 0; i < cols; i++)
                    {
                        float g = rng.Next();
                        values[i] = name == "rope_freqs.weight" ? ropeFactor!(i)
                            : name.EndsWith("norm.weight", StringComparison.Ordinal) ? 1 + 0.1f * g
                            : name.EndsWith(".bias", StringComparison.Ordinal) ? 0.1f * g
                            : std * g;
                    }
                    Quantize.Row(GgmlType.F32, values, bytes);
                    stream.Write(bytes);
                }
            });
        }
        writer.Write(path);
    }
}
