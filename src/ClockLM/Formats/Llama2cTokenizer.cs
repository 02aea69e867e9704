using System.Buffers.Binary;
using System.Text;
using ClockLM.Tokenizers;

namespace ClockLM.Formats;

/// <summary>
/// Reads the tokenizer file of llama2.c (<c>tokenizer.bin</c>, <c>tok512.bin</c>, ...) into a
/// <see cref="SentencePieceTokenizer"/> with the vocabulary llama.cpp would see for the same model in GGUF.
/// </summary>
/// <remarks>
/// Layout, little-endian: <c>int32 max_token_length</c>, then for each of the model's <c>vocab_size</c> tokens
/// <c>float32 score, int32 byte_length, byte_length bytes of UTF-8</c>. The count is not in the file; it comes from
/// the checkpoint header. llama2.c's exporter writes '▁' as a real space and BOS/EOS as <c>"\n&lt;s&gt;\n"</c> and
/// <c>"\n&lt;/s&gt;\n"</c>; both are turned back into SentencePiece's spelling here. Generation ends at EOS and,
/// as in llama2.c's run.c, also at BOS, which these models produce to start the next story.
/// </remarks>
public static class Llama2cTokenizer
{
    /// <summary>Id of <c>&lt;unk&gt;</c> in llama2.c vocabularies.</summary>
    public const int UnknownId = 0;

    /// <summary>Id of <c>&lt;s&gt;</c> (BOS) in llama2.c vocabularies.</summary>
    public const int BosId = 1;

    /// <summary>Id of <c>&lt;/s&gt;</c> (EOS) in llama2.c vocabularies.</summary>
    public const int EosId = 2;

    /// <summary>Loads <paramref name="path"/> holding <paramref name="vocabSize"/> tokens.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="ModelFormatException">The file is truncated or its contents are impossible; the message names
    /// the file, the token and what is wrong.</exception>
    public static SentencePieceTokenizer Load(string path, int vocabSize)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: no such file", path);
        return Read(path, File.ReadAllBytes(path), vocabSize);
    }

    /// <summary>Reads a tokenizer file already in memory; <paramref name="path"/> only names it in errors.</summary>
    public static SentencePieceTokenizer Read(string path, ReadOnlySpan<byte> data, int vocabSize)
    {
        if (vocabSize < 3)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "a llama2.c vocabulary has at least <unk>, <s> and </s>");

        if (data.Length < 4)
            throw Error(path, $"file is {data.Length} bytes, too short for the max_token_length header (4 bytes)");
        int maxTokenLength = BinaryPrimitives.ReadInt32LittleEndian(data);
        if (maxTokenLength <= 0)
            throw Error(path, $"max_token_length is {maxTokenLength}, expected a positive number");

        var pieces = new string[vocabSize];
        var scores = new float[vocabSize];
        var kinds = new TokenKind[vocabSize];
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        int pos = 4;
        for (int id = 0; id < vocabSize; id++)
        {
            if (data.Length - pos < 8)
                throw Error(path, $"file ends at byte {data.Length} inside the header of token {id}; the model's vocabulary has {vocabSize} tokens (wrong tokenizer for this model, or a truncated file)");
            scores[id] = BinaryPrimitives.ReadSingleLittleEndian(data[pos..]);
            int length = BinaryPrimitives.ReadInt32LittleEndian(data[(pos + 4)..]);
            pos += 8;
            if (float.IsNaN(scores[id]))
                throw Error(path, $"token {id} has score NaN");
            if (length < 0 || length > maxTokenLength)
                throw Error(path, $"token {id} at byte {pos - 4} has length {length}, expected 0 to max_token_length {maxTokenLength}");
            if (data.Length - pos < length)
                throw Error(path, $"token {id} needs {length} bytes at byte {pos} but the file ends at byte {data.Length} (truncated)");
            string text;
            try
            {
                text = strict.GetString(data.Slice(pos, length));
            }
            catch (DecoderFallbackException)
            {
                throw Error(path, $"token {id} at byte {pos} is not valid UTF-8");
            }
            pos += length;

            (pieces[id], kinds[id]) = id switch
            {
                UnknownId => (text, TokenKind.Unknown),
                BosId => (text.Trim('\n'), TokenKind.Control),
                EosId => (text.Trim('\n'), TokenKind.Control),
                _ => IsBytePiece(text) ? (text, TokenKind.Byte) : (text.Replace(' ', SentencePieceTokenizer.SpaceMarker), TokenKind.Normal),
            };
        }

        return new SentencePieceTokenizer(pieces, scores, kinds, BosId, EosId, UnknownId, paddingId: -1,
            addBos: true, addEos: false, addSpacePrefix: true, endOfGeneration: [BosId, EosId]);
    }

    private static bool IsBytePiece(string text) =>
        text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text[5] == '>'
        && Uri.IsHexDigit(text[3]) && Uri.IsHexDigit(text[4]);

    private static ModelFormatException Error(string path, string problem) => new(path, $"llama2.c tokenizer: {problem}");
}
