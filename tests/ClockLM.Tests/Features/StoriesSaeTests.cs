using System.Text.Json;
using System.Text.RegularExpressions;
using ClockLM.Clock;
using ClockLM.Features;
using ClockLM.Generation;
using ClockLM.Models;
using ClockLM.Sampling;
using ClockLM.Tests.Cli;
using Xunit.Abstractions;

namespace ClockLM.Tests.Features;

/// <summary>
/// A sparse autoencoder trained by `clocklm sae train` on stories260K's residual stream after layer 2, read back from
/// SAELens's files, reconstructing activations of stories it never saw; its features in the trace and its decoder
/// directions as steering.
/// </summary>
public class StoriesSaeTests(StoriesSaeTests.TrainedSae trained, ITestOutputHelper output) : IClassFixture<StoriesSaeTests.TrainedSae>
{
    /// <summary>The SAE `clocklm sae train` makes from ten stories (seeds 1 to 10): top-16 of 256 features, 300 steps.</summary>
    public sealed class TrainedSae : IDisposable
    {
        private readonly TempDir _dir = new();

        public TrainedSae()
        {
            using var model = Model.Load(SharedData.Stories260K);
            File.WriteAllLines(_dir.File("stories.txt"), Stories(model, Enumerable.Range(1, 10).Select(i => (ulong)i)));
            var result = ClockLMProcess.Run("sae", "train", "-m", SharedData.Stories260K, "--data", _dir.File("stories.txt"), "--point", Point,
                "--out", Directory, "-k", "16", "--steps", "300", "-t", "1");
            Assert.True(result.ExitCode == 0, result.StdErr);
            Assert.Contains("256 features over blocks.2.hook_resid_post (top-16)", result.StdOut);
        }

        public string Directory => _dir.File("sae");

        public void Dispose() => _dir.Dispose();
    }

    private const string Point = "blocks.2.hook_resid_post";

    /// <summary>Sentences of stories the model tells itself (sampled at temperature 1), one per line.</summary>
    internal static List<string> Stories(Model model, IEnumerable<ulong> seeds)
    {
        var lines = new List<string>();
        foreach (ulong seed in seeds)
        {
            var text = new Generator(model).Generate("Once upon a time", new GenerationOptions
            {
                MaxNewTokens = 200,
                Sampler = new SamplerOptions { Temperature = 1, Seed = seed },
            }).Text;
            lines.AddRange(Regex.Split("Once upon a time" + text, @"(?<=[.!?])\s+").Where(s => s.Trim().Length > 0).Select(s => s.Replace('\n', ' ')));
        }
        return lines;
    }

    [Fact]
    public void ATrainedTopKSaeExplainsMostOfTheVarianceOfStoriesItNeverSaw()
    {
        var sae = SparseAutoencoder.Load(trained.Directory);
        Assert.Equal((64, 256, SaeActivation.TopK, 16, "stories260K"), (sae.InputWidth, sae.Features, sae.Activation, sae.K, sae.ModelName));
        using var model = Model.Load(SharedData.Stories260K);
        // Held out: stories from other seeds than the training ones, their activations captured here.
        var rows = new List<float[]>();
        var t = model.CreateTransformer();
        foreach (string line in Stories(model, [101, 102]))
        {
            var capture = ActivationCapture.Run(t, model.Tokenizer.Encode(line).ToArray(), points: [ActivationPoint.ResidPost]);
            for (int p = 0; p < capture.Tokens.Length; p++) rows.Add(capture.Get(Point, p));
        }
        double explained = sae.VarianceExplained(rows), active = sae.MeanActiveFeatures(rows);
        output.WriteLine($"{rows.Count} held-out positions: {explained:P1} of the variance explained with {active:F1} features active per position");
        Assert.True(rows.Count > 200, $"only {rows.Count} held-out positions");
        Assert.True(explained >= 0.8, $"the SAE explains {explained:P1} of the held-out variance; at least 80 % was expected");
        Assert.True(active <= 16);
    }

