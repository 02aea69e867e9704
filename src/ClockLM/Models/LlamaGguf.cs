using ClockLM.Gguf;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>
/// Reads a model's configuration and weights from a GGUF file in llama.cpp's tensor naming, for the architectures
/// that share Llama's forward pass up to a few options (<see cref="LlamaConfig.Rope"/>, biases, per-head norms,
/// fused matrices, post-norms, soft-capping, sliding windows): llama (with Llama 3's RoPE frequency factors), mistral,
/// qwen2, qwen3, phi3, gemma2, gemma3 and gpt2.
/// </summary>
public static class LlamaGguf
{
    /// <summary>Architectures this loader runs (<c>general.architecture</c>).</summary>
    public static readonly string[] Architectures = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3", "gpt2"];

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
        int dim = Int($"{arch}.embedding_length");
        // llama.cpp reads the head width from attention.key_length for every architecture; only Qwen 3 sets it apart from dim / heads.
        int layers = Int($"{arch}.block_count");
        // Tensors of a layer past block_count would be ignored: the file is inconsistent, and running it would not be
        // the model it holds.
        foreach (var tensor in file.Tensors)
            if (tensor.Name.StartsWith("blk.", StringComparison.Ordinal)
                && int.TryParse(tensor.Name.AsSpan(4, Math.Max(0, tensor.Name.IndexOf('.', 4) - 4)), out int layer) && layer >= layers)
                throw new GgufFormatException(file.Path,
                    $"tensor '{tensor.Name}' belongs to layer {layer}, but {arch}.block_count is {layers} (layers 0 to {layers - 1})");
        bool gemma = arch is "gemma2" or "gemma3";
        int? headDim = file.Has($"{arch}.attention.key_length") ? Int($"{arch}.attention.key_length") : null;
        if (headDim == dim / heads && dim % heads == 0) headDim = null;
        if (file.Has($"{arch}.attention.value_length") && Int($"{arch}.attention.value_length") != (headDim ?? dim / heads))
            throw new GgufFormatException(file.Path, $"{arch}.attention.value_length differs from the key length; only equal key and value heads are supported");
        var config = new LlamaConfig(
            Dim: dim,
            HiddenDim: Int($"{arch}.feed_forward_length"),
            Layers: layers,
            Heads: heads,
            KvHeads: Int($"{arch}.attention.head_count_kv", heads),
            VocabSize: (int)embedding.RowCount,
            ContextLength: Int($"{arch}.context_length"),
            RmsEpsilon: Positive($"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
            RopeBase: Positive($"{arch}.rope.freq_base", 10000.0))
        {
            HeadDim = headDim,
            // llama.cpp's LLAMA_ROPE_TYPE_NEOX families rotate the two halves of a head
            Rope = arch is "qwen2" or "qwen3" or "phi3" || gemma ? RopeStyle.Halves : RopeStyle.Adjacent,
        };
        if (arch == "gpt2")
        {
            config = config with
            {
                Normalization = Normalization.LayerNorm,
                RmsEpsilon = Positive("gpt2.attention.layer_norm_epsilon", 1e-5),
                FeedForward = FeedForward.Gelu,
                Rope = RopeStyle.None,
            };
        }
        if (gemma)
        {
            // Gemma's converter stores its norm weights as 1 + w, so they apply as they are. The 27B models scale
            // queries by 1/sqrt(dim / heads) (their query_pre_attn_scalar), the others by 1/sqrt(head_size), as llama.cpp does.
            bool is27B = layers == (arch == "gemma2" ? 46 : 62);
            config = config with
            {
                FeedForward = FeedForward.GeluGated,
                EmbeddingScale = MathF.Sqrt(dim),
                AttentionScale = is27B ? 1f / MathF.Sqrt(dim / (float)heads) : null,
                SlidingWindow = arch == "gemma2" ? Int("gemma2.attention.sliding_window", 4096) : Int("gemma3.attention.sliding_window"),
                SlidingWindowPattern = arch == "gemma2" ? 2 : 6,
                RopeBaseSliding = arch == "gemma3" ? 10000f : null,
                AttentionSoftcap = arch == "gemma2" ? Positive("gemma2.attn_logit_softcapping", 50.0) : 0f,
                FinalSoftcap = arch == "gemma2" ? Positive("gemma2.final_logit_softcapping", 30.0) : 0f,
            };
        }
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
        // Llama 3's scaling arrives as the rope_freqs.weight tensor (read with the weights); any other scaling of positions is not implemented.
        string scaling = file.GetStringOrNull($"{arch}.rope.scaling.type") ?? "none";
        double factor = file.GetNumber($"{arch}.rope.scaling.factor", 1.0);
        if (scaling is not ("none" or "llama3") && factor != 1.0)
            throw new GgufFormatException(file.Path, $"{arch}.rope.scaling.type is '{scaling}' with factor {factor}; only unscaled RoPE and Llama 3 frequency factors are supported");
        return config;
    }

