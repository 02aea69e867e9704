using ClockLM.Models;
using ClockLM.Nn;

namespace ClockLM.Features;

/// <summary>Settings of <see cref="SaeTrainer.Train"/>.</summary>
public sealed record SaeTrainingOptions
{
    /// <summary>Features (d_sae); 4 × d_in when null.</summary>
    public int? Features { get; init; }

    /// <summary>Top-k's k: features active per activation. 0 trains a ReLU SAE with an L1 penalty instead.</summary>
    public int K { get; init; } = 16;

    /// <summary>The L1 penalty's weight when <see cref="K"/> is 0: loss = |x - x̂|² + L1 × Σ f.</summary>
    public double L1 { get; init; } = 1e-3;

    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 300;

    /// <summary>Activations per step.</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Adam's learning rate.</summary>
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Seed of the initial weights and the batches.</summary>
    public ulong Seed { get; init; } = 1;
}

/// <summary>
/// Trains a sparse autoencoder on activations with ClockLM's autograd (<see cref="Tensor{T}"/>), as SAELens trains its
/// top-k and standard SAEs: the decoder's rows start as random unit directions and W_enc as W_decᵀ, b_dec as the
/// activations' mean, and each Adam step on the mean squared reconstruction error (plus L1 × Σ f for a ReLU SAE)
/// is followed by renormalising W_dec's rows to unit length, so a feature's activation measures its contribution.
/// </summary>
public static class SaeTrainer
{
    /// <summary>Trains an SAE on <paramref name="activations"/> (rows of d_in) read at <paramref name="hookName"/>.</summary>
    /// <exception cref="ArgumentException">No activations, rows of different widths, or a setting out of range.</exception>
    public static SparseAutoencoder Train(IReadOnlyList<float[]> activations, string hookName, SaeTrainingOptions? options = null, string? modelName = null)
    {
        options ??= new SaeTrainingOptions();
        if (activations.Count == 0) throw new ArgumentException("no activations to train on", nameof(activations));
        int dIn = activations[0].Length, dSae = options.Features ?? 4 * dIn;
        if (activations.Any(a => a.Length != dIn)) throw new ArgumentException($"the activations are not all {dIn} wide", nameof(activations));
        if (dSae < 1) throw new ArgumentException($"features is {dSae}; expected 1 or more", nameof(options));
        if (options.K < 0 || options.K > dSae) throw new ArgumentException($"k is {options.K}; expected 0 (ReLU with L1) to {dSae}", nameof(options));
        if (options.Steps < 1 || options.BatchSize < 1) throw new ArgumentException("steps and the batch size must be 1 or more", nameof(options));
        if (!(options.L1 >= 0)) throw new ArgumentException($"the L1 weight is {options.L1}; expected 0 or more", nameof(options));

        var random = new GaussianRandom(options.Seed);
        // W_dec: random unit rows; W_enc = W_decᵀ; b_enc = 0; b_dec = mean of the activations.
        var wDec = new Tensor<float>([dSae, dIn], new float[dSae * dIn], requiresGrad: true);
        for (int i = 0; i < wDec.Data.Length; i++) wDec.Data[i] = random.Next();
        NormalizeRows(wDec.Data, dIn);
        var wEnc = new Tensor<float>([dIn, dSae], new float[dIn * dSae], requiresGrad: true);
        for (int i = 0; i < dSae; i++)
            for (int j = 0; j < dIn; j++) wEnc.Data[j * dSae + i] = wDec.Data[i * dIn + j];
        var bEnc = new Tensor<float>([dSae], new float[dSae], requiresGrad: true);
        var bDec = new Tensor<float>([dIn], new float[dIn], requiresGrad: true);
        foreach (var a in activations) for (int j = 0; j < dIn; j++) bDec.Data[j] += a[j] / activations.Count;
        Tensor<float>[] parameters = [wEnc, bEnc, wDec, bDec];
        var adam = new Adam(options.LearningRate);

        int batch = Math.Min(options.BatchSize, activations.Count);
        var order = Enumerable.Range(0, activations.Count).ToArray();
        int next = order.Length;
        var shuffle = new Random(unchecked((int)options.Seed));
        for (int step = 0; step < options.Steps; step++)
        {
            var x = new Tensor<float>([batch, dIn], new float[batch * dIn]);
            for (int r = 0; r < batch; r++)
            {
                if (next == order.Length) { shuffle.Shuffle(order); next = 0; }
                activations[order[next++]].CopyTo(x.Data, r * dIn);
            }
            foreach (var p in parameters) p.ZeroGrad();
            var pre = x.MatMul(wEnc).Add(bEnc);                  // h = x W_enc + b_enc (batch, d_sae)
            var features = options.K > 0 ? pre.Mul(TopKMask(pre, options.K)) : pre.Relu();
            var reconstruction = features.MatMul(wDec).Add(bDec); // x̂ = f W_dec + b_dec (batch, d_in)
            var error = reconstruction - x;
            var loss = (error * error).Mean();
            if (options.K == 0 && options.L1 > 0)
                loss = loss + features.Mean().Mul(new Tensor<float>([], [(float)(options.L1 * dSae / dIn)]));
            loss.Backward();
            adam.Step(parameters);
            NormalizeRows(wDec.Data, dIn);
        }
        return new SparseAutoencoder(hookName, dIn, dSae, wEnc.Data, bEnc.Data, wDec.Data, bDec.Data,
            options.K > 0 ? SaeActivation.TopK : SaeActivation.Relu, k: options.K, applyDecoderBiasToInput: false, modelName: modelName);
    }

    /// <summary>1 where a pre-activation is among its row's k largest and positive, else 0: top-k's (and ReLU's)
    /// selection, held constant so the gradient flows through the chosen pre-activations alone.</summary>
    private static Tensor<float> TopKMask(Tensor<float> pre, int k)
    {
        int rows = pre.Shape[0], width = pre.Shape[1];
        var mask = new float[rows * width];
        for (int r = 0; r < rows; r++)
            foreach (var (i, h) in SparseAutoencoder.Strongest(pre.Data.AsSpan(r * width, width), k))
                if (h > 0) mask[r * width + i] = 1;
        return new Tensor<float>([rows, width], mask);
    }

    private static void NormalizeRows(float[] matrix, int width)
    {
        for (int r = 0; r < matrix.Length / width; r++)
        {
            var row = matrix.AsSpan(r * width, width);
            double norm = 0;
            foreach (float v in row) norm += (double)v * v;
            float scale = norm > 0 ? (float)(1 / Math.Sqrt(norm)) : 0;
            for (int j = 0; j < row.Length; j++) row[j] *= scale;
        }
    }
}
