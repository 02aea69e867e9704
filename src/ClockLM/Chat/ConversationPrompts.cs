using TemplateMessage = ClockLM.Tokenizers.ChatTemplates.ChatMessage;

namespace ClockLM.Chat;

/// <summary>How a chat turn's prompt relates to the previous turn of its conversation.</summary>
public enum TurnPrompt
{
    /// <summary>No earlier turn of this conversation is remembered: the first turn, or one whose history was edited.</summary>
    New,
    /// <summary>The prompt starts with the previous turn's prompt: a slot that holds it evaluates only the new part.</summary>
    Extends,
    /// <summary>The conversation only grew, but the template rendered its earlier turns differently (a date, a turn count,
    /// an answer's reasoning dropped), so the prompt is read again from where it differs.</summary>
    Rewritten,
}

/// <summary>
/// The rendered prompts of recent chat turns, to tell whether each new turn extends its conversation's previous prompt
/// — then the slot scheduler reuses the cached tokens and evaluates only the new messages — or the template rewrote an
/// earlier turn, which costs a re-read of the conversation. A turn belongs to the conversation whose remembered messages
/// are a strict prefix of its own. Rewrites are counted (<see cref="Rewritten"/>).
/// </summary>
public sealed class ConversationPrompts
{
    private readonly int _capacity;
    private readonly LinkedList<(TemplateMessage[] Messages, int[] Prompt)> _turns = new(); // most recent first
    private readonly object _gate = new();
    private long _extended, _rewritten;

    /// <summary>Remembers the last turn of up to <paramref name="capacity"/> conversations (the oldest is forgotten first).</summary>
    public ConversationPrompts(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>Turns whose prompt extended their conversation's previous prompt.</summary>
    public long Extended => Interlocked.Read(ref _extended);

    /// <summary>Turns whose conversation only grew but whose prompt no longer starts with the previous one: re-reads.</summary>
    public long Rewritten => Interlocked.Read(ref _rewritten);

    /// <summary>Classifies the turn of <paramref name="messages"/>, rendered as <paramref name="prompt"/>, and remembers it
    /// as its conversation's last turn.</summary>
    public TurnPrompt Add(IReadOnlyList<TemplateMessage> messages, int[] prompt)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(prompt);
        lock (_gate)
        {
            LinkedListNode<(TemplateMessage[] Messages, int[] Prompt)>? previous = null;
            for (var node = _turns.First; node is not null; node = node.Next)
                if (IsStrictPrefix(node.Value.Messages, messages) && (previous is null || node.Value.Messages.Length > previous.Value.Messages.Length))
                    previous = node;
            var kind = TurnPrompt.New;
            if (previous is not null)
            {
                kind = prompt.AsSpan().StartsWith(previous.Value.Prompt) ? TurnPrompt.Extends : TurnPrompt.Rewritten;
                _turns.Remove(previous);
            }
            if (kind == TurnPrompt.Extends) _extended++;
            if (kind == TurnPrompt.Rewritten) _rewritten++;
            _turns.AddFirst(([.. messages], prompt));
            while (_turns.Count > _capacity) _turns.RemoveLast();
            return kind;
        }
    }

    private static bool IsStrictPrefix(TemplateMessage[] earlier, IReadOnlyList<TemplateMessage> messages)
    {
        if (earlier.Length >= messages.Count) return false;
        for (int i = 0; i < earlier.Length; i++)
            if (earlier[i] != messages[i]) return false;
        return true;
    }
}
