using System.Text.Json;
using System.Text.Json.Nodes;
using ClockLM.Nn;

namespace ClockLM.Features;

/// <summary>How a sparse autoencoder turns its pre-activations into features.</summary>
public enum SaeActivation
{
    /// <summary>relu(h) (SAELens's "standard").</summary>
    Relu,
    /// <summary>relu(h) where h exceeds the feature's threshold, else 0 (SAELens's "jumprelu").</summary>
    JumpRelu,
    /// <summary>relu of the k largest pre-activations, the others 0 (SAELens's "topk").</summary>
    TopK,
}

/// <summary>How the input is normalised before encoding (and the output scaled back after decoding), SAELens's
/// <c>normalize_activations</c>.</summary>
public enum SaeNormalization
{
    /// <summary>"none".</summary>
    None,
    /// <summary>"constant_norm_rescale": x scaled to norm √d_in.</summary>
    ConstantNormRescale,
    /// <summary>"layer_norm": x - mean(x), divided by std(x) + 1e-5.</summary>
    LayerNorm,
}

/// <summary>A feature and how strongly it fires.</summary>
public readonly record struct FeatureActivation(int Feature, float Activation);

/// <summary>
/// A sparse autoencoder (SAE) over one hook point's activations, in SAELens's file format: a directory with
/// <c>cfg.json</c> (d_in, d_sae, the architecture, the hook point) and <c>sae_weights.safetensors</c> holding W_enc
/// (d_in, d_sae), b_enc (d_sae), W_dec (d_sae, d_in), b_dec (d_in) and, for JumpReLU, threshold (d_sae).
/// </summary>
/// <remarks>
/// <code>
/// encode: x' = norm(x) - b_dec (when apply_b_dec_to_input);  h = x' W_enc + b_enc;  f = act(h)
/// decode: x̂ = norm⁻¹(f W_dec + b_dec)
/// </code>
/// Feature i's decoder direction is row i of W_dec: adding it to the activation is how a feature steers.
/// </remarks>
public sealed class SparseAutoencoder
{
    /// <summary>SAELens's file names inside an SAE's directory.</summary>
    public const string ConfigFile = "cfg.json", WeightsFile = "sae_weights.safetensors";

    /// <summary>Creates an SAE from its weights (row-major, shapes as in the file); the arrays are kept, not copied.</summary>
    /// <exception cref="ArgumentException">A shape does not fit d_in and d_sae, or the activation's parameter is missing.</exception>
    public SparseAutoencoder(string hookName, int inputWidth, int features, float[] encoderWeights, float[] encoderBias,
        float[] decoderWeights, float[] decoderBias, SaeActivation activation = SaeActivation.Relu, float[]? threshold = null,
        int k = 0, bool applyDecoderBiasToInput = true, SaeNormalization normalization = SaeNormalization.None, string? modelName = null)
    {
        if (inputWidth < 1 || features < 1) throw new ArgumentException($"d_in {inputWidth} and d_sae {features} must be positive");
        Check("W_enc", encoderWeights, (long)inputWidth * features);
        Check("b_enc", encoderBias, features);
        Check("W_dec", decoderWeights, (long)features * inputWidth);
        Check("b_dec", decoderBias, inputWidth);
        if (activation == SaeActivation.JumpRelu) Check("threshold", threshold ?? throw new ArgumentException("a JumpReLU SAE needs a threshold per feature"), features);
        if (activation == SaeActivation.TopK && (k < 1 || k > features)) throw new ArgumentException($"a top-k SAE needs 1 <= k <= d_sae ({features}), not {k}");
        (HookName, InputWidth, Features, EncoderWeights, EncoderBias, DecoderWeights, DecoderBias) =
            (hookName, inputWidth, features, encoderWeights, encoderBias, decoderWeights, decoderBias);
        (Activation, Threshold, K, ApplyDecoderBiasToInput, Normalization, ModelName) =
            (activation, activation == SaeActivation.JumpRelu ? threshold : null, activation == SaeActivation.TopK ? k : 0, applyDecoderBiasToInput, normalization, modelName);

        static void Check(string name, float[] values, long expected)
        {
            if (values.Length != expected) throw new ArgumentException($"{name} has {values.Length} values, expected {expected}");
        }
    }

