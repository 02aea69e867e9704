using System.CommandLine;

namespace ClockLM.Cli;

/// <summary>The list of `clocklm` subcommands. Each command lives in its own file and exposes a static Create().</summary>
internal static class Commands
{
    public static IEnumerable<Command> All() =>
    [
        RunCommand.Create(),
        InspectCommand.Create(),
        ListCommand.Create(),
        ShowCommand.Create(),
        TokenizeCommand.Create(),
        DetokenizeCommand.Create(),
        ConvertCommand.Create(),
        SynthCommand.Create(),
        QuantizeCommand.Create(),
        BenchCommand.Create(),
        PerplexityCommand.Create(),
        NnCommand.Create(),
        ServeCommand.Create(),
        ChatCommand.Create(),
        TraceCommand.Create(),
        RooflineCommand.Create(),
        ProbeCommand.Create(),
        CvectorCommand.Create(),
        CaptureCommand.Create(),
        SaeCommand.Create(),
        TrainCommand.Create(),
        FinetuneCommand.Create(),
        ScoreCommand.Create(),
    ];
}
