using System.Runtime.InteropServices;
using ClockLM.Models;

namespace ClockLM.Chat;

/// <remarks>
/// A slot keeps its KV cache when its request ends: the next request that starts with the same tokens (the next turn of
/// a conversation, the same system prompt) takes that prefix's keys and values and evaluates only the rest
/// (<see cref="CompletionRequest.CachePrompt"/>). A waiting request goes to the idle slot whose cached tokens share the
/// longest prefix with its prompt, counting only slots whose last prompt it extends (the next turn of the conversation
/// held there) or that would keep at least half of what they hold: a new conversation that shares a template header
/// with another one's long history does not overwrite it. Ties, and prompts no slot matches, go to the slot least
/// recently used. Every row of the forward pass gives the same bits whichever batch it ran in, and attention reads the
/// cache as stored whatever its type, so an answer is bit-identical with the cache on and off. A request rolls the
/// cache back to its reused prefix (<see cref="KvCache.Truncate"/>). Not offered: entries a context shift moved (only
/// the kept tokens stay) and entries computed under other steering or other LoRA scales.
/// </remarks>
public sealed partial class SlotScheduler
{
    /// <summary>
    /// The idle slot for <paramref name="job"/>'s prompt, or null when every slot is busy: the one whose cached tokens share the
    /// longest prefix with it, among slots whose last prompt it extends or that would keep at least half of their cache;
    /// otherwise, and among equals, the least recently used (slots never used first).
    /// </summary>
    private Slot? ChooseSlot(CompletionJob job)
    {
        int[] prompt = job.Request.PromptIds;
        var steering = job.Request.Steering ?? _options.Steering;
        var lora = job.Lora ?? _model.Lora;
        Slot? best = null, leastRecent = null;
        int bestPrefix = 0;
        foreach (var slot in _slots)
        {
            if (slot.Job is not null || slot.Reserved) continue;
            if (leastRecent is null || slot.LastUsed < leastRecent.LastUsed) leastRecent = slot;
            int prefix = CommonPrefix(slot, prompt, steering, lora);
            bool extendsLastPrompt = prefix >= slot.Prompt.Length; // its reply's tokens may differ once sent back as text
            if (prefix == 0 || !(extendsLastPrompt || 2 * prefix >= slot.Transformer.Cache.Length)) continue;
            if (best is null || prefix > bestPrefix || (prefix == bestPrefix && slot.LastUsed < best.LastUsed))
                (best, bestPrefix) = (slot, prefix);
        }
        return best ?? leastRecent;
    }

    /// <summary>How many leading tokens of <paramref name="prompt"/> the idle cache holds (<see cref="KvCache.Length"/>
    /// positions of the slot's History's tokens), for a request run with <paramref name="steering"/> and
    /// <paramref name="lora"/>: none when the cache was computed with other steering or adapters that change the
    /// model otherwise (other scales: <see cref="Models.LoraAdapters.SameEffect"/>).</summary>
    private static int CommonPrefix(Slot slot, int[] prompt, ResidualSteering? steering, LoraAdapters? lora)
    {
        if (!ReferenceEquals(steering, slot.CacheSteering) || !Models.LoraAdapters.SameEffect(lora, slot.CacheLora)) return 0;
        int n = Math.Min(slot.Transformer.Cache.Length, prompt.Length);
        return CollectionsMarshal.AsSpan(slot.History)[..n].CommonPrefixLength(prompt.AsSpan(0, n));
    }
}