    /// <summary>Views of every weight, checked against the configuration's shapes; Q4_0 and Q8_0 matrices packed, the
    /// kernels chosen and the fetch unit set up as <paramref name="options"/> say. A matrix that packing has to leave in
    /// its file layout is a fallback (<see cref="LlamaWeights.KernelFallbacks"/>).</summary>
    public static LlamaWeights ReadWeights(GgufFile file, LlamaConfig c, ModelOptions? options = null)
    {
        options ??= ModelOptions.Default;
        var packed = new List<byte[]>();
        var unpacked = new List<string>(); // the Q4_0 and Q8_0 matrices packing had to leave, and why
        using var packer = options.PackWeights && options.Kernels.UsesPacked ? new WeightPacker(file) : null;
        var mapped = new List<TensorView>(); // the current layer's matrices read from the file's pages
        TensorView View(string name, int rows, int cols)
        {
            var t = file.GetTensor(name);
            if (t.Dimensions.Length > 2 || t.RowLength != cols || t.RowCount != rows)
                throw new GgufFormatException(file.Path, $"tensor '{name}' has shape {t.ShapeText}, expected [{cols}, {rows}]");
            return file.GetView(t);
        }
        // Rows [first, first + count) of a tensor as a matrix of its own (a fused tensor's part: Phi-3's attn_qkv and
        // gate/up halves of ffn_up), packed when it can be, its unpacked rows left in the file's pages.
        TensorView Rows(string name, int rows, int cols, int first, int count)
        {
            var whole = View(name, rows, cols);
            var view = whole.RowRange(first, count);
            string part = count == rows ? name : $"{name} rows [{first}, {first + count})";
            if (packer is not null && view.Type is GgmlType.Q4_0 or GgmlType.Q8_0)
            {
                if (!PackedRows.CanPack(view))
                    unpacked.Add($"{part}: {view.Type} {view.Rows}x{view.Cols} stays in its file layout ({view.Rows} rows, not a multiple of 8)");
                else
                {
                    view = packer.Pack(name, file.DataOffset + file.GetTensor(name).Offset + (long)first * whole.RowBytes, view, packed);
                    if (!view.IsPacked)
                        unpacked.Add($"{part}: {view.Type} {view.Rows}x{view.Cols} stays in its file layout (a block scale is infinite or NaN)");
                }
            }
            else if (packer is not null && HalfPanels.CanPack(view))
            {
                view = packer.PackPanels(name, file.DataOffset + file.GetTensor(name).Offset + (long)first * whole.RowBytes, view, packed);
                if (!view.IsPacked)
                    unpacked.Add($"{part}: {view.Type} {view.Rows}x{view.Cols} stays in its file layout (a value is infinite or NaN)");
            }
            if (!view.IsPacked) mapped.Add(view);
            return view;
        }
        TensorView Matrix(string name, int rows, int cols) => Rows(name, rows, cols, 0, rows);
        float[] Vector(string name, int n)
        {
            var view = View(name, 1, n);
            var values = new float[n];
            view.DequantizeRow(0, values);
            return values;
        }
        float[]? OptionalVector(string name, int n) => file.FindTensor(name) is null ? null : Vector(name, n);

        if (file.FindTensor("rope_factors_long.weight") is not null)
            throw new GgufFormatException(file.Path, "rope_factors_long.weight: Phi-3's long-context RoPE factors are not supported");
        bool fusedQkv = file.FindTensor("blk.0.attn_qkv.weight") is not null;
        bool fusedGateUp = file.FindTensor("blk.0.ffn_gate.weight") is null && file.FindTensor("blk.0.ffn_up.weight") is { } up
            && up.RowCount == 2L * c.HiddenDim;
        // The embedding is read a row per token; packed (and fetched) only when it is the output head too.
        bool tied = file.FindTensor("output.weight") is null;
        var embedding = tied ? Matrix("token_embd.weight", c.VocabSize, c.Dim) : View("token_embd.weight", c.VocabSize, c.Dim);
        var fetched = new TensorView[c.Layers + 1][]; // what the fetch stage brings in: each layer's mapped matrices, then the output head's
        var layers = new LlamaLayerWeights[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            mapped.Clear();
            string p = $"blk.{l}.";
            TensorView wq, wk, wv, w1, w3;
            float[]? biasQ = null, biasK = null, biasV = null;
            if (fusedQkv)
            {
                string qkv = p + "attn_qkv.weight";
                int qkvRows = c.QDim + 2 * c.KvDim;
                wq = Rows(qkv, qkvRows, c.Dim, 0, c.QDim);
                wk = Rows(qkv, qkvRows, c.Dim, c.QDim, c.KvDim);
                wv = Rows(qkv, qkvRows, c.Dim, c.QDim + c.KvDim, c.KvDim);
                if (OptionalVector(p + "attn_qkv.bias", c.QDim + 2 * c.KvDim) is { } qkvBias)
                    (biasQ, biasK, biasV) = (qkvBias[..c.QDim], qkvBias[c.QDim..(c.QDim + c.KvDim)], qkvBias[(c.QDim + c.KvDim)..]);
            }
            else
            {
                wq = Matrix(p + "attn_q.weight", c.QDim, c.Dim);
                wk = Matrix(p + "attn_k.weight", c.KvDim, c.Dim);
                wv = Matrix(p + "attn_v.weight", c.KvDim, c.Dim);
                (biasQ, biasK, biasV) = (OptionalVector(p + "attn_q.bias", c.QDim), OptionalVector(p + "attn_k.bias", c.KvDim),
                    OptionalVector(p + "attn_v.bias", c.KvDim));
            }
            if (c.FeedForward == FeedForward.Gelu)
            {
                w1 = default; // no gate
                w3 = Matrix(p + "ffn_up.weight", c.HiddenDim, c.Dim);
            }
            else if (fusedGateUp)
            {
                // Phi-3: the first half of ffn_up's rows is the gate, the second half the up projection.
                string gateUp = p + "ffn_up.weight";
                w1 = Rows(gateUp, 2 * c.HiddenDim, c.Dim, 0, c.HiddenDim);
                w3 = Rows(gateUp, 2 * c.HiddenDim, c.Dim, c.HiddenDim, c.HiddenDim);
            }
            else
            {
                w1 = Matrix(p + "ffn_gate.weight", c.HiddenDim, c.Dim);
                w3 = Matrix(p + "ffn_up.weight", c.HiddenDim, c.Dim);
            }
            layers[l] = new LlamaLayerWeights
            {
                AttnNorm = Vector(p + "attn_norm.weight", c.Dim),
                Wq = wq,
                Wk = wk,
                Wv = wv,
                Wo = Matrix(p + "attn_output.weight", c.Dim, c.QDim),
                FfnNorm = Vector(p + "ffn_norm.weight", c.Dim),
                W1 = w1,
                W2 = Matrix(p + "ffn_down.weight", c.Dim, c.HiddenDim),
                W3 = w3,
                BiasQ = biasQ,
                BiasK = biasK,
                BiasV = biasV,
                AttnNormBias = OptionalVector(p + "attn_norm.bias", c.Dim),
                BiasO = OptionalVector(p + "attn_output.bias", c.Dim),
                FfnNormBias = OptionalVector(p + "ffn_norm.bias", c.Dim),
                BiasUp = OptionalVector(p + "ffn_up.bias", c.HiddenDim),
                BiasDown = OptionalVector(p + "ffn_down.bias", c.Dim),
                QNorm = OptionalVector(p + "attn_q_norm.weight", c.HeadSize),
                KNorm = OptionalVector(p + "attn_k_norm.weight", c.HeadSize),
                PostAttnNorm = OptionalVector(p + "post_attention_norm.weight", c.Dim),
                PostFfnNorm = OptionalVector(p + "post_ffw_norm.weight", c.Dim),
            };
            fetched[l] = mapped.ToArray();
        }
        mapped.Clear();
        var output = tied ? embedding : Matrix("output.weight", c.VocabSize, c.Dim);
        fetched[c.Layers] = output.IsPacked ? [] : [output];
        return new LlamaWeights
        {
            TokenEmbedding = embedding,
            Layers = layers,
            FinalNorm = Vector("output_norm.weight", c.Dim),
            FinalNormBias = OptionalVector("output_norm.bias", c.Dim),
            PositionEmbedding = file.FindTensor("position_embd.weight") is null ? null : Matrix("position_embd.weight", c.ContextLength, c.Dim),
            Output = output,
            RopeFrequencyFactors = OptionalVector("rope_freqs.weight", c.HeadSize / 2),
            PackedStorage = packed.Count == 0 ? null : packed.ToArray(),
            Kernels = options.Kernels,
            PackingFallbacks = unpacked,
            Fetch = options.FetchAhead > 0 ? new WeightFetch(fetched, options.FetchAhead) : null,
        };
    }

