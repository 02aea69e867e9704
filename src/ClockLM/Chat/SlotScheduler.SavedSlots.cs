using System.Runtime.InteropServices;
using ClockLM.Models;

namespace ClockLM.Chat;

/// <summary>Saving, restoring and erasing what an idle slot's KV cache holds (llama.cpp's slot save/restore): a long
/// conversation or system prompt kept on disk and brought back without reading it again.</summary>
public sealed partial class SlotScheduler
{
    private IdentityOf? _identity; // the last fingerprint computed, and its adapters (one reference: read whole)

    private sealed record IdentityOf(LoraAdapters? Lora, byte[] Identity);

    /// <summary>The fingerprint slot files of keys and values computed under <paramref name="lora"/> carry
    /// (<see cref="ModelIdentity"/>: the model file and the adapters' effect).</summary>
    private byte[] Identity(LoraAdapters? lora)
    {
        if (_identity is { } last && Models.LoraAdapters.SameEffect(last.Lora, lora)) return last.Identity;
        byte[] identity = ModelIdentity.Of(_model, lora);
        _identity = new IdentityOf(lora, identity);
        return identity;
    }

    /// <summary>What every slot holds now.</summary>
    public IReadOnlyList<SlotState> SlotStates
    {
        get
        {
            lock (_gate)
                return [.. _slots.Select(s => new SlotState(s.Index, s.Job is not null, s.Transformer.Cache.Length, ContextLength))];
        }
    }

    /// <summary>Writes idle slot <paramref name="id"/>'s cached tokens and their keys and values to <paramref name="destination"/>
    /// (<see cref="SlotFile"/>); returns the tokens and bytes written.</summary>
    /// <exception cref="CompletionRequestException">No such slot.</exception>
    /// <exception cref="SlotBusyException">The slot is running a request.</exception>
    public (int Tokens, long Bytes) SaveSlot(int id, Stream destination) => WithIdleSlot(id, slot =>
    {
        if (!ReferenceEquals(slot.CacheSteering, _options.Steering))
            throw new CompletionRequestException("id_slot", $"slot {id} holds keys and values computed with a request's own steering; only slots of the server's default steering are saved");
        var tokens = CollectionsMarshal.AsSpan(slot.History)[..slot.Transformer.Cache.Length];
        return (tokens.Length, SlotFile.Write(destination, Identity(slot.CacheLora), tokens, slot.Transformer.Cache));
    });

    /// <summary>Replaces idle slot <paramref name="id"/>'s cache by a slot file's (named <paramref name="name"/> in
    /// errors); returns the tokens restored. A request that starts with those tokens then reuses them. The slot is left
    /// empty when the file is refused.</summary>
    /// <exception cref="InvalidDataException">The file is not a slot file of this model that fits the slot.</exception>
    public int RestoreSlot(int id, Stream source, string name) => WithIdleSlot(id, slot =>
    {
        Forget(slot);
        // A slot file holds keys and values of the scales of requests that name none: those it is restored for.
        var lora = _lora ?? _model.Lora;
        int[] tokens = SlotFile.Read(source, name, Identity(lora), slot.Transformer.Cache, _model.Config.VocabSize);
        slot.History.AddRange(tokens);
        slot.Prompt = tokens; // a request that extends them is this conversation's next turn
        slot.CacheSteering = _options.Steering;
        slot.CacheLora = lora;
        lock (_gate) slot.LastUsed = ++_admissions;
        return tokens.Length;
    });

    /// <summary>Forgets idle slot <paramref name="id"/>'s cached tokens; returns how many it held.</summary>
    public int EraseSlot(int id) => WithIdleSlot(id, slot =>
    {
        int held = slot.Transformer.Cache.Length;
        Forget(slot);
        return held;
    });

    private static void Forget(Slot slot)
    {
        slot.Transformer.Cache.Truncate(0);
        slot.History.Clear();
        slot.Prompt = [];
    }

    /// <summary>Runs <paramref name="action"/> on idle slot <paramref name="id"/>, which no request may take meanwhile.</summary>
    private T WithIdleSlot<T>(int id, Func<Slot, T> action)
    {
        Slot slot;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if ((uint)id >= (uint)_slots.Length)
                throw new CompletionRequestException("id_slot", $"there is no slot {id}; this server has slots 0 to {_slots.Length - 1}");
            slot = _slots[id];
            if (slot.Job is not null || slot.Reserved) throw new SlotBusyException(id);
            slot.Reserved = true;
        }
        try
        {
            return action(slot);
        }
        finally
        {
            lock (_gate)
            {
                slot.Reserved = false;
                Monitor.Pulse(_gate);
            }
        }
    }
}

/// <summary>What a slot holds.</summary>
/// <param name="Id">The slot's number.</param>
/// <param name="IsProcessing">True while it runs a request.</param>
/// <param name="CachedTokens">Tokens in its KV cache: those a new request may reuse, or those of the running request.</param>
/// <param name="ContextLength">Positions its KV cache holds.</param>
public sealed record SlotState(int Id, bool IsProcessing, int CachedTokens, int ContextLength);

/// <summary>A slot operation asked of a slot that is running a request.</summary>
public sealed class SlotBusyException(int id) : Exception($"slot {id} is running a request; try again when it has finished")
{
    /// <summary>The slot.</summary>
    public int Id { get; } = id;
}