    /// <summary>The hook point it reads, in TransformerLens's names (e.g. <c>blocks.3.hook_resid_post</c>).</summary>
    public string HookName { get; }

    /// <summary>d_in: the width of the activation it encodes.</summary>
    public int InputWidth { get; }

    /// <summary>d_sae: the number of features.</summary>
    public int Features { get; }

    /// <summary>W_enc (d_in, d_sae).</summary>
    public float[] EncoderWeights { get; }

    /// <summary>b_enc (d_sae).</summary>
    public float[] EncoderBias { get; }

    /// <summary>W_dec (d_sae, d_in): row i is feature i's direction.</summary>
    public float[] DecoderWeights { get; }

    /// <summary>b_dec (d_in).</summary>
    public float[] DecoderBias { get; }

    /// <summary>The activation function.</summary>
    public SaeActivation Activation { get; }

    /// <summary>JumpReLU's thresholds (d_sae); null otherwise.</summary>
    public float[]? Threshold { get; }

    /// <summary>Top-k's k; 0 otherwise.</summary>
    public int K { get; }

    /// <summary>Whether b_dec is subtracted from the input before encoding.</summary>
    public bool ApplyDecoderBiasToInput { get; }

    /// <summary>The input normalisation.</summary>
    public SaeNormalization Normalization { get; }

    /// <summary>The model it was trained on, when the file says.</summary>
    public string? ModelName { get; }

