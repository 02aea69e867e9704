using System.CommandLine;
using System.Text.Json.Nodes;
using ClockLM.Chat;
using ClockLM.Chat.Tools;
using ClockLM.Sampling;
using ClockLM.Sampling.Grammars;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Cli;

/// <summary>`clocklm chat`: a terminal conversation with the model, streamed, using its chat template.</summary>
internal static class ChatCommand
{
    private const string Help = "commands: /system TEXT sets the system prompt, /reset clears the history, /result TEXT answers the model's tool call, /exit quits; Ctrl+C stops an answer";

    public static Command Create()
    {
        var model = new ModelOptions();
        var steering = new SteeringOptions();
        var maxNew = new Option<int>("-n", "--max-new-tokens") { Description = "Most tokens per answer", DefaultValueFactory = _ => 256 };
        var temp = new Option<float>("--temp") { Description = "Temperature; 0 is greedy", DefaultValueFactory = _ => 0.8f };
        var seed = new Option<ulong>("--seed", "-s") { Description = "Random seed", DefaultValueFactory = _ => 0x5EEDUL };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context length (default: the model's)" };
        var system = new Option<string?>("--system") { Description = "System prompt" };
        var toolsFile = new Option<string?>("--tools") { Description = "JSON file of tools the model may call (OpenAI's tools array); calls are shown, /result answers them" };
        var toolChoice = new Option<string>("--tool-choice") { Description = "With --tools: auto, required, none, or a function name to force", DefaultValueFactory = _ => "auto" };

        var cacheTypes = new CacheTypeOptions();
        var contextShift = new Option<bool>("--context-shift") { Description = "When an answer fills the context, drop half of it (after the system prompt) and go on" };

        var command = new Command("chat", "Chat with a model in the terminal");
        model.AddTo(command);
        steering.AddTo(command);
        foreach (var o in new Option[] { maxNew, temp, seed, ctx, system, toolsFile, toolChoice, contextShift })
            command.Options.Add(o);
        cacheTypes.AddTo(command);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int n = result.GetValue(maxNew);
            if (n < 1) throw new UsageException($"-n is {n}, expected 1 or more");
            int? contextLength = result.GetValue(ctx);
            if (contextLength is <= 0) throw new UsageException($"--ctx is {contextLength}, expected a positive number");
            var sampler = new SamplerOptions { Temperature = result.GetValue(temp), Seed = result.GetValue(seed) };
            if (sampler.Validate() is { } problem) throw new UsageException(problem);

            ToolOptions? tools = null;
            if (result.GetValue(toolsFile) is { } path)
            {
                List<ToolDefinition> list;
                try { list = ToolDefinition.ParseList(File.ReadAllText(path)); }
                catch (ArgumentException e) { throw new UsageException($"{path}: {e.Message}"); }
                string choice = result.GetValue(toolChoice)!;
                tools = choice switch
                {
                    "auto" => new ToolOptions(list),
                    "none" => new ToolOptions(list, ToolChoiceMode.None),
                    "required" => new ToolOptions(list, ToolChoiceMode.Required),
                    _ when list.Any(t => t.Name == choice) => new ToolOptions(list, ToolChoiceMode.Named, choice),
                    _ => throw new UsageException($"--tool-choice is '{choice}'; expected auto, required, none or one of {string.Join(", ", list.Select(t => t.Name))}"),
                };
            }
            else if (result.GetValue(toolChoice) != "auto") throw new UsageException("--tool-choice needs --tools");

            var cache = cacheTypes.Read(result);
            bool shift = result.GetValue(contextShift);
            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            ModelOptions.WarnAboveTrainedContext(m, contextLength);
            if (shift && m.Config.Rope == ClockLM.Models.RopeStyle.None)
                throw new UsageException($"--context-shift: {Path.GetFileName(m.Path)} has learned absolute positions, not RoPE, so its context cannot shift");
            using var scheduler = new SlotScheduler(m, new SlotSchedulerOptions
            {
                Slots = 1, ContextLength = contextLength, Pool = pool, Steering = steering.Build(result, m), KvCache = cache, ContextShift = shift,
                Logger = new StderrLogger(Microsoft.Extensions.Logging.LogLevel.Warning),
            });
            var prompt = new ChatPrompt(m);
            var stdout = Console.Out;
            var offered = tools is { Mode: not ToolChoiceMode.None } ? tools : null;
            Grammar? forced = null;
            if (offered is { Mode: ToolChoiceMode.Required or ToolChoiceMode.Named })
            {
                try { forced = Grammar.Parse(prompt.ToolFormat.Gbnf(offered.Callable, offered.Parallel)); }
                catch (JsonSchemaException e) { throw new UsageException($"{result.GetValue(toolsFile)}: {e.Message}"); }
            }

            // Ctrl+C cancels the answer being written; at the prompt it does nothing (EOF or /exit quits).
            CancellationTokenSource? answering = null;
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                answering?.Cancel();
            };

            string? systemPrompt = result.GetValue(system);
            var history = new List<TemplateMessage>();
            int turn = 0;
            Console.Error.WriteLine(Help);
            while (true)
            {
                stdout.Write("> ");
                stdout.Flush();
                string? line = Console.In.ReadLine();
                if (line is null || line.Trim() == "/exit") break;
                line = line.Trim();
                if (line.Length == 0) continue;
                if (line == "/reset")
                {
                    history.Clear();
                    stdout.WriteLine("[history cleared]");
                    continue;
                }
                if (line == "/system" || line.StartsWith("/system ", StringComparison.Ordinal))
                {
                    systemPrompt = line["/system".Length..].Trim();
                    if (systemPrompt.Length == 0) systemPrompt = null;
                    stdout.WriteLine(systemPrompt is null ? "[system prompt cleared]" : "[system prompt set]");
                    continue;
                }
                if (line == "/result" || line.StartsWith("/result ", StringComparison.Ordinal))
                {
                    // Answers the oldest call of the last assistant turn that has no result yet.
                    var lastCalls = history.LastOrDefault(h => h.Role == "assistant")?.ToolCalls ?? [];
                    var answered = history.SkipWhile(h => h.ToolCalls != lastCalls).Where(h => h.Role == "tool").Select(h => h.ToolCallId).ToHashSet();
                    var open = lastCalls.FirstOrDefault(c => !answered.Contains(c.Id));
                    if (open is null)
                    {
                        stdout.WriteLine("[no tool call is waiting for a result]");
                        continue;
                    }
                    history.Add(new TemplateMessage("tool", line["/result".Length..].Trim()) { ToolCallId = open.Id, Name = open.Name });
                    if (lastCalls.Any(c => c != open && !answered.Contains(c.Id))) continue; // more results to give first
                }
                else if (line.StartsWith('/'))
                {
                    stdout.WriteLine($"[unknown command {line.Split(' ')[0]}; {Help}]");
                    continue;
                }
                else
                    history.Add(new TemplateMessage("user", line));
                var conversation = systemPrompt is null ? history : [new TemplateMessage("system", systemPrompt), .. history];
                int[] ids = prompt.Encode(conversation, offered?.Tools);
                int room = scheduler.ContextLength - ids.Length;
                if (room < 1)
                {
                    history.RemoveAt(history.Count - 1);
                    stdout.WriteLine($"[the conversation is {ids.Length} tokens and fills the context of {scheduler.ContextLength}; /reset to start again]");
                    continue;
                }
                answering = new CancellationTokenSource();
                var job = scheduler.Submit(new CompletionRequest
                {
                    PromptIds = ids,
                    // With a context shift the answer may outgrow the context; the shift keeps the system prompt.
                    MaxTokens = shift ? n : Math.Min(n, room),
                    KeepTokens = prompt.SystemPromptTokens(conversation, ids),
                    // Each turn its own seed, so a repeated question need not get the same answer.
                    Sampler = sampler with { Seed = sampler.Seed + (ulong)turn++ },
                    Stop = prompt.TemplateStops,
                    // A forced call is constrained on the first answer of a turn; after its results the model answers freely.
                    Grammar = history[^1].Role == "tool" ? null : forced,
                }, answering.Token);
                var parser = offered is null ? null : new ToolCallParser(prompt.ToolFormat);
                void Show(IEnumerable<ToolStreamEvent> events)
                {
                    foreach (var e in events)
                    {
                        if (e is ContentEvent c) stdout.Write(c.Text);
                        else if (e is ToolCallEvent call) stdout.Write($"\n[tool call {call.Call.Id}: {call.Call.Name}({call.Call.Arguments})]");
                    }
                    stdout.Flush();
                }
                var reading = Task.Run(async () =>
                {
                    await foreach (var update in job.Updates.ReadAllAsync())
                    {
                        if (parser is not null) Show(parser.Append(update, m.Tokenizer));
                        else stdout.Write(update.Text);
                        stdout.Flush();
                    }
                });
                reading.GetAwaiter().GetResult();
                var answer = job.Result.GetAwaiter().GetResult();
                answering = null; // not disposed: a Ctrl+C racing with the end of the answer may still cancel it
                if (parser is not null) Show(parser.Finish());
                if (answer.Finish == FinishReason.Cancelled) stdout.Write(" [stopped]");
                stdout.WriteLine();
                if (parser is { Calls.Count: > 0 })
                {
                    var calls = parser.Calls.Take(offered!.Parallel ? int.MaxValue : 1)
                        .Select(c => new ClockLM.Tokenizers.ChatTemplates.ChatToolCall(c.Name, ArgumentsValue(c.Arguments), c.Id)).ToList();
                    history.Add(new TemplateMessage("assistant", parser.Content.Trim()) { ToolCalls = calls });
                    stdout.WriteLine($"[{calls.Count} tool call{(calls.Count == 1 ? "" : "s")} waiting: /result TEXT gives each its result]");
                }
                else
                    history.Add(new TemplateMessage("assistant", answer.Text));
            }
            return 0;
        }));
        return command;
    }

    /// <summary>Arguments as a JSON node for the template, or the raw text when the model wrote something else.</summary>
    private static object ArgumentsValue(string arguments)
    {
        try { return JsonNode.Parse(arguments) ?? (object)arguments; }
        catch (System.Text.Json.JsonException) { return arguments; }
    }
}
