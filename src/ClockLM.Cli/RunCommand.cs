using System.CommandLine;
using System.Text.Json.Nodes;
using ClockLM.Generation;
using ClockLM.Sampling;
using ClockLM.Chat;
using ClockLM.Tokenizers.ChatTemplates;

namespace ClockLM.Cli;

/// <summary>`clocklm run`: generate a continuation of a prompt, streamed to stdout.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var steering = new SteeringOptions();
        var prompt = new Argument<string>("prompt") { Description = "Text to continue" };
        var maxNew = new Option<int>("-n", "--max-new-tokens") { Description = "Most tokens to generate", DefaultValueFactory = _ => 128 };
        var temp = new Option<float>("--temp") { Description = "Temperature; 0 is greedy", DefaultValueFactory = _ => 0.8f };
        var topK = new Option<int>("--top-k") { Description = "Top-k (0 = off)", DefaultValueFactory = _ => 40 };
        var topP = new Option<float>("--top-p") { Description = "Top-p (1 = off)", DefaultValueFactory = _ => 0.95f };
        var minP = new Option<float>("--min-p") { Description = "Min-p (0 = off)", DefaultValueFactory = _ => 0.05f };
        var repeat = new Option<float>("--repeat-penalty") { Description = "Repetition penalty (1 = off)", DefaultValueFactory = _ => 1.0f };
        var seed = new Option<ulong>("--seed", "-s") { Description = "Random seed", DefaultValueFactory = _ => 0x5EEDUL };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context length (default: the model's)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of streaming text" };
        var chat = new Option<bool>("--chat") { Description = "Send the prompt as a user message through the model's chat template (ChatML when the file has none)" };
        var system = new Option<string?>("--system") { Description = "With --chat: a system message before the prompt" };
        var ubatch = new Option<int?>("--ubatch", "-ub") { Description = "Prompt tokens run through the layers together (default 128; 1 = token by token)" };
        var grammar = new Option<string?>("--grammar") { Description = "GBNF grammar file the output must follow" };
        var jsonSchema = new Option<string?>("--json-schema") { Description = "JSON schema the output must follow: a file, or the schema itself when it starts with '{'" };
        var cacheTypes = new CacheTypeOptions();
        var contextShift = new Option<bool>("--context-shift") { Description = "When the context is full, drop half of it (after --keep tokens) and go on" };
        var keep = new Option<int>("--keep") { Description = "Prompt tokens a context shift keeps after BOS (-1: the whole prompt)", DefaultValueFactory = _ => 0 };

        var command = new Command("run", "Generate text from a prompt");
        model.AddTo(command);
        steering.AddTo(command);
        foreach (var o in new Option[] { maxNew, temp, topK, topP, minP, repeat, seed, ctx, json, chat, system, ubatch, grammar, jsonSchema, contextShift, keep })
            command.Options.Add(o);
        cacheTypes.AddTo(command);
        command.Arguments.Add(prompt);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            var sampler = new SamplerOptions
            {
                Temperature = result.GetValue(temp),
                TopK = result.GetValue(topK),
                TopP = result.GetValue(topP),
                MinP = result.GetValue(minP),
                RepeatPenalty = result.GetValue(repeat),
                Seed = result.GetValue(seed),
            };
            if (sampler.Validate() is { } problem) throw new UsageException(problem);
            int n = result.GetValue(maxNew);
            if (n < 0) throw new UsageException($"-n is {n}, expected 0 or more");
            string text = result.GetValue(prompt)!;
            if (result.GetValue(model.Model) is null && IsModelFile(text))
                throw new UsageException($"'{text}' is a model file, not a prompt: did you mean --model {text}?");
            int? contextLength = result.GetValue(ctx);
            if (contextLength is <= 0) throw new UsageException($"--ctx is {contextLength}, expected a positive number");
            var constraint = OutputGrammar.Read(result.GetValue(grammar), result.GetValue(jsonSchema));

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            ModelOptions.WarnAboveTrainedContext(m, contextLength);
            var cache = cacheTypes.Read(result);
            int kept = result.GetValue(keep);
            if (kept < -1) throw new UsageException($"--keep is {kept}, expected -1 (the whole prompt) or a count of tokens");
            bool shift = result.GetValue(contextShift);
            var generator = new Generator(m, contextLength, pool, cache);
            if (shift && !generator.Transformer.CanShiftContext)
                throw new UsageException($"--context-shift: {Path.GetFileName(m.Path)} has learned absolute positions, not RoPE, so its context cannot shift");
            if (n > generator.Transformer.ContextLength && !shift)
                Console.Error.WriteLine($"warning: -n is {n}, more than the context of {generator.Transformer.ContextLength} holds: generation stops when it is full (--context-shift goes on)");
            generator.Transformer.Steering = steering.Build(result, m);
            if (result.GetValue(ubatch) is { } ub)
                generator.Transformer.MicroBatch = ub >= 1 ? ub : throw new UsageException($"--ubatch is {ub}, expected at least 1");
            var options = new GenerationOptions { MaxNewTokens = n, Sampler = sampler, Grammar = constraint, ContextShift = shift, KeepTokens = kept };
            bool asJson = result.GetValue(json);
            var stdout = Console.Out;
            if (result.GetValue(system) is not null && !result.GetValue(chat))
                throw new UsageException("--system needs --chat");
            GenerationResult output;
            if (result.GetValue(chat))
            {
                // The prompt becomes a conversation; generation ends at EOS or at the template's end-of-turn text.
                var chatPrompt = new ChatPrompt(m);
                var messages = new List<ChatMessage>();
                if (result.GetValue(system) is { } systemText) messages.Add(new ChatMessage("system", systemText));
                messages.Add(new ChatMessage("user", text));
                var stops = new StopSequenceFilter(chatPrompt.TemplateStops);
                using var stopped = new CancellationTokenSource();
                output = generator.Generate(chatPrompt.Encode(messages), options, onText: piece =>
                {
                    string shown = stops.Append(piece);
                    if (!asJson) { stdout.Write(shown); stdout.Flush(); }
                    if (stops.Stopped) stopped.Cancel();
                }, cancellation: stopped.Token);
                if (!asJson && !stops.Stopped) stdout.Write(stops.Flush());
            }
            else
            {
                output = generator.Generate(text, options,
                    onText: asJson ? null : s => { stdout.Write(s); stdout.Flush(); },
                    echoPrompt: !asJson);
            }
            if (asJson)
            {
                static JsonArray Ids(int[] ids) => new([.. ids.Select(id => (JsonNode)id)]);
                stdout.WriteLine(new JsonObject
                {
                    ["prompt_ids"] = Ids(output.PromptIds),
                    ["generated_ids"] = Ids(output.GeneratedIds),
                    ["text"] = output.Text,
                    ["stop_reason"] = output.StopReason.ToString(),
                    ["grammar_complete"] = constraint is null ? null : output.StopReason == StopReason.EndOfSequence,
                    ["timings"] = new JsonObject
                    {
                        ["prompt_ms"] = output.PromptTime.TotalMilliseconds,
                        ["prompt_tokens_per_second"] = output.PromptTokensPerSecond,
                        ["decode_ms"] = output.DecodeTime.TotalMilliseconds,
                        ["decode_tokens_per_second"] = output.DecodeTokensPerSecond,
                    },
                }.ToJsonString());
            }
            else
            {
                stdout.WriteLine();
            }
            Console.Error.WriteLine(
                $"prompt: {output.PromptIds.Length} tokens, {output.PromptTokensPerSecond:F1} tokens/s; " +
                $"decode: {output.GeneratedIds.Length} tokens, {output.DecodeTokensPerSecond:F1} tokens/s");
            return 0;
        }));
        return command;
    }

    /// <summary>True when <paramref name="text"/> names an existing GGUF file or llama2.c checkpoint (.bin).</summary>
    private static bool IsModelFile(string text)
    {
        if (text.Length > 4096 || text.Contains('\n') || !File.Exists(text)) return false;
        if (text.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) || text.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return true;
        using var stream = File.OpenRead(text);
        Span<byte> magic = stackalloc byte[4];
        return stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8);
    }
}
