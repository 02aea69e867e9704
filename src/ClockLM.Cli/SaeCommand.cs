using System.CommandLine;
using ClockLM.Clock;
using ClockLM.Features;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm sae train`: captures a hook point's activations over a file of prompts and trains a sparse autoencoder on
/// them with ClockLM's own autograd, written in SAELens's format (cfg.json and sae_weights.safetensors), with the share
/// of variance it explains on prompts held out from training.
/// </summary>
internal static class SaeCommand
{
    public static Command Create()
    {
        var command = new Command("sae", "Sparse autoencoders: train one on a model's activations");
        command.Subcommands.Add(Train());
        return command;
    }

    private static Command Train()
    {
        var model = new ModelOptions();
        var data = new Option<string?>("--data", "-d") { Description = "Prompts, one per line (empty lines skipped)", HelpName = "FILE" };
        var point = new Option<string?>("--point") { Description = "The hook point to encode, e.g. blocks.2.hook_resid_post", HelpName = "NAME" };
        var output = new Option<string?>("--out", "-o") { Description = "Directory to write cfg.json and sae_weights.safetensors into", HelpName = "DIR" };
        var features = new Option<int?>("--features") { Description = "Features (d_sae); default 4 x the point's width" };
        var k = new Option<int>("-k", "--k") { Description = "Top-k: features active per activation; 0 trains a ReLU SAE with an L1 penalty", DefaultValueFactory = _ => 16 };
        var l1 = new Option<double>("--l1") { Description = "With -k 0: the L1 penalty's weight", DefaultValueFactory = _ => 1e-3 };
        var steps = new Option<int>("--steps") { Description = "Adam steps", DefaultValueFactory = _ => 300 };
        var batch = new Option<int>("--batch") { Description = "Activations per step", DefaultValueFactory = _ => 128 };
        var lr = new Option<double>("--lr") { Description = "Adam learning rate", DefaultValueFactory = _ => 3e-3 };
        var seed = new Option<ulong>("--seed", "-s") { Description = "Seed of the weights and batches", DefaultValueFactory = _ => 1UL };
        var heldOut = new Option<int>("--held-out-every") { Description = "Every Nth prompt is held out to measure the variance explained", DefaultValueFactory = _ => 10 };

        var command = new Command("train", "Train a sparse autoencoder on a hook point's activations (SAELens's format)");
        model.AddTo(command);
        foreach (var o in new Option[] { data, point, output, features, k, l1, steps, batch, lr, seed, heldOut })
            command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string dataPath = result.GetValue(data) ?? throw new UsageException("--data is required: a file of prompts, one per line");
            string outDir = result.GetValue(output) ?? throw new UsageException("--out is required: the directory to write the SAE into");
            string pointName = result.GetValue(point) ?? throw new UsageException("--point is required, e.g. blocks.2.hook_resid_post");
            (ActivationPoint Point, int Layer) hook;
            try { hook = ActivationPoints.Parse(pointName); }
            catch (FormatException e) { throw new UsageException($"--point: {e.Message}"); }
            if (hook.Point == ActivationPoint.AttentionPattern) throw new UsageException("--point: attn.hook_pattern has no fixed width; encode attn.hook_z instead");
            int every = result.GetValue(heldOut);
            if (every < 2) throw new UsageException($"--held-out-every is {every}, expected 2 or more");
            var options = new SaeTrainingOptions
            {
                Features = result.GetValue(features),
                K = result.GetValue(k),
                L1 = result.GetValue(l1),
                Steps = result.GetValue(steps),
                BatchSize = result.GetValue(batch),
                LearningRate = result.GetValue(lr),
                Seed = result.GetValue(seed),
            };
            if (options.Features is < 1) throw new UsageException($"--features is {options.Features}, expected 1 or more");
            if (options.Steps < 1 || options.BatchSize < 1) throw new UsageException("--steps and --batch must be 1 or more");
            if (!(options.LearningRate > 0)) throw new UsageException($"--lr is {options.LearningRate}, expected a positive number");

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            if (hook.Layer >= m.Config.Layers) throw new UsageException($"--point {pointName}: the model has layers 0..{m.Config.Layers - 1}");
            int width = ActivationPoints.Width(hook.Point, m.Config);
            if (options.K > (options.Features ?? 4 * width)) throw new UsageException($"-k is {options.K}, more than the {options.Features ?? 4 * width} features");

            // Every prompt's activations at the point, each prompt either trained on or held out.
            var transformer = m.CreateTransformer(pool: pool);
            var train = new List<float[]>();
            var test = new List<float[]>();
            int prompts = 0;
            foreach (string prompt in PromptFile.Read(dataPath))
            {
                int[] ids = m.Tokenizer.Encode(prompt).ToArray();
                if (ids.Length == 0) continue;
                if (ids.Length > transformer.ContextLength) ids = ids[..transformer.ContextLength];
                var rows = ++prompts % every == 0 ? test : train;
                transformer.Run(ids, (p, layer, _, activation) =>
                {
                    if (p == hook.Point && layer == hook.Layer) rows.Add(activation.ToArray());
                });
            }
            if (train.Count == 0 || test.Count == 0)
                throw new UsageException($"{dataPath} has {prompts} prompts; at least {every} are needed (every {every}th is held out)");

            var sae = SaeTrainer.Train(train, pointName, options, Path.GetFileNameWithoutExtension(m.Path));
            sae.Save(outDir, new Dictionary<string, string> { ["dataset_path"] = Path.GetFileName(dataPath) });
            Console.WriteLine($"{outDir}: {sae.Features} features over {pointName} ({(options.K > 0 ? $"top-{options.K}" : $"ReLU, L1 {options.L1}")}), " +
                $"{options.Steps} steps on {train.Count} positions; variance explained {sae.VarianceExplained(train):P1} (training), " +
                $"{sae.VarianceExplained(test):P1} (held out: {test.Count} positions of every {every}th prompt); " +
                $"{sae.MeanActiveFeatures(test):F1} features active per position (L0)");
            return 0;
        }));
        return command;
    }
}
