using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;

namespace ClockLM.Tokenizers;

/// <summary>
/// Turns ids arriving one at a time (as the sampler commits them) into text, releasing only whole UTF-8 characters:
/// a character spelled over several byte tokens (e.g. an emoji as <c>&lt;0xF0&gt;&lt;0x9F&gt;&lt;0x98&gt;&lt;0x81&gt;</c>)
/// comes out once, when its last byte arrives.
/// </summary>
/// <remarks>The concatenation of everything <see cref="Append"/> and <see cref="Flush"/> return equals
/// <see cref="Tokenizer.Decode"/> of the same ids. Bytes that can never become a character are released as U+FFFD
/// at once. Apart from the returned strings, nothing is allocated per token once the buffer has grown.
/// One instance follows one sequence and is not thread-safe.</remarks>
public sealed class StreamingDetokenizer
{
    private readonly Tokenizer _tokenizer;
    private readonly List<byte> _pending = new(16);
    private int _previous = -1;

    /// <summary>Creates a detokenizer for ids of <paramref name="tokenizer"/>.</summary>
    public StreamingDetokenizer(Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
    }

    /// <summary>Number of bytes held back because they end in an incomplete character.</summary>
    public int PendingByteCount => _pending.Count;

    /// <summary>Adds the next id and returns the text it completes (often the empty string while a multi-byte
    /// character is still being spelled).</summary>
    public string Append(int id)
    {
        _tokenizer.AppendBytes(id, _previous, _pending);
        _previous = id;

        var bytes = CollectionsMarshal.AsSpan(_pending);
        int complete = bytes.Length - IncompleteTailLength(bytes);
        return Take(complete);
    }

    /// <summary>Returns whatever is held back (an unfinished character becomes U+FFFD). The sequence goes on:
    /// the next id still counts the last one as its predecessor.</summary>
    public string Flush() => Take(_pending.Count);

    /// <summary>Drops anything held back and starts a new sequence (the next id counts as the first).</summary>
    public void Reset()
    {
        _pending.Clear();
        _previous = -1;
    }

    private string Take(int count)
    {
        if (count == 0)
            return string.Empty;
        string text = Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(_pending)[..count]);
        _pending.RemoveRange(0, count);
        return text;
    }

    // Length of a trailing, valid-so-far but unfinished UTF-8 sequence (0 to 3 bytes).
    private static int IncompleteTailLength(ReadOnlySpan<byte> bytes)
    {
        // The last character starts at most 3 bytes before the end; find its lead byte.
        for (int back = 1; back <= Math.Min(3, bytes.Length); back++)
        {
            byte b = bytes[^back];
            if ((b & 0xC0) == 0x80)
                continue; // continuation byte: keep looking for the lead
            var status = Rune.DecodeFromUtf8(bytes[^back..], out _, out _);
            return status == OperationStatus.NeedMoreData ? back : 0;
        }
        return 0;
    }
}
