using System.CommandLine;

namespace ClockLM.Cli;

/// <summary>`clocklm tokenize --model PATH [--no-bos] [--ids] TEXT`: token ids (and pieces) of a text; a vocabulary-only
/// GGUF file is enough.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var text = new Argument<string>("text") { Description = "Text to tokenize" };
        var noBos = new Option<bool>("--no-bos") { Description = "Do not add BOS/EOS" };
        var idsOnly = new Option<bool>("--ids") { Description = "Print only the ids, as a list" };
        var special = new Option<bool>("--parse-special") { Description = "Let special tokens written in the text become their id" };
        var command = new Command("tokenize", "Show the tokens of a text");
        model.AddTo(command);
        command.Options.Add(noBos);
        command.Options.Add(idsOnly);
        command.Options.Add(special);
        command.Arguments.Add(text);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            var tokenizer = model.LoadTokenizer(result);
            var ids = tokenizer.Encode(result.GetValue(text)!, addSpecial: !result.GetValue(noBos), parseSpecial: result.GetValue(special));
            if (result.GetValue(idsOnly))
            {
                Console.Out.WriteLine("[" + string.Join(", ", ids) + "]");
                return 0;
            }
            foreach (int id in ids)
                Console.Out.WriteLine($"{id,6} -> '{tokenizer.GetPiece(id)}'");
            return 0;
        }));
        return command;
    }
}
