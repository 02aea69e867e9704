using System.CommandLine;

namespace ClockLM.Cli;

/// <summary>`clocklm detokenize --model PATH IDS...`: the text of token ids (as `tokenize --ids` prints them, or
/// separated by spaces or commas); a vocabulary-only GGUF file is enough.</summary>
internal static class DetokenizeCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var ids = new Argument<string[]>("ids") { Description = "Token ids, e.g. 1 15043 or \"[1, 15043]\"", Arity = ArgumentArity.OneOrMore };
        var command = new Command("detokenize", "Show the text of token ids");
        command.Options.Add(model.Model);
        command.Options.Add(model.Tokenizer);
        command.Arguments.Add(ids);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            var tokenizer = model.LoadTokenizer(result);
            var parsed = new List<int>();
            foreach (string word in result.GetValue(ids)!.SelectMany(a => a.Split([' ', ',', '[', ']', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries)))
            {
                if (!int.TryParse(word, out int id) || id < 0 || id >= tokenizer.VocabSize)
                    throw new UsageException($"token id '{word}' is not an id of this vocabulary; expected 0 to {tokenizer.VocabSize - 1}");
                parsed.Add(id);
            }
            Console.Out.WriteLine(tokenizer.Decode(parsed));
            return 0;
        }));
        return command;
    }
}
