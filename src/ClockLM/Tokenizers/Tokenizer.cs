using ClockLM.Gguf;

namespace ClockLM.Tokenizers;

/// <summary>Kinds of vocabulary entries, numbered as GGUF's <c>tokenizer.ggml.token_type</c>.</summary>
public enum TokenKind
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>
/// Turns text into token ids and back. Concrete tokenizers: <see cref="SentencePieceTokenizer"/> (llama.cpp's
/// "llama" vocabulary), <see cref="ByteLevelBpeTokenizer"/> ("gpt2"), <see cref="WordPieceTokenizer"/> ("bert").
/// </summary>
public abstract class Tokenizer
{
    /// <summary>Number of entries in the vocabulary.</summary>
    public abstract int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, or -1.</summary>
    public int BosId { get; init; } = -1;

    /// <summary>End-of-sequence id, or -1.</summary>
    public int EosId { get; init; } = -1;

    /// <summary>Whether <see cref="Encode"/> with addSpecial puts BOS first.</summary>
    public bool AddBos { get; init; }

    /// <summary>Whether <see cref="Encode"/> with addSpecial puts EOS last.</summary>
    public bool AddEos { get; init; }

    private readonly IReadOnlySet<int>? _endOfGeneration;

    /// <summary>Ids whose generation ends the text: EOS, and for GGUF vocabularies also EOT/EOM and the end-of-turn
    /// spellings llama.cpp recognises (e.g. <c>&lt;|im_end|&gt;</c>, <c>&lt;|end|&gt;</c>).</summary>
    public IReadOnlySet<int> EndOfGenerationIds
    {
        get => _endOfGeneration ?? (EosId >= 0 ? new HashSet<int> { EosId } : new HashSet<int>());
        init => _endOfGeneration = value;
    }

    /// <summary>True when generating <paramref name="id"/> ends the text: one of <see cref="EndOfGenerationIds"/>
    /// (or BOS too, for llama2.c's tokenizer, as run.c stops there).</summary>
    public virtual bool IsEndOfGeneration(int id) => _endOfGeneration?.Contains(id) ?? id == EosId;

    /// <summary>What loading fell back on (e.g. a special-token id outside the vocabulary), one line each; empty when
    /// the file was read as written.</summary>
    public IReadOnlyList<string> LoadWarnings { get; init; } = [];

    /// <summary>The vocabulary entry's text as stored in the model file (e.g. <c>▁the</c>, <c>&lt;0x0A&gt;</c>).</summary>
    public abstract string GetPiece(int id);

    /// <summary>The entry's kind.</summary>
    public abstract TokenKind GetKind(int id);

    /// <summary>Text to ids. <paramref name="addSpecial"/> adds BOS/EOS as the model asks;
    /// <paramref name="parseSpecial"/> lets control tokens written in the text (e.g. <c>&lt;s&gt;</c>) become their id.</summary>
    public abstract List<int> Encode(string text, bool addSpecial = true, bool parseSpecial = false);

    /// <summary>Appends the bytes token <paramref name="id"/> contributes to output text.
    /// <paramref name="previous"/> is the token before it (-1 at the start), for rules such as
    /// SentencePiece's dropping of the leading space after BOS.</summary>
    public abstract void AppendBytes(int id, int previous, List<byte> output);

    /// <summary>Ids to text (invalid UTF-8 is replaced with U+FFFD).</summary>
    public string Decode(IEnumerable<int> ids)
    {
        var bytes = new List<byte>();
        int previous = -1;
        foreach (int id in ids)
        {
            AppendBytes(id, previous, bytes);
            previous = id;
        }
        return System.Text.Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Builds the tokenizer a GGUF file describes (<c>tokenizer.ggml.*</c> keys).</summary>
    public static Tokenizer Load(GgufFile file)
    {
        string model = file.GetString("tokenizer.ggml.model");
        return model switch
        {
            "llama" => SentencePieceTokenizer.FromGguf(file),
            "gpt2" => ByteLevelBpeTokenizer.FromGguf(file),
            "bert" => WordPieceTokenizer.FromGguf(file),
            _ => throw new GgufFormatException(file.Path, $"tokenizer.ggml.model is '{model}'; ClockLM supports 'llama', 'gpt2' and 'bert'"),
        };
    }
}