    /// <summary>
    /// Packs weight matrices (<see cref="PackedRows"/>, <see cref="HalfPanels"/>) from the file, read with plain reads a few megabytes at a time
    /// rather than through the memory map, so the mapped pages of a packed matrix stay untouched and the process holds
    /// one copy of those weights, not two.
    /// </summary>
    private sealed class WeightPacker(GgufFile file) : IDisposable
    {
        private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle = File.OpenHandle(file.Path);
        private byte[] _buffer = [];

        /// <summary>The matrix <paramref name="view"/>, whose rows start at byte <paramref name="at"/> of the file, packed.</summary>
        public unsafe TensorView Pack(string name, long at, in TensorView view, List<byte[]> storage)
        {
            var packed = PackedRows.Allocate(PackedRows.PackedBytes(view), out byte* destination);
            var (type, cols, octets) = (view.Type, view.Cols, view.Rows / 8);
            bool finite = ReadRows(name, at, 8 * view.RowBytes, octets, (buffer, o, n) => PackedRows.PackOctets(type, cols, buffer, o, n, octets, destination));
            // A matrix with an infinite or NaN block scale stays in its file layout (the packed kernels assume finite ones).
            if (!finite) return view;
            storage.Add(packed);
            return view.WithPacked(destination);
        }

        /// <summary>The F16 or BF16 matrix <paramref name="view"/>, whose rows start at byte <paramref name="at"/> of
        /// the file, laid out in panels; left in the file layout if an F16 value is infinite or NaN.</summary>
        public unsafe TensorView PackPanels(string name, long at, in TensorView view, List<byte[]> storage)
        {
            var panels = PackedRows.Allocate(view.ByteCount, out byte* destination);
            var (type, cols, rows, rowBytes) = (view.Type, view.Cols, view.Rows, view.RowBytes);
            bool finite = ReadRows(name, at, rowBytes, rows, (buffer, first, n) => HalfPanels.Pack(type, cols, buffer, rowBytes, first, n, rows, destination));
            if (!finite) return view;
            storage.Add(panels);
            return view.WithPacked(destination);
        }

