using System.CommandLine;
using ClockLM.Chat;
using ClockLM.Sampling;
using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Cli;

/// <summary>`clocklm chat`: a terminal conversation with the model, streamed, using its chat template.</summary>
internal static class ChatCommand
{
    private const string Help = "commands: /system TEXT sets the system prompt, /reset clears the history, /exit quits; Ctrl+C stops an answer";

    public static Command Create()
    {
        var model = new ModelOptions();
        var maxNew = new Option<int>("-n", "--max-new-tokens") { Description = "Most tokens per answer", DefaultValueFactory = _ => 256 };
        var temp = new Option<float>("--temp") { Description = "Temperature; 0 is greedy", DefaultValueFactory = _ => 0.8f };
        var seed = new Option<ulong>("--seed", "-s") { Description = "Random seed", DefaultValueFactory = _ => 0x5EEDUL };
        var ctx = new Option<int?>("--ctx", "-c") { Description = "Context length (default: the model's)" };
        var system = new Option<string?>("--system") { Description = "System prompt" };

        var command = new Command("chat", "Chat with a model in the terminal");
        model.AddTo(command);
        foreach (var o in new Option[] { maxNew, temp, seed, ctx, system })
            command.Options.Add(o);
        command.SetAction(result => CommandErrors.Run(() =>
        {
            int n = result.GetValue(maxNew);
            if (n < 1) throw new UsageException($"-n is {n}, expected 1 or more");
            int? contextLength = result.GetValue(ctx);
            if (contextLength is <= 0) throw new UsageException($"--ctx is {contextLength}, expected a positive number");
            var sampler = new SamplerOptions { Temperature = result.GetValue(temp), Seed = result.GetValue(seed) };
            if (sampler.Validate() is { } problem) throw new UsageException(problem);

            using var pool = model.CreatePool(result);
            using var m = model.Load(result);
            ModelOptions.WarnAboveTrainedContext(m, contextLength);
            using var scheduler = new SlotScheduler(m, new SlotSchedulerOptions { Slots = 1, ContextLength = contextLength, Pool = pool });
            var prompt = new ChatPrompt(m);
            var stdout = Console.Out;

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
                if (line.StartsWith('/'))
                {
                    stdout.WriteLine($"[unknown command {line.Split(' ')[0]}; {Help}]");
                    continue;
                }

                history.Add(new TemplateMessage("user", line));
                var conversation = systemPrompt is null ? history : [new TemplateMessage("system", systemPrompt), .. history];
                int[] ids = prompt.Encode(conversation);
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
                    MaxTokens = Math.Min(n, room),
                    // Each turn its own seed, so a repeated question need not get the same answer.
                    Sampler = sampler with { Seed = sampler.Seed + (ulong)turn++ },
                    Stop = prompt.TemplateStops,
                }, answering.Token);
                var reading = Task.Run(async () =>
                {
                    await foreach (var update in job.Updates.ReadAllAsync())
                    {
                        stdout.Write(update.Text);
                        stdout.Flush();
                    }
                });
                reading.GetAwaiter().GetResult();
                var answer = job.Result.GetAwaiter().GetResult();
                answering = null; // not disposed: a Ctrl+C racing with the end of the answer may still cancel it
                if (answer.Finish == FinishReason.Cancelled) stdout.Write(" [stopped]");
                stdout.WriteLine();
                history.Add(new TemplateMessage("assistant", answer.Text));
            }
            return 0;
        }));
        return command;
    }
}
