using System.Text;
using ClockLM.Gguf;
using ClockLM.Tokenizers.PreTokenizers;

namespace ClockLM.Tokenizers;

/// <summary>
/// WordPiece (GGUF <c>tokenizer.ggml.model = "bert"</c>), tokenizing exactly as llama.cpp's WPM tokenizer does.
/// <para>Text is normalised code point by code point: each is replaced by the first code point of its canonical
/// decomposition (which strips accents), lower-cased, and dropped when it is a combining mark or a control, format
/// or unassigned character. Words end at white space; punctuation, ASCII symbols and CJK ideographs are words of their own.
/// Each word is then cut greedily, longest vocabulary entry first. llama.cpp's GGUF BERT vocabularies mark a
/// word start with "▁" (<c>▁play</c>) and store continuations bare (<c>ing</c>, HuggingFace's <c>##ing</c>),
/// so the search runs over "▁" + word. A word that cannot be covered becomes [UNK].</para>
/// </summary>
public sealed class WordPieceTokenizer : Tokenizer
{
    private const char WordStart = '\u2581';

    private readonly string[] _pieces;
    private readonly TokenKind[] _kinds;
    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _idsBySpan;
    private readonly int _maxPieceLength;
    private readonly SpecialTokenSplitter _specials;

    private WordPieceTokenizer(string[] pieces, TokenKind[] kinds)
    {
        _pieces = pieces;
        _kinds = kinds;
        _ids = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        for (int id = 0; id < pieces.Length; id++)
        {
            _ids[pieces[id]] = id;
            _maxPieceLength = Math.Max(_maxPieceLength, pieces[id].Length);
        }
        _idsBySpan = _ids.GetAlternateLookup<ReadOnlySpan<char>>();
        _specials = new SpecialTokenSplitter(pieces, kinds);
    }

    /// <summary>[UNK], given to words the vocabulary cannot cover.</summary>
    public int UnknownId { get; private init; }

    /// <summary>[SEP], appended by <see cref="Encode"/> when addSpecial is true (BOS, [CLS], is put first).</summary>
    public int SeparatorId { get; private init; }

    /// <summary>[PAD], or -1.</summary>
    public int PaddingId { get; private init; }

    /// <summary>[MASK], or -1.</summary>
    public int MaskId { get; private init; }

    /// <inheritdoc/>
    public override int VocabSize => _pieces.Length;

    /// <summary>Reads the vocabulary from a GGUF file whose <c>tokenizer.ggml.model</c> is "bert".</summary>
    /// <exception cref="GgufFormatException">The tokenizer keys are missing or inconsistent.</exception>
    public static WordPieceTokenizer FromGguf(GgufFile file)
    {
        var vocabulary = GgufVocabulary.Read(file, "bert", "a WordPiece vocabulary");
        // llama.cpp's BERT defaults: [CLS] 101 as BOS, [UNK] 100, [SEP] 102, [PAD] 0, [MASK] 103. A file without a
        // BOS id but with a [CLS] id gets [CLS] first.
        int unk = vocabulary.Id("tokenizer.ggml.unknown_token_id", 100);
        if (unk < 0)
            throw new GgufFormatException(file.Path, "tokenizer.ggml.unknown_token_id is missing and the default 100 is not in the vocabulary");
        int eos = vocabulary.Id("tokenizer.ggml.eos_token_id", -1);
        return new WordPieceTokenizer(vocabulary.Pieces, vocabulary.Kinds)
        {
            BosId = vocabulary.Id("tokenizer.ggml.bos_token_id", vocabulary.Id("tokenizer.ggml.cls_token_id", 101)),
            EosId = eos,
            UnknownId = unk,
            SeparatorId = vocabulary.Id("tokenizer.ggml.seperator_token_id", 102),
            PaddingId = vocabulary.Id("tokenizer.ggml.padding_token_id", 0),
            MaskId = vocabulary.Id("tokenizer.ggml.mask_token_id", 103),
            AddBos = true,
            AddEos = false,
            EndOfGenerationIds = vocabulary.EndOfGeneration(eos),
            LoadWarnings = vocabulary.Warnings,
        };
    }

    /// <inheritdoc/>
    public override string GetPiece(int id) => _pieces[CheckId(id)];

