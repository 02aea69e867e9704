using System.CommandLine;
using ClockLM.Training;

namespace ClockLM.Cli;

/// <summary>
/// `clocklm score [--model PATH] --data text.txt [--context N]`: how well a model predicts a held-out text, as
/// nats per token, perplexity and bits per byte (every token predicted once; see <see cref="HeldOutScore"/>).
/// </summary>
internal static class ScoreCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var data = new Option<string>("--data") { Description = "The text to score (UTF-8; lines encoded as `clocklm train` encodes them)", Required = true };
        var context = new Option<int?>("--context") { Description = "Window length (default: the model's context length)" };
        var command = new Command("score", "Score a held-out text: nats per token, perplexity, bits per byte");
        model.AddTo(command);
        command.Options.Add(data);
        command.Options.Add(context);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            string path = result.GetValue(data)!;
            if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such text", path);
            using var m = model.Load(result);
            int? window = result.GetValue(context);
            if (window is { } w && (w < 2 || w > m.Config.ContextLength))
                throw new UsageException($"--context is {w}, expected 2 to the model's context length {m.Config.ContextLength}");
            using var pool = model.CreatePool(result);
            var score = HeldOutScore.Measure(m, File.ReadAllText(path), window, pool);
            Console.Out.WriteLine($"{path}: {score.Tokens:N0} tokens, {score.Bytes:N0} bytes, windows of {score.Context} tokens");
            Console.Out.WriteLine($"total {score.Nats:F2} nats; {score.NatsPerToken:F4} nats/token (perplexity {score.Perplexity:F2}); " +
                $"{score.BitsPerByte:F4} bits/byte");
            return 0;
        }));
        return command;
    }
}
