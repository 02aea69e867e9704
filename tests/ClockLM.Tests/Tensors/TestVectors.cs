namespace ClockLM.Tests.Tensors;

/// <summary>Deterministic inputs for quantizer and kernel tests, including the awkward blocks quantizers special-case.</summary>
internal static class TestVectors
{
    /// <summary>Standard normal values (Box-Muller over a seeded generator).</summary>
    public static float[] Gaussian(int count, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            v[i] = scale * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return v;
    }

    /// <summary>
    /// count values (a multiple of 256) whose 32-value blocks cycle through: gaussian, all zero, constant,
    /// all positive, one large outlier, negative-dominant, tiny (below ggml's 1e-15 group threshold), mixed scale.
    /// </summary>
    public static float[] Awkward(int count, int seed)
    {
        var g = Gaussian(count, seed);
        var v = new float[count];
        for (int b = 0; b < count / 32; b++)
            for (int j = 0; j < 32; j++)
            {
                int i = 32 * b + j;
                v[i] = (b % 8) switch
                {
                    0 => g[i],
                    1 => 0f,
                    2 => 0.75f,
                    3 => MathF.Abs(g[i]) + 0.1f,
                    4 => j == 7 ? 40f : g[i] * 0.01f,
                    5 => -MathF.Abs(g[i]) * 3 + 0.2f,
                    6 => g[i] * 1e-17f,
                    _ => g[i] * (1 << (j % 5)),
                };
            }
        return v;
    }
}
