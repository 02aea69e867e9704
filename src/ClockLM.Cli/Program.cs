using System.CommandLine;
using ClockLM.Cli;

var root = new RootCommand("ClockLM: run language models in pure C#, one transformer layer per clock cycle.");
foreach (var command in Commands.All())
    root.Subcommands.Add(command);
return await root.Parse(args).InvokeAsync();
