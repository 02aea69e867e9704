using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace ClockLM.Generation;

/// <summary>
/// llama-perplexity's <c>--kl-divergence-base</c> file, read and written the same way, so that a base made by either
/// engine serves both: "_logits_", then little-endian int32 context n, vocabulary size, chunk count and the chunks'
/// tokens (chunks × n), then per chunk, per scored token (n - 1 - n/2 of them), a row of nv = 2⌈vocab / 2⌉ + 4
/// 16-bit words: two floats, scale s and m (the lowest log-probability kept), then every token's log-probability as
/// an integer q with log p ≈ s · q + m. Log-probabilities more than 16 below the largest are clamped to it (q = 0).
/// </summary>
public static class LogProbabilityFile
{
    /// <summary>The file's first bytes.</summary>
    public static ReadOnlySpan<byte> Magic => "_logits_"u8;

    /// <summary>Words per token row for a vocabulary of <paramref name="vocab"/>.</summary>
    public static int RowWords(int vocab) => 2 * ((vocab + 1) / 2) + 4;

    /// <summary>Tokens scored per chunk of <paramref name="context"/>.</summary>
    public static int ScoredPerChunk(int context) => context - 1 - context / 2;

    /// <summary>Bytes of a file of <paramref name="chunks"/> chunks.</summary>
    public static long Bytes(int context, int vocab, int chunks) =>
        8 + 12 + 4L * chunks * context + (long)chunks * ScoredPerChunk(context) * RowWords(vocab) * 2;

    /// <summary>
    /// Encodes one token's logits as a row (<see cref="RowWords"/> words) and returns the token's negative
    /// log-likelihood as llama-perplexity computes it while writing a base: max + log Σ e^(l - max) - l[token], the sum
    /// in double, the rest in float.
    /// </summary>
    public static double Encode(ReadOnlySpan<float> logits, int token, Span<ushort> row)
    {
        float max = logits[0], min = logits[0];
        for (int i = 1; i < logits.Length; i++)
        {
            max = MathF.Max(max, logits[i]);
            min = MathF.Min(min, logits[i]);
        }
        min = MathF.Max(min, max - 16);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += MathF.Exp(logits[i] - max);
        float logSum = (float)Math.Log(sum);
        float minLogProb = min - max - logSum;
        float scale = (max - min) / 65535f;
        var head = MemoryMarshal.Cast<ushort, float>(row[..4]);
        head[0] = scale;
        head[1] = minLogProb;
        var q = row[4..];
        q.Clear();
        if (scale != 0)
        {
            float inverse = 1 / scale;
            for (int i = 0; i < logits.Length; i++)
                q[i] = logits[i] > min ? (ushort)MathF.Round(inverse * (logits[i] - min), MidpointRounding.ToEven) : (ushort)0;
        }
        return max + logSum - logits[token];
    }

    /// <summary>The log-probability of token <paramref name="i"/> in an encoded row.</summary>
    public static float LogProbability(ReadOnlySpan<ushort> row, int i)
    {
        var head = MemoryMarshal.Cast<ushort, float>(row[..4]);
        return head[0] * row[4 + i] + head[1];
    }
}

/// <summary>Writes a <see cref="LogProbabilityFile"/> while <see cref="Perplexity"/> scores a text; complete only after the
/// last chunk (a file cut short by an error is deleted by the caller).</summary>
public sealed class LogProbabilityWriter(Stream stream) : IDisposable
{
    private ushort[] _rows = [];
    private int _vocab, _rowWords, _row;

    /// <summary>Writes the header: context, vocabulary, chunk count and the chunks' tokens.</summary>
    public void Begin(int context, int vocab, int chunks, ReadOnlySpan<int> tokens)
    {
        stream.Write(LogProbabilityFile.Magic);
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(header, context);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], vocab);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], chunks);
        stream.Write(header);
        stream.Write(MemoryMarshal.AsBytes(tokens));
        (_vocab, _rowWords, _row) = (vocab, LogProbabilityFile.RowWords(vocab), 0);
        _rows = new ushort[LogProbabilityFile.ScoredPerChunk(context) * _rowWords];
    }

    /// <summary>Encodes the next scored token's logits; returns its negative log-likelihood.</summary>
    public double Append(ReadOnlySpan<float> logits, int token) =>
        LogProbabilityFile.Encode(logits[.._vocab], token, _rows.AsSpan(_row++ * _rowWords, _rowWords));

    /// <summary>Writes the chunk's rows.</summary>
    public void EndChunk()
    {
        stream.Write(MemoryMarshal.AsBytes(_rows.AsSpan(0, _row * _rowWords)));
        _row = 0;
    }

    public void Dispose() => stream.Dispose();
}

/// <summary>Reads a <see cref="LogProbabilityFile"/>: the header and tokens at once (after checking that the file's length
/// is exactly what they promise), then the rows chunk by chunk.</summary>
public sealed class LogProbabilityReader : IDisposable
{
    private readonly Stream _stream;
    private readonly string _path;

    private LogProbabilityReader(string path, Stream stream, int context, int vocab, int chunks, int[] tokens)
    {
        (_path, _stream, Context, VocabSize, Chunks, Tokens) = (path, stream, context, vocab, chunks, tokens);
    }

    /// <summary>Tokens per chunk.</summary>
    public int Context { get; }

    /// <summary>The vocabulary the log-probabilities cover.</summary>
    public int VocabSize { get; }

    /// <summary>Chunks in the file.</summary>
    public int Chunks { get; }

    /// <summary>The chunks' tokens (chunks × context).</summary>
    public int[] Tokens { get; }

    /// <summary>Opens <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">Not such a file, or one whose fields or length do not fit; the message
    /// names the file, the field, its value and what was expected.</exception>
    public static LogProbabilityReader Open(string path)
    {
        var stream = File.OpenRead(path);
        try
        {
            Span<byte> header = stackalloc byte[20];
            if (stream.ReadAtLeast(header, 20, throwOnEndOfStream: false) < 20 || !header[..8].SequenceEqual(LogProbabilityFile.Magic))
                throw new InvalidDataException($"{path}: not a KL-divergence base (it does not start with \"_logits_\")");
            int context = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
            int vocab = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
            int chunks = BinaryPrimitives.ReadInt32LittleEndian(header[16..]);
            if (context < 4) throw new InvalidDataException($"{path}: context is {context}, expected 4 or more");
            if (vocab < 1) throw new InvalidDataException($"{path}: vocabulary size is {vocab}, expected 1 or more");
            if (chunks < 1) throw new InvalidDataException($"{path}: chunk count is {chunks}, expected 1 or more");
            long expected = LogProbabilityFile.Bytes(context, vocab, chunks);
            if (stream.Length != expected)
                throw new InvalidDataException($"{path}: {stream.Length} bytes, but a context of {context}, {vocab} tokens and {chunks} chunks take {expected}");
            var tokens = new int[checked(chunks * context)];
            stream.ReadExactly(MemoryMarshal.AsBytes(tokens.AsSpan()));
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("KL-divergence bases are little-endian");
            return new LogProbabilityReader(path, stream, context, vocab, chunks, tokens);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Reads the next chunk's rows (<see cref="LogProbabilityFile.ScoredPerChunk"/> × <see cref="LogProbabilityFile.RowWords"/>).</summary>
    public void ReadChunk(Span<ushort> rows)
    {
        try
        {
            _stream.ReadExactly(MemoryMarshal.AsBytes(rows));
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException($"{_path}: ends before its last chunk");
        }
    }

    public void Dispose() => _stream.Dispose();
}
