using System.Runtime.InteropServices;
using ClockLM.Gguf;
using ClockLM.Tensors;
using ClockLM.Tokenizers;

namespace ClockLM.Models;

/// <summary>Fills one row of a named tensor with floats; used to write a model without holding it in memory.</summary>
public delegate void TensorRowSource(string tensorName, int row, Span<float> destination);

/// <summary>
/// Writes a llama-architecture GGUF in llama.cpp's naming: the configuration under <c>llama.*</c>, the SentencePiece
/// vocabulary under <c>tokenizer.ggml.*</c>, norms in F32 and every matrix in the chosen type.
/// </summary>
public static class LlamaGgufExport
{
    /// <summary>Tensor names and (rows, cols) shapes of a Llama model, in file order.</summary>
    public static IEnumerable<(string Name, int Rows, int Cols)> Layout(LlamaConfig c, bool separateOutput)
    {
        yield return ("token_embd.weight", c.VocabSize, c.Dim);
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            yield return (p + "attn_norm.weight", 1, c.Dim);
            yield return (p + "attn_q.weight", c.Dim, c.Dim);
            yield return (p + "attn_k.weight", c.KvDim, c.Dim);
            yield return (p + "attn_v.weight", c.KvDim, c.Dim);
            yield return (p + "attn_output.weight", c.Dim, c.Dim);
            yield return (p + "ffn_norm.weight", 1, c.Dim);
            yield return (p + "ffn_gate.weight", c.HiddenDim, c.Dim);
            yield return (p + "ffn_down.weight", c.Dim, c.HiddenDim);
            yield return (p + "ffn_up.weight", c.HiddenDim, c.Dim);
        }
        yield return ("output_norm.weight", 1, c.Dim);
        if (separateOutput) yield return ("output.weight", c.VocabSize, c.Dim);
    }

    /// <summary>Writes the model. <paramref name="typeOf"/> picks each matrix's type (norms are always F32);
    /// <paramref name="progress"/> hears the fraction of tensor bytes written (0 to 1).</summary>
    public static void Write(string path, string name, LlamaConfig c, SentencePieceTokenizer tokenizer,
        bool separateOutput, Func<string, GgmlType> typeOf, TensorRowSource source, uint? fileType = null, IProgress<double>? progress = null) =>
        Write(path, name, c, writer => AddTokenizer(writer, tokenizer), separateOutput, typeOf, source, fileType, progress);

    /// <summary>Writes the model with the <c>tokenizer.ggml.*</c> keys <paramref name="addTokenizer"/> sets (any vocabulary type).</summary>
    public static void Write(string path, string name, LlamaConfig c, Action<GgufWriter> addTokenizer,
        bool separateOutput, Func<string, GgmlType> typeOf, TensorRowSource source, uint? fileType = null, IProgress<double>? progress = null)
    {
        var writer = new GgufWriter();
        writer.Set("general.architecture", "llama");
        writer.Set("general.name", name);
        if (fileType is { } ft) writer.Set("general.file_type", ft);
        writer.Set("llama.context_length", (uint)c.ContextLength);
        writer.Set("llama.embedding_length", (uint)c.Dim);
        writer.Set("llama.block_count", (uint)c.Layers);
        writer.Set("llama.feed_forward_length", (uint)c.HiddenDim);
        writer.Set("llama.rope.dimension_count", (uint)c.HeadSize);
        writer.Set("llama.attention.head_count", (uint)c.Heads);
        writer.Set("llama.attention.head_count_kv", (uint)c.KvHeads);
        writer.Set("llama.attention.layer_norm_rms_epsilon", c.RmsEpsilon);
        writer.Set("llama.rope.freq_base", c.RopeBase);
        writer.Set("llama.vocab_size", (uint)c.VocabSize);
        addTokenizer(writer);

        foreach (var (tensor, rows, cols) in Layout(c, separateOutput))
        {
            bool isNorm = rows == 1;
            GgmlType type = isNorm ? GgmlType.F32 : typeOf(tensor);
            long[] dims = isNorm ? [cols] : [cols, rows];
            writer.AddTensor(tensor, type, dims, (r, values) => source(tensor, r, values));
        }
        writer.Write(path, progress);
    }

    /// <summary>Adds the <c>tokenizer.ggml.*</c> keys of a SentencePiece vocabulary.</summary>
    public static void AddTokenizer(GgufWriter writer, SentencePieceTokenizer tokenizer)
    {
        int n = tokenizer.VocabSize;
        var pieces = new string[n];
        var scores = new float[n];
        var kinds = new int[n];
        for (int i = 0; i < n; i++)
        {
            pieces[i] = tokenizer.GetPiece(i);
            scores[i] = tokenizer.GetScore(i);
            kinds[i] = (int)tokenizer.GetKind(i);
        }
        writer.Set("tokenizer.ggml.model", "llama");
        writer.Set("tokenizer.ggml.tokens", GgufValue.From(pieces));
        writer.Set("tokenizer.ggml.scores", GgufValue.From(scores));
        writer.Set("tokenizer.ggml.token_type", GgufValue.From(kinds));
        if (tokenizer.BosId >= 0) writer.Set("tokenizer.ggml.bos_token_id", (uint)tokenizer.BosId);
        if (tokenizer.EosId >= 0) writer.Set("tokenizer.ggml.eos_token_id", (uint)tokenizer.EosId);
        if (tokenizer.UnknownId >= 0) writer.Set("tokenizer.ggml.unknown_token_id", (uint)tokenizer.UnknownId);
        if (tokenizer.PaddingId >= 0) writer.Set("tokenizer.ggml.padding_token_id", (uint)tokenizer.PaddingId);
        writer.Set("tokenizer.ggml.add_bos_token", tokenizer.AddBos);
        writer.Set("tokenizer.ggml.add_eos_token", tokenizer.AddEos);
        writer.Set("tokenizer.ggml.add_space_prefix", tokenizer.AddSpacePrefix);
    }

    /// <summary>A row source reading an existing model's weights (dequantized).</summary>
    public static TensorRowSource FromWeights(LlamaWeights weights)
    {
        var byName = new Dictionary<string, object> { ["token_embd.weight"] = weights.TokenEmbedding, ["output_norm.weight"] = weights.FinalNorm, ["output.weight"] = weights.Output };
        for (int l = 0; l < weights.Layers.Length; l++)
        {
            var w = weights.Layers[l];
            string p = $"blk.{l}.";
            byName[p + "attn_norm.weight"] = w.AttnNorm;
            byName[p + "attn_q.weight"] = w.Wq;
            byName[p + "attn_k.weight"] = w.Wk;
            byName[p + "attn_v.weight"] = w.Wv;
            byName[p + "attn_output.weight"] = w.Wo;
            byName[p + "ffn_norm.weight"] = w.FfnNorm;
            byName[p + "ffn_gate.weight"] = w.W1;
            byName[p + "ffn_down.weight"] = w.W2;
            byName[p + "ffn_up.weight"] = w.W3;
        }
        return (name, row, destination) =>
        {
            switch (byName[name])
            {
                case float[] vector: vector.CopyTo(destination); break;
                case TensorView view: view.DequantizeRow(row, destination); break;
            }
        };
    }
}