    /// <inheritdoc/>
    public override TokenKind GetKind(int id) => _kinds[CheckId(id)];

    /// <summary>Text to ids. With <paramref name="addSpecial"/> the result is [CLS] ... [SEP] (BOS first, SEP last),
    /// whatever the file's add_bos/add_eos flags say, as in llama.cpp.</summary>
    public override List<int> Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>();
        if (addSpecial)
            output.Add(BosId >= 0 ? BosId : throw new InvalidOperationException("the vocabulary has no BOS ([CLS]) id"));
        foreach (TextFragment fragment in _specials.Split(text, parseSpecial))
        {
            if (fragment.IsText)
                EncodeText(text.AsSpan(fragment.Start, fragment.Length), output);
            else
                output.Add(fragment.TokenId);
        }
        if (addSpecial)
            output.Add(SeparatorId >= 0 ? SeparatorId : throw new InvalidOperationException("the vocabulary has no [SEP] id"));
        return output;
    }

    /// <summary>Appends the ids of plain text (no special-token handling, no [CLS]/[SEP]).</summary>
    public void EncodeText(ReadOnlySpan<char> text, List<int> output)
    {
        foreach (string word in NormalizedWords(text))
        {
            string marked = WordStart + word;
            int before = output.Count;
            int i = 0;
            while (i < marked.Length)
            {
                // Longest entry starting at i.
                int found = -1, foundEnd = 0;
                for (int end = Math.Min(marked.Length, i + _maxPieceLength); end > i; end--)
                {
                    if (_idsBySpan.TryGetValue(marked.AsSpan(i, end - i), out int id))
                    {
                        found = id;
                        foundEnd = end;
                        break;
                    }
                }
                if (found < 0)
                {
                    output.RemoveRange(before, output.Count - before);
                    break;
                }
                output.Add(found);
                i = foundEnd;
            }
            if (output.Count == before)
                output.Add(UnknownId);
        }
    }

    /// <summary>The words of <paramref name="text"/> after normalisation (see the class summary).</summary>
    public static List<string> NormalizedWords(ReadOnlySpan<char> text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        void Finish()
        {
            if (word.Length > 0)
            {
                words.Add(word.ToString());
                word.Clear();
            }
        }

        foreach (int raw in UnicodeClasses.ToCodepoints(text))
        {
            int cp = UnicodeClasses.NfdBase(raw);
            UnicodeClass cls = UnicodeClasses.Of(cp);
            if ((cls & UnicodeClass.Whitespace) != 0)
            {
                Finish();
                continue;
            }
            // Control, format and unassigned characters go, and so do combining marks: what the decomposition
            // left of an accent, vowel signs, variation selectors (llama.cpp dropped marks from 2025 on; its
            // earlier builds kept them, which turned such words into [UNK]).
            if (cp == 0 || cp == 0xFFFD || (cls & (UnicodeClass.Other | UnicodeClass.Mark)) != 0)
                continue;
            string lower = char.ConvertFromUtf32(UnicodeClasses.ToLower(cp));
            if ((cls & UnicodeClass.Punctuation) != 0 || (cp < 0x7F && (cls & UnicodeClass.Symbol) != 0) || IsChineseCharacter(cp))
            {
                Finish();
                words.Add(lower);
            }
            else
            {
                word.Append(lower);
            }
        }
        Finish();
        return words;
    }

    /// <summary>CJK ideograph blocks that BERT's basic tokenizer splits into single characters.</summary>
    private static bool IsChineseCharacter(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B920 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>Normal entries give their text with "▁" as a space; user-defined entries their text; control and
    /// unknown entries ([CLS], [SEP], [UNK], ...) nothing.</summary>
    public override void AppendBytes(int id, int previous, List<byte> output)
    {
        string piece = _pieces[CheckId(id)];
        switch (_kinds[id])
        {
            case TokenKind.Normal:
                output.AddRange(Encoding.UTF8.GetBytes(piece.Replace(WordStart, ' ')));
                break;
            case TokenKind.UserDefined:
                output.AddRange(Encoding.UTF8.GetBytes(piece));
                break;
        }
    }

    private int CheckId(int id) =>
        (uint)id < (uint)_pieces.Length ? id : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id must be in [0, {_pieces.Length})");
}
