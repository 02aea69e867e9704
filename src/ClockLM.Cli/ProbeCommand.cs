using System.CommandLine;
using System.Globalization;
using ClockLM.Clock;
using ClockLM.Probes;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm probe`: trains a logistic-regression probe on the residual stream after each cycle and prints its
/// held-out accuracy per layer, against the embedding and the majority class: which cycle first "knows" the property.
/// </summary>
internal static class ProbeCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var data = new Option<string?>("--data", "-d") { Description = "Labelled sentences: 'label<TAB>sentence' lines, two classes (0/1 or two names)" };
        var layers = new Option<string>("--layers") { Description = "Layers to probe: 'all' or a list such as 0,2,4", DefaultValueFactory = _ => "all" };
        var point = new Option<string>("--point") { Description = "Activation to probe: resid_post, resid_pre, resid_mid, attn_out or mlp_out", DefaultValueFactory = _ => "resid_post" };
        var position = new Option<string>("--position") { Description = "Feature of a sentence: 'last' token or 'mean' over positions", DefaultValueFactory = _ => "last" };
        var seed = new Option<int>("--seed", "-s") { Description = "Seed of the split, the weights and the batch order", DefaultValueFactory = _ => 1 };
        var testFraction = new Option<double>("--test-fraction") { Description = "Fraction of each class held out", DefaultValueFactory = _ => 0.3 };
        var epochs = new Option<int>("--epochs") { Description = "Training passes per probe", DefaultValueFactory = _ => 100 };
        var learningRate = new Option<double>("--lr") { Description = "Adam learning rate", DefaultValueFactory = _ => 0.01 };

        var command = new Command("probe", "Train a linear probe per layer on labelled sentences and print held-out accuracy");
        model.AddTo(command);
        foreach (var o in new Option[] { data, layers, point, position, seed, testFraction, epochs, learningRate })
            command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string dataPath = result.GetValue(data) ?? throw new UsageException("--data is required: a file of 'label<TAB>sentence' lines");
            var options = new ProbeOptions
            {
                Layers = ParseLayers(result.GetValue(layers)!),
                Point = ParsePoint(result.GetValue(point)!),
                Position = result.GetValue(position) switch
                {
                    "last" => ProbePosition.LastToken,
                    "mean" => ProbePosition.Mean,
                    var p => throw new UsageException($"--position is '{p}', expected 'last' or 'mean'"),
                },
                Seed = result.GetValue(seed),
                TestFraction = result.GetValue(testFraction),
                Epochs = result.GetValue(epochs),
                LearningRate = result.GetValue(learningRate),
            };
            if (!(options.TestFraction is > 0 and < 1)) throw new UsageException($"--test-fraction is {options.TestFraction}, expected a number between 0 and 1");
            if (options.Epochs < 1) throw new UsageException($"--epochs is {options.Epochs}, expected 1 or more");
            if (!(options.LearningRate > 0)) throw new UsageException($"--lr is {options.LearningRate}, expected a positive number");

            try
            {
                var dataset = ProbeDataset.Load(dataPath);
                using var pool = model.CreatePool(result);
                using var m = model.Load(result);
                foreach (int layer in options.Layers ?? [])
                    if (layer >= m.Config.Layers)
                        throw new UsageException($"--layers names layer {layer}, but {Path.GetFileName(m.Path)} has layers 0 to {m.Config.Layers - 1}");
                var report = LayerProbe.TrainPerLayer(m, dataset, options, pool);
                Print(m, dataset, options, report, Console.Out);
                return 0;
            }
            catch (ProbeDataException e)
            {
                // A malformed data file is the user's to fix, like a bad option: one line naming file:line.
                throw new UsageException(e.Message);
            }
        }));
        return command;
    }

    private static void Print(ClockLM.Models.Model m, ProbeDataset dataset, ProbeOptions options, ProbeReport report, TextWriter output)
    {
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(inv,
            $"probe: {Path.GetFileName(m.Path)}, {dataset.Examples.Count} sentences from {Path.GetFileName(dataset.Path)} " +
            $"({dataset.ClassNames[0]} = 0: {dataset.Count(0)}, {dataset.ClassNames[1]} = 1: {dataset.Count(1)})"));
        output.WriteLine(string.Create(inv,
            $"features: {PointName(options.Point)} at the {(options.Position == ProbePosition.LastToken ? "last token" : "mean over positions")}, " +
            $"standardised; logistic regression, Adam lr {options.LearningRate}, {options.Epochs} epochs; " +
            $"split {report.TrainCount} train / {report.TestCount} test, seed {options.Seed}"));
        output.WriteLine();
        output.WriteLine("layer   train   test");
        foreach (var r in report.Layers)
            output.WriteLine(string.Create(inv, $"{r.Name,-7} {r.TrainAccuracy,5:F3}   {r.TestAccuracy,5:F3}"));
        output.WriteLine();
        output.WriteLine(string.Create(inv,
            $"majority class: {report.MajorityBaseline:F3} on the test split; chance ± 2 standard errors " +
            $"(N = {report.TestCount}): {report.MajorityBaseline - report.TwoStandardErrors:F3} to {report.MajorityBaseline + report.TwoStandardErrors:F3}"));
        output.WriteLine(report.FirstLayerAboveChance switch
        {
            null => "no layer is above chance + 2 standard errors",
            LayerProbe.EmbeddingLayer => "the embedding is already above chance + 2 standard errors",
            int layer => $"first layer above chance + 2 standard errors: {layer}",
        });
    }

    private static int[]? ParseLayers(string text)
    {
        if (text.Trim() == "all") return null;
        var layers = new List<int>();
        foreach (string part in text.Split(','))
        {
            if (!int.TryParse(part.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int layer))
                throw new UsageException($"--layers has '{part}', expected 'all' or layer numbers separated by commas (e.g. 0,2,4)");
            layers.Add(layer);
        }
        return [.. layers];
    }

    private static readonly (string Name, ActivationPoint Point)[] Points =
    [
        ("resid_pre", ActivationPoint.ResidPre), ("attn_out", ActivationPoint.AttnOut), ("resid_mid", ActivationPoint.ResidMid),
        ("mlp_out", ActivationPoint.MlpOut), ("resid_post", ActivationPoint.ResidPost),
    ];

    private static ActivationPoint ParsePoint(string text) =>
        Points.FirstOrDefault(p => p.Name == text) is { Name: not null } found ? found.Point
            : throw new UsageException($"--point is '{text}', expected one of {string.Join(", ", Points.Select(p => p.Name))}");

    private static string PointName(ActivationPoint point) => Points.First(p => p.Point == point).Name;
}
