using ClockLM.Gguf;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>Reads a Llama model's configuration and weights from a GGUF file, in llama.cpp's tensor naming.</summary>
public static class LlamaGguf
{
    /// <summary>Architectures this loader runs (<c>general.architecture</c>).</summary>
    public static readonly string[] Architectures = ["llama"];

    /// <summary>The configuration stored under <c>{arch}.*</c> keys.</summary>
    public static LlamaConfig ReadConfig(GgufFile file)
    {
        string arch = file.GetString("general.architecture");
        if (!Architectures.Contains(arch))
            throw new GgufFormatException(file.Path, $"architecture '{arch}' is not supported (supported: {string.Join(", ", Architectures)})");
        var embedding = file.GetTensor("token_embd.weight");
        int Int(string key, int? fallback = null)
        {
            long value = fallback is { } f ? file.GetInteger(key, f) : file.GetInteger(key);
            if (value is <= 0 or > int.MaxValue)
                throw new GgufFormatException(file.Path, $"{key} is {value}, expected a positive 32-bit count");
            return (int)value;
        }
        if (embedding.RowCount > int.MaxValue)
            throw new GgufFormatException(file.Path, $"token_embd.weight has {embedding.RowCount} rows, too many for a vocabulary");
        int heads = Int($"{arch}.attention.head_count");
        var config = new LlamaConfig(
            Dim: Int($"{arch}.embedding_length"),
            HiddenDim: Int($"{arch}.feed_forward_length"),
            Layers: Int($"{arch}.block_count"),
            Heads: heads,
            KvHeads: Int($"{arch}.attention.head_count_kv", heads),
            VocabSize: (int)embedding.RowCount,
            ContextLength: Int($"{arch}.context_length"),
            RmsEpsilon: Positive($"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
            RopeBase: Positive($"{arch}.rope.freq_base", 10000.0));
        if (config.Validate() is { } problem)
            throw new GgufFormatException(file.Path, $"model shape is invalid: {problem}");

        float Positive(string key, double fallback)
        {
            double value = file.GetNumber(key, fallback);
            if (!(value > 0 && value < 1e30))
                throw new GgufFormatException(file.Path, $"{key} is {value}, expected a positive number");
            return (float)value;
        }
        long ropeDims = file.GetInteger($"{arch}.rope.dimension_count", config.HeadSize);
        if (ropeDims != config.HeadSize)
            throw new GgufFormatException(file.Path, $"{arch}.rope.dimension_count is {ropeDims}; only full-head RoPE ({config.HeadSize}) is supported");
        return config;
    }

    /// <summary>Views of every weight, checked against the configuration's shapes.</summary>
    public static LlamaWeights ReadWeights(GgufFile file, LlamaConfig c)
    {
        TensorView Matrix(string name, int rows, int cols)
        {
            var t = file.GetTensor(name);
            if (t.Dimensions.Length > 2 || t.RowLength != cols || t.RowCount != rows)
                throw new GgufFormatException(file.Path, $"tensor '{name}' has shape {t.ShapeText}, expected [{cols}, {rows}]");
            return file.GetView(t);
        }
        float[] Vector(string name, int n)
        {
            var view = Matrix(name, 1, n);
            var values = new float[n];
            view.DequantizeRow(0, values);
            return values;
        }

        var embedding = Matrix("token_embd.weight", c.VocabSize, c.Dim);
        var layers = new LlamaLayerWeights[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            layers[l] = new LlamaLayerWeights
            {
                AttnNorm = Vector(p + "attn_norm.weight", c.Dim),
                Wq = Matrix(p + "attn_q.weight", c.Dim, c.Dim),
                Wk = Matrix(p + "attn_k.weight", c.KvDim, c.Dim),
                Wv = Matrix(p + "attn_v.weight", c.KvDim, c.Dim),
                Wo = Matrix(p + "attn_output.weight", c.Dim, c.Dim),
                FfnNorm = Vector(p + "ffn_norm.weight", c.Dim),
                W1 = Matrix(p + "ffn_gate.weight", c.HiddenDim, c.Dim),
                W2 = Matrix(p + "ffn_down.weight", c.Dim, c.HiddenDim),
                W3 = Matrix(p + "ffn_up.weight", c.HiddenDim, c.Dim),
            };
        }
        return new LlamaWeights
        {
            TokenEmbedding = embedding,
            Layers = layers,
            FinalNorm = Vector("output_norm.weight", c.Dim),
            Output = file.FindTensor("output.weight") is null ? embedding : Matrix("output.weight", c.VocabSize, c.Dim),
        };
    }
}