    /// <summary>Feature <paramref name="feature"/>'s decoder direction (d_in).</summary>
    public ReadOnlySpan<float> DecoderDirection(int feature)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(feature);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(feature, Features);
        return DecoderWeights.AsSpan(feature * InputWidth, InputWidth);
    }

    /// <summary>The features of one activation <paramref name="x"/> (d_in) into <paramref name="features"/> (d_sae).</summary>
    public void Encode(ReadOnlySpan<float> x, Span<float> features) => Encode(x, features, out _);

    /// <summary>x̂ = f W_dec + b_dec, before any normalisation is undone (d_in).</summary>
    public void Decode(ReadOnlySpan<float> features, Span<float> output)
    {
        if (features.Length != Features || output.Length != InputWidth)
            throw new ArgumentException($"decode takes {Features} features into {InputWidth} values, not {features.Length} into {output.Length}");
        DecoderBias.CopyTo(output);
        for (int i = 0; i < Features; i++)
        {
            float f = features[i];
            if (f == 0) continue; // sparse: most features are off
            var row = DecoderWeights.AsSpan(i * InputWidth, InputWidth);
            for (int j = 0; j < output.Length; j++) output[j] += f * row[j];
        }
    }

    /// <summary>The reconstruction of <paramref name="x"/>: encode, decode, and the input's normalisation undone.</summary>
    public void Reconstruct(ReadOnlySpan<float> x, Span<float> reconstruction)
    {
        var features = new float[Features];
        Encode(x, features, out var scale);
        Decode(features, reconstruction);
        for (int j = 0; j < reconstruction.Length; j++) reconstruction[j] = reconstruction[j] * scale.Multiply + scale.Add;
    }

    /// <summary>The <paramref name="k"/> most active features of <paramref name="x"/> (only those above 0), strongest
    /// first (ties: lower index first).</summary>
    public FeatureActivation[] TopFeatures(ReadOnlySpan<float> x, int k)
    {
        var features = new float[Features];
        Encode(x, features);
        return Strongest(features, k).Where(f => f.Activation > 0).ToArray();
    }

    /// <summary>
    /// The fraction of the variance of <paramref name="rows"/> (rows of d_in) that the reconstructions explain:
    /// 1 - Σ |x - x̂|² / Σ |x - mean(x)|².
    /// </summary>
    public double VarianceExplained(IReadOnlyList<float[]> rows)
    {
        var mean = new double[InputWidth];
        foreach (var x in rows) for (int j = 0; j < InputWidth; j++) mean[j] += x[j] / (double)rows.Count;
        double residual = 0, total = 0;
        var reconstruction = new float[InputWidth];
        foreach (var x in rows)
        {
            Reconstruct(x, reconstruction);
            for (int j = 0; j < InputWidth; j++)
            {
                residual += (double)(x[j] - reconstruction[j]) * (x[j] - reconstruction[j]);
                total += (x[j] - mean[j]) * (x[j] - mean[j]);
            }
        }
        return 1 - residual / total;
    }

    /// <summary>L0: how many features are active (above 0) per row of <paramref name="rows"/>, on average.</summary>
    public double MeanActiveFeatures(IReadOnlyList<float[]> rows)
    {
        var features = new float[Features];
        long active = 0;
        foreach (var x in rows)
        {
            Encode(x, features);
            foreach (float f in features) if (f > 0) active++;
        }
        return active / (double)rows.Count;
    }

    private void Encode(ReadOnlySpan<float> x, Span<float> features, out (float Multiply, float Add) scale)
    {
        if (x.Length != InputWidth || features.Length != Features)
            throw new ArgumentException($"encode takes {InputWidth} values into {Features} features, not {x.Length} into {features.Length}");
        // x' = norm(x) - b_dec
        var input = new float[InputWidth];
        scale = Normalize(x, input);
        if (ApplyDecoderBiasToInput) for (int j = 0; j < input.Length; j++) input[j] -= DecoderBias[j];
        // h = x' W_enc + b_enc: W_enc's rows scaled by x'_j and summed.
        EncoderBias.CopyTo(features);
        for (int j = 0; j < input.Length; j++)
        {
            float v = input[j];
            var row = EncoderWeights.AsSpan(j * Features, Features);
            for (int i = 0; i < features.Length; i++) features[i] += v * row[i];
        }
        switch (Activation)
        {
            case SaeActivation.Relu:
                for (int i = 0; i < features.Length; i++) features[i] = MathF.Max(features[i], 0);
                break;
            case SaeActivation.JumpRelu:
                for (int i = 0; i < features.Length; i++) features[i] = features[i] > Threshold![i] ? MathF.Max(features[i], 0) : 0;
                break;
            case SaeActivation.TopK:
                var top = Strongest(features, K);
                features.Clear();
                foreach (var (i, h) in top) features[i] = MathF.Max(h, 0);
                break;
        }
    }

    // Writes norm(x) into input; returns how to undo it on the output: y * Multiply + Add.
    private (float Multiply, float Add) Normalize(ReadOnlySpan<float> x, Span<float> input)
    {
        switch (Normalization)
        {
            case SaeNormalization.ConstantNormRescale:
            {
                double squares = 0;
                foreach (float v in x) squares += (double)v * v;
                float coefficient = (float)(Math.Sqrt(InputWidth) / Math.Sqrt(squares));
                for (int j = 0; j < x.Length; j++) input[j] = x[j] * coefficient;
                return (1 / coefficient, 0);
            }
            case SaeNormalization.LayerNorm:
            {
                double mean = 0;
                foreach (float v in x) mean += v;
                mean /= x.Length;
                double variance = 0;
                foreach (float v in x) variance += (v - mean) * (v - mean);
                float std = (float)Math.Sqrt(variance / (x.Length - 1)); // torch's std: unbiased
                for (int j = 0; j < x.Length; j++) input[j] = (float)(x[j] - mean) / (std + 1e-5f);
                return (std, (float)mean);
            }
            default:
                x.CopyTo(input);
                return (1, 0);
        }
    }

    /// <summary>The k largest values with their indices, largest first (ties: lower index first).</summary>
    internal static FeatureActivation[] Strongest(ReadOnlySpan<float> values, int k)
    {
        k = Math.Clamp(k, 0, values.Length);
        var top = new FeatureActivation[k];
        int count = 0;
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (count == k && (k == 0 || v <= top[k - 1].Activation)) continue;
            int at = count < k ? count++ : k - 1;
            while (at > 0 && top[at - 1].Activation < v) { top[at] = top[at - 1]; at--; }
            top[at] = new FeatureActivation(i, v);
        }
        return top;
    }

    /// <summary>
    /// Reads an SAE in SAELens's format from <paramref name="path"/>: its directory, or the <c>cfg.json</c> or
    /// <c>.safetensors</c> file in it (the other file beside it). Reads SAELens 6's <c>cfg.json</c> (hook point under
    /// <c>metadata</c>) and earlier ones (<c>hook_name</c>, <c>activation_fn_str</c> at the top).
    /// </summary>
    /// <exception cref="InvalidDataException">A file is missing or malformed, or asks for what ClockLM does not run
    /// (gated SAEs, a folded normalisation factor, per-head hooks, weights other than F32); the message names the
    /// file, field and value.</exception>
    public static SparseAutoencoder Load(string path)
    {
        string directory = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        string config = Path.Combine(directory, ConfigFile);
        string weights = path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) && File.Exists(path) ? path : Path.Combine(directory, WeightsFile);
        if (!File.Exists(config)) throw new FileNotFoundException($"{config}: no such file (an SAE in SAELens's format has cfg.json beside its weights)", config);
        if (!File.Exists(weights)) throw new FileNotFoundException($"{weights}: no such file (an SAE in SAELens's format has {WeightsFile} beside cfg.json)", weights);

        JsonNode cfg;
        try
        {
            cfg = JsonNode.Parse(File.ReadAllText(config)) as JsonObject ?? throw new InvalidDataException($"{config}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{config}: not valid JSON: {e.Message}", e);
        }
        JsonNode? meta = cfg["metadata"] ?? cfg["meta"];
        int dIn = Integer(cfg, config, "d_in"), dSae = Integer(cfg, config, "d_sae");
        string hook = Text(meta?["hook_name"]) ?? Text(cfg["hook_name"]) ?? Text(cfg["hook_point"])
            ?? throw new InvalidDataException($"{config}: no hook_name (the hook point the SAE reads)");
        if (meta?["hook_head_index"] is JsonValue || cfg["hook_head_index"] is JsonValue)
            throw new InvalidDataException($"{config}: hook_head_index is set; SAEs of one head's activations are not supported");
        string architecture = Text(cfg["architecture"]) ?? "standard";
        string activationName = Text(cfg["activation_fn"]) ?? Text(cfg["activation_fn_str"]) ?? "relu";
        var activation = architecture switch
        {
            "jumprelu" => SaeActivation.JumpRelu,
            "topk" => SaeActivation.TopK,
            "standard" when activationName == "topk" => SaeActivation.TopK,
            "standard" when activationName == "relu" => SaeActivation.Relu,
            "standard" => throw new InvalidDataException($"{config}: activation_fn is '{activationName}'; expected relu or topk"),
            _ => throw new InvalidDataException($"{config}: architecture is '{architecture}'; ClockLM reads standard, jumprelu and topk SAEs"),
        };
        int k = activation != SaeActivation.TopK ? 0
            : cfg["k"] is JsonValue ? Integer(cfg, config, "k")
            : cfg["activation_fn_kwargs"]?["k"] is JsonValue kv && kv.TryGetValue(out int kk) ? kk
            : throw new InvalidDataException($"{config}: a top-k SAE needs k");
        var normalization = Text(cfg["normalize_activations"]) ?? "none";
        var norm = normalization switch
        {
            "none" => SaeNormalization.None,
            "constant_norm_rescale" => SaeNormalization.ConstantNormRescale,
            "layer_norm" => SaeNormalization.LayerNorm,
            _ => throw new InvalidDataException($"{config}: normalize_activations is '{normalization}'; ClockLM runs none, constant_norm_rescale and layer_norm (fold a dataset's scaling factor into the weights first)"),
        };
        if (cfg["finetuning_scaling_factor"] is JsonValue scaling && scaling.TryGetValue(out bool scaled) && scaled)
            throw new InvalidDataException($"{config}: finetuning_scaling_factor is true; fold it into W_dec first");
        bool applyBias = cfg["apply_b_dec_to_input"] is not JsonValue b || !b.TryGetValue(out bool apply) || apply;

        var tensors = SafetensorsWeights.Tensors(weights);
        foreach (var (name, (dtype, _)) in tensors)
            if (name is "W_enc" or "b_enc" or "W_dec" or "b_dec" or "threshold" && dtype != "F32")
                throw new InvalidDataException($"{weights}: tensor '{name}' is {dtype}; ClockLM reads F32 SAE weights");
        var wEnc = Tensor<float>.Zeros([dIn, dSae]);
        var bEnc = Tensor<float>.Zeros([dSae]);
        var wDec = Tensor<float>.Zeros([dSae, dIn]);
        var bDec = Tensor<float>.Zeros([dIn]);
        var threshold = Tensor<float>.Zeros([dSae]);
        var wanted = new List<(string, Tensor<float>)> { ("W_enc", wEnc), ("b_enc", bEnc), ("W_dec", wDec), ("b_dec", bDec) };
        if (activation == SaeActivation.JumpRelu)
        {
            if (!tensors.ContainsKey("threshold")) throw new InvalidDataException($"{weights}: a JumpReLU SAE needs a 'threshold' tensor");
            wanted.Add(("threshold", threshold));
        }
        SafetensorsWeights.Read(weights, wanted);
        return new SparseAutoencoder(hook, dIn, dSae, wEnc.Data, bEnc.Data, wDec.Data, bDec.Data, activation,
            activation == SaeActivation.JumpRelu ? threshold.Data : null, k, applyBias, norm, Text(meta?["model_name"]) ?? Text(cfg["model_name"]));
    }

    /// <summary>
    /// Writes the SAE in SAELens's format into <paramref name="directory"/> (created if needed): <c>cfg.json</c> with the
    /// fields SAELens 6 reads and the ones earlier versions read, and <c>sae_weights.safetensors</c>.
    /// </summary>
    public void Save(string directory, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(directory);
        string architecture = Activation switch { SaeActivation.JumpRelu => "jumprelu", SaeActivation.TopK => "topk", _ => "standard" };
        int layer = int.TryParse(HookName.Split('.').ElementAtOrDefault(1), out int l) ? l : 0;
        var meta = new JsonObject
        {
            ["model_name"] = ModelName,
            ["hook_name"] = HookName,
            ["hook_layer"] = layer,
            ["hook_head_index"] = null,
            ["prepend_bos"] = true,
        };
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
            meta[key] = value;
        var cfg = new JsonObject
        {
            ["architecture"] = architecture,
            ["d_in"] = InputWidth,
            ["d_sae"] = Features,
            ["dtype"] = "float32",
            ["device"] = "cpu",
            ["apply_b_dec_to_input"] = ApplyDecoderBiasToInput,
            ["normalize_activations"] = Normalization switch
            {
                SaeNormalization.ConstantNormRescale => "constant_norm_rescale",
                SaeNormalization.LayerNorm => "layer_norm",
                _ => "none",
            },
            ["reshape_activations"] = HookName.EndsWith("hook_z", StringComparison.Ordinal) ? "hook_z" : "none",
            ["finetuning_scaling_factor"] = false,
            ["activation_fn_str"] = Activation == SaeActivation.TopK ? "topk" : "relu",
            ["activation_fn_kwargs"] = Activation == SaeActivation.TopK ? new JsonObject { ["k"] = K } : new JsonObject(),
        };
        if (Activation == SaeActivation.TopK) cfg["k"] = K;
        // Earlier SAELens versions read the hook point at the top; SAELens 6 builds its metadata from those keys too.
        foreach (var (key, value) in meta) cfg[key] = value?.DeepClone();
        cfg["metadata"] = meta;

        var tensors = new List<(string, Tensor<float>)>
        {
            ("W_enc", new Tensor<float>([InputWidth, Features], EncoderWeights)),
            ("b_enc", new Tensor<float>([Features], EncoderBias)),
            ("W_dec", new Tensor<float>([Features, InputWidth], DecoderWeights)),
            ("b_dec", new Tensor<float>([InputWidth], DecoderBias)),
        };
        if (Threshold is not null) tensors.Add(("threshold", new Tensor<float>([Features], Threshold)));
        string weights = Path.Combine(directory, WeightsFile), config = Path.Combine(directory, ConfigFile);
        SafetensorsWeights.Write(weights + ".partial", tensors);
        File.Move(weights + ".partial", weights, overwrite: true);
        File.WriteAllText(config + ".partial", cfg.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(config + ".partial", config, overwrite: true);
    }

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue(out string? s) ? s : null;

    private static int Integer(JsonNode cfg, string path, string name) =>
        cfg[name] is JsonValue v && v.TryGetValue(out int n) && n > 0 ? n
            : throw new InvalidDataException($"{path}: {name} is {cfg[name]?.ToJsonString() ?? "missing"}; expected a positive integer");
}
