using System.CommandLine;
using ClockLM.Generation;

namespace ClockLM.Cli;

/// <summary>Speculative decoding's options, shared by run, chat, serve and bench: --model-draft M or --lookup N, with
/// --draft-max, --draft-min and --draft-p-min (as llama.cpp names them).</summary>
internal sealed class SpeculativeArguments
{
    public Option<string?> DraftModel { get; } = new("--model-draft", "-md") { Description = "Speculative decoding: a small model with the same vocabulary drafts tokens that the model verifies several at once (same output)" };
    public Option<int> Lookup { get; } = new("--lookup") { Description = "Speculative decoding without a second model: draft the continuation of the longest earlier match of the last N tokens (N-gram size, 1 to 64; 0 = off)", DefaultValueFactory = _ => 0 };
    public Option<int> DraftMax { get; } = new("--draft-max") { Description = "Most tokens drafted per verification pass", DefaultValueFactory = _ => 16 };
    public Option<int> DraftMin { get; } = new("--draft-min") { Description = "Fewest drafted tokens worth a verification pass", DefaultValueFactory = _ => 0 };
    public Option<float> DraftPMin { get; } = new("--draft-p-min") { Description = "A draft model stops at a token it gives less than this probability", DefaultValueFactory = _ => 0.75f };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { DraftModel, Lookup, DraftMax, DraftMin, DraftPMin }) command.Options.Add(o);
    }

    /// <summary>True when --model-draft or --lookup asks for speculative decoding.</summary>
    public bool Requested(ParseResult result) => result.GetValue(DraftModel) is not null || result.GetValue(Lookup) != 0;

    /// <summary>The options the command line asks for, null when neither --model-draft nor --lookup is given; a draft
    /// model is loaded on the kernels of <paramref name="options"/> into <paramref name="draftModel"/> (the caller disposes
    /// it), and checked against <paramref name="target"/>'s vocabulary (null: several models are served, and only lookup
    /// drafting, which needs no second model, can serve them all).</summary>
    public SpeculativeOptions? Create(ParseResult result, ClockLM.Models.Model? target, ClockLM.Models.ModelOptions options, out ClockLM.Models.Model? draftModel)
    {
        draftModel = null;
        if (!Requested(result))
        {
            foreach (var o in new Option[] { DraftMax, DraftMin, DraftPMin })
                if (result.GetResult(o) is { Implicit: false })
                    throw new UsageException($"{o.Name} needs --model-draft or --lookup");
            return null;
        }
        var speculative = new SpeculativeOptions
        {
            Lookup = result.GetValue(Lookup),
            DraftMax = result.GetValue(DraftMax),
            DraftMin = result.GetValue(DraftMin),
            DraftPMin = result.GetValue(DraftPMin),
        };
        if (result.GetValue(DraftModel) is { } path && speculative.Lookup != 0)
            throw new UsageException("--model-draft and --lookup cannot be combined; choose one");
        // The numbers are checked before a draft model is loaded (which the check would otherwise ask for).
        if ((speculative.Lookup == 0 ? speculative with { Lookup = 1 } : speculative).Validate() is { } problem)
            throw new UsageException(problem);
        if (result.GetValue(DraftModel) is { } draftPath)
        {
            if (target is null) throw new UsageException("--model-draft drafts for one --model; with --models-dir use --lookup");
            draftModel = ClockLM.Models.Model.Load(draftPath, null, options);
            try
            {
                DraftModelDrafter.CheckVocabulary(target, draftModel);
            }
            catch
            {
                draftModel.Dispose();
                draftModel = null;
                throw;
            }
            speculative = speculative with { DraftModel = draftModel };
        }
        return speculative;
    }
}