        /// <summary>Reads <paramref name="count"/> units of <paramref name="unitBytes"/> (rows or octets of rows) from
        /// byte <paramref name="at"/> on, about 4 MB at a time, handing each stretch (its first unit and count) to
        /// <paramref name="pack"/>; true when every call returned true.</summary>
        private unsafe bool ReadRows(string name, long at, int unitBytes, int count, PackStretch pack)
        {
            int step = Math.Max(1, (4 << 20) / unitBytes);
            if (_buffer.Length < Math.Min(step, count) * unitBytes)
                _buffer = GC.AllocateUninitializedArray<byte>(Math.Min(step, count) * unitBytes, pinned: true);
            bool all = true;
            fixed (byte* buffer = _buffer)
            {
                for (int first = 0; first < count; first += step)
                {
                    int n = Math.Min(step, count - first);
                    var chunk = _buffer.AsSpan(0, n * unitBytes);
                    long from = at + (long)first * unitBytes;
                    for (int done = 0; done < chunk.Length;)
                    {
                        int read = RandomAccess.Read(_handle, chunk[done..], from + done);
                        if (read <= 0)
                            throw new GgufFormatException(file.Path, $"tensor '{name}': the file ended at byte {from + done} while reading its data");
                        done += read;
                    }
                    all &= pack(buffer, first, n);
                }
            }
            return all;
        }

        private unsafe delegate bool PackStretch(byte* buffer, int first, int count);

        public void Dispose() => _handle.Dispose();
    }
}