    [Fact]
    public void TheTraceShowsEachTokensTopFeaturesInItsTablePerfettoAndHtml()
    {
        var sae = SparseAutoencoder.Load(trained.Directory);
        using var model = Model.Load(SharedData.Stories260K);
        int[] prompt = model.Tokenizer.Encode("Lily was happy").ToArray();
        var trace = ClockTrace.Run(model.CreateTransformer(32), prompt, 2, saes: [sae], featureTopK: 3);
        var capture = ActivationCapture.Run(model.CreateTransformer(32), trace.Tokens.Select(t => t.Token).ToArray(), points: [ActivationPoint.ResidPost]);
        Assert.Equal([Point], trace.FeatureHooks);
        foreach (var token in trace.Tokens)
        {
            var features = Assert.Single(token.Features);
            Assert.Equal(Point, features.Hook);
            Assert.Equal(sae.TopFeatures(capture.Get(Point, token.Position), 3), features.Top);
            Assert.Equal(3, features.Top.Length);
        }

        using var stream = new MemoryStream();
        PerfettoTrace.Write(trace, id => model.Tokenizer.GetPiece(id), stream);
        var events = JsonDocument.Parse(stream.ToArray()).RootElement.GetProperty("traceEvents").EnumerateArray()
            .Where(e => e.TryGetProperty("cat", out var c) && c.GetString() == "features").ToArray();
        Assert.Equal(trace.Tokens.Length, events.Length);
        var last = events[^1].GetProperty("args");
        Assert.Equal(trace.Tokens[^1].Position, last.GetProperty("position").GetInt32());
        Assert.Equal(trace.Tokens[^1].Features[0].Top[0].Feature, last.GetProperty(Point)[0].GetProperty("feature").GetInt32());

        string html = HtmlReport.Render(trace, id => model.Tokenizer.GetPiece(id), "features");
        Assert.Contains("\"featureHooks\":[\"blocks.2.hook_resid_post\"]", html);
        Assert.Contains($"\"features\":[[[{trace.Tokens[0].Features[0].Top[0].Feature},", html);

        var cli = ClockLMProcess.Run("trace", "-m", SharedData.Stories260K, "-n", "1", "--sae", trained.Directory, "--sae-top", "2", "-t", "1", "Lily was happy");
        Assert.True(cli.ExitCode == 0, cli.StdErr);
        var top = trace.Tokens[1].Features[0].Top;
        Assert.Contains($"features @1    {Point}: #{top[0].Feature} {top[0].Activation:F2}  #{top[1].Feature} {top[1].Activation:F2}", cli.StdOut);
    }

    [Fact]
    public void SteeringByAFeatureAddsItsDecoderDirectionWhereTheSaeReads()
    {
        var sae = SparseAutoencoder.Load(trained.Directory);
        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        int[] prompt = model.Tokenizer.Encode("Tom ran").ToArray();
        const int feature = 7;
        var plain = ActivationCapture.Run(model.CreateTransformer(16), prompt);
        var t = model.CreateTransformer(16);
        t.Steering = ResidualSteering.Create(c, [FeatureSteering.Term(sae, feature, 5f, c)]);
        var steered = ActivationCapture.Run(t, prompt);
        // At position 0 nothing before layer 2 changes; layer 2's output gains 5 × the feature's direction.
        Assert.Equal(plain.Get(ActivationPoint.MlpOut, 2, 0), steered.Get(ActivationPoint.MlpOut, 2, 0));
        float[] expected = plain.Get(Point, 0).Zip(sae.DecoderDirection(feature).ToArray(), (x, d) => x + 5f * d).ToArray();
        Assert.Equal(expected, steered.Get(Point, 0));
        // The feature then fires more strongly there.
        var before = new float[sae.Features];
        var after = new float[sae.Features];
        sae.Encode(plain.Get(Point, 1), before);
        sae.Encode(steered.Get(Point, 1), after);
        Assert.True(after[feature] > before[feature] + 1, $"feature {feature}: {before[feature]} -> {after[feature]}");

        // An SAE on the stream entering layer 3 steers after layer 2 too; one on attn.hook_z cannot steer the stream.
        var pre = new SparseAutoencoder("blocks.3.hook_resid_pre", 64, sae.Features, sae.EncoderWeights, sae.EncoderBias, sae.DecoderWeights, sae.DecoderBias);
        Assert.Equal([2], FeatureSteering.Term(pre, feature, 1f, c).Directions.Keys);
        var z = new SparseAutoencoder("blocks.1.attn.hook_z", 64, sae.Features, sae.EncoderWeights, sae.EncoderBias, sae.DecoderWeights, sae.DecoderBias);
        Assert.Contains("feature steering adds to the residual stream", Assert.Throws<ArgumentException>(() => FeatureSteering.Term(z, feature, 1f, c)).Message);
        var wide = new SparseAutoencoder("blocks.1.mlp.hook_post", 64, sae.Features, sae.EncoderWeights, sae.EncoderBias, sae.DecoderWeights, sae.DecoderBias);
        Assert.Contains($"reads 64 values at blocks.1.mlp.hook_post; the model has {c.HiddenDim}",
            Assert.Throws<ArgumentException>(() => ClockTrace.FeaturePoint(wide, c)).Message);
    }
}
