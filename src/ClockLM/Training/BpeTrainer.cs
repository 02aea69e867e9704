using System.Text;
using ClockLM.Tokenizers;

namespace ClockLM.Training;

/// <summary>
/// Learns a SentencePiece-style BPE vocabulary from text. The vocabulary holds <c>&lt;unk&gt;</c> (0), <c>&lt;s&gt;</c> (1),
/// <c>&lt;/s&gt;</c> (2), the 256 byte tokens <c>&lt;0x00&gt;</c>..<c>&lt;0xFF&gt;</c> (byte fallback for any character
/// it lacks), the corpus's characters, then one piece per merge. Words are cut as <see cref="SentencePieceTokenizer"/>
/// sees them: spaces become '▁' and each '▁' starts a word, so no piece holds a '▁' after its first character.
/// A merge learnt earlier gets a higher score, so the inference tokenizer's score-ordered merging replays the merges.
/// </summary>
public static class BpeTrainer
{
    /// <summary>Ids of the special tokens at the start of every trained vocabulary.</summary>
    public const int UnknownId = 0, BosId = 1, EosId = 2;

    private const int SpecialCount = 3, ByteCount = 256;

    /// <summary>The smallest vocabulary: the special tokens and the byte tokens.</summary>
    public const int MinimumVocabSize = SpecialCount + ByteCount;

    /// <summary>
    /// Trains a vocabulary of at most <paramref name="vocabSize"/> pieces on <paramref name="lines"/>, each line encoded
    /// as the tokenizer will see it (a space prefix, then the text). Characters rarer than
    /// <paramref name="minCharCount"/> are left to byte fallback. Fewer pieces result when the text runs out of pairs.
    /// </summary>
    public static SentencePieceTokenizer Train(IEnumerable<string> lines, int vocabSize, int minCharCount = 2)
    {
        ArgumentNullException.ThrowIfNull(lines);
        if (vocabSize < MinimumVocabSize)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, $"a vocabulary needs at least {MinimumVocabSize} entries (3 special and 256 byte tokens)");

        // Word frequencies, words as the tokenizer cuts them.
        var wordCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in lines)
            foreach (string word in Words(line))
                wordCounts[word] = wordCounts.GetValueOrDefault(word) + 1;

        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        var kinds = new List<TokenKind> { TokenKind.Unknown, TokenKind.Control, TokenKind.Control };
        for (int b = 0; b < ByteCount; b++)
        {
            pieces.Add($"<0x{b:X2}>");
            kinds.Add(TokenKind.Byte);
        }

        // The characters, most frequent first (ties in ordinal order), so that ids do not depend on hash order.
        var charCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (word, count) in wordCounts)
            foreach (string c in Characters(word))
                charCounts[c] = charCounts.GetValueOrDefault(c) + count;
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (c, _) in charCounts.Where(kv => kv.Value >= minCharCount)
                     .OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (pieces.Count >= vocabSize) break;
            ids[c] = pieces.Count;
            pieces.Add(c);
            kinds.Add(TokenKind.Normal);
        }

        // Each distinct word as a sequence of piece ids; a character without a piece splits the word (it is bytes).
        var words = new List<(List<int> Symbols, long Count)>();
        foreach (var (word, count) in wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var symbols = new List<int>();
            foreach (string c in Characters(word))
                symbols.Add(ids.TryGetValue(c, out int id) ? id : -1);
            words.Add((symbols, count));
        }

        var pairCounts = new Dictionary<long, long>();
        while (pieces.Count < vocabSize)
        {
            pairCounts.Clear();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] >= 0 && symbols[i + 1] >= 0)
                    {
                        long key = ((long)symbols[i] << 32) | (uint)symbols[i + 1];
                        pairCounts[key] = pairCounts.GetValueOrDefault(key) + count;
                    }
            // The most frequent pair; ties go to the smaller ids, so training is deterministic.
            long best = -1, bestCount = 0;
            foreach (var (key, count) in pairCounts)
                if (count > bestCount || (count == bestCount && key < best))
                    (best, bestCount) = (key, count);
            if (bestCount < 2) break;

            int left = (int)(best >> 32), right = (int)(best & 0xFFFFFFFF);
            string merged = pieces[left] + pieces[right];
            if (!ids.TryGetValue(merged, out int mergedId))
            {
                mergedId = pieces.Count;
                ids[merged] = mergedId;
                pieces.Add(merged);
                kinds.Add(TokenKind.Normal);
            }
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = mergedId;
                        symbols.RemoveAt(i + 1);
                    }
        }

        // Score −id: a piece made by an earlier merge outranks a later one (characters and specials never merge into being).
        var scores = new float[pieces.Count];
        for (int id = SpecialCount + ByteCount; id < pieces.Count; id++) scores[id] = -id;
        return new SentencePieceTokenizer(pieces, scores, kinds, BosId, EosId, UnknownId,
            paddingId: -1, addBos: true, addEos: false, addSpacePrefix: true);
    }

    /// <summary>Cuts a line as the tokenizer sees it: a leading '▁', spaces as '▁', a new word at every '▁'.</summary>
    internal static IEnumerable<string> Words(string line)
    {
        var text = new StringBuilder(line.Length + 1);
        text.Append(SentencePieceTokenizer.SpaceMarker);
        foreach (char c in line) text.Append(c == ' ' ? SentencePieceTokenizer.SpaceMarker : c);
        int start = 0;
        for (int i = 1; i <= text.Length; i++)
            if (i == text.Length || text[i] == SentencePieceTokenizer.SpaceMarker)
            {
                yield return text.ToString(start, i - start);
                start = i;
            }
    }

    // Unicode characters (a surrogate pair stays together, as one UTF-8 character).
    private static IEnumerable<string> Characters(string word)
    {
        for (int i = 0; i < word.Length; i++)
        {
            int length = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            yield return word.Substring(i, length);
            i += length - 1;
        }
    }
}
