using System.CommandLine;
using ClockLM.Nn;

namespace ClockLM.Cli;

/// <summary>`clocklm nn`: the neural-network training core. `clocklm nn example [--seed N]` runs the 3-2-1 worked example.</summary>
internal static class NnCommand
{
    public static Command Create()
    {
        var seed = new Option<int?>("--seed")
        {
            Description = "Seed for weight initialisation and shuffling (default: a random seed, printed so the run can be repeated)",
        };
        var example = new Command("example", "Train the 3-2-1 network, then show its forward pass and one gradient step by hand");
        example.Options.Add(seed);
        example.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            ThreeTwoOneExample.Run(output, parseResult.GetValue(seed) ?? Random.Shared.Next());
            return 0;
        });

        var nn = new Command("nn", "Neural networks with automatic differentiation: Dense layers, Adam, Keras-style Fit/Predict");
        nn.Subcommands.Add(example);
        return nn;
    }
}
