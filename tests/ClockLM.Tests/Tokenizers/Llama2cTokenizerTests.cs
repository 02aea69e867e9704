using System.Text;
using ClockLM.Formats;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Tokenizers;

/// <summary>The llama2.c tokenizer file, checked against the output of karpathy/llama2.c run.c.</summary>
public class Llama2cTokenizerTests
{
    private static readonly SentencePieceTokenizer Tok512 = Llama2cTokenizer.Load(SharedData.Tok512, 512);

    // run.c's greedy references: (prompt, all ids printed: BOS, prompt, generated) and run.c's stdout.
    private static List<(string Prompt, int[] Ids, string Stdout)> References()
    {
        string dir = Path.GetDirectoryName(SharedData.Tok512)!;
        var idLines = File.ReadAllLines(Path.Combine(dir, "reference-greedy-ids.txt"));
        string texts = File.ReadAllText(Path.Combine(dir, "reference-greedy.txt"), new UTF8Encoding(false, true));
        var result = new List<(string, int[], string)>();
        for (int i = 0; i + 1 < idLines.Length; i++)
        {
            // "# Once upon a time, -n 256 (257 ids):" then the ids
            if (!idLines[i].StartsWith("# ") || !idLines[i].Contains(", -n "))
                continue;
            string prompt = idLines[i][2..idLines[i].IndexOf(", -n ", StringComparison.Ordinal)];
            int[] ids = idLines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();

            // "# command: ./run ... -i "<prompt>" (...). Output below is the exact stdout.\n<stdout>" up to the next "# command:"
            const string marker = "Output below is the exact stdout.\n";
            int command = texts.IndexOf($"-i \"{prompt}\"", StringComparison.Ordinal);
            int start = texts.IndexOf(marker, command, StringComparison.Ordinal) + marker.Length;
            int next = texts.IndexOf("# command:", start, StringComparison.Ordinal);
            result.Add((prompt, ids, next < 0 ? texts[start..] : texts[start..next]));
        }
        Assert.Equal(2, result.Count);
        return result;
    }

    [Fact]
    public void VocabularyIsSpelledAsInGguf()
    {
        Assert.Equal(512, Tok512.VocabSize);
        Assert.Equal(("<unk>", TokenKind.Unknown), (Tok512.GetPiece(0), Tok512.GetKind(0)));
        Assert.Equal(("<s>", TokenKind.Control), (Tok512.GetPiece(1), Tok512.GetKind(1)));
        Assert.Equal(("</s>", TokenKind.Control), (Tok512.GetPiece(2), Tok512.GetKind(2)));
        for (int b = 0; b < 256; b++)
            Assert.Equal(($"<0x{b:X2}>", TokenKind.Byte), (Tok512.GetPiece(3 + b), Tok512.GetKind(3 + b)));
        Assert.Equal(TokenKind.Normal, Tok512.GetKind(259));
        // Spaces are stored as real spaces in the file and become '▁' here; none is left.
        for (int id = 3; id < 512; id++)
            Assert.DoesNotContain(' ', Tok512.GetPiece(id));
        Assert.Contains(Enumerable.Range(259, 253), id => Tok512.GetPiece(id).StartsWith('▁'));
        Assert.Equal((1, 2, true, false), (Tok512.BosId, Tok512.EosId, Tok512.AddBos, Tok512.AddEos));
        // run.c stops when the model produces BOS; EOS ends generation as well.
        Assert.Equal([1, 2], Tok512.EndOfGenerationIds.Order());
    }

    [Fact]
    public void OnceUponATimeEncodesAsRunC()
    {
        Assert.Equal([1, 403, 407, 261, 378], Tok512.Encode("Once upon a time"));
    }

    [Fact]
    public void PromptsEncodeToTheLeadingIdsOfTheReferences()
    {
        foreach (var (prompt, ids, _) in References())
        {
            var encoded = Tok512.Encode(prompt);
            Assert.Equal(1, encoded[0]);
            Assert.Equal(encoded, ids[..encoded.Count]);
            Assert.Equal(prompt, Tok512.Decode(ids[..encoded.Count]));
        }
    }

    [Fact]
    public void DecodingTheReferenceIdsReproducesRunCStdoutByteForByte()
    {
        foreach (var (_, ids, stdout) in References())
        {
            // run.c prints each piece after the first, dropping the leading space after BOS, then a final newline.
            Assert.Equal(stdout, Tok512.Decode(ids) + "\n");

            var streaming = new StreamingDetokenizer(Tok512);
            var text = new StringBuilder();
            foreach (int id in ids)
                text.Append(streaming.Append(id));
            text.Append(streaming.Flush());
            Assert.Equal(stdout, text + "\n");
        }
    }

    [Fact]
    public void TextOutsideTheVocabularyFallsBackToBytes()
    {
        // 'ü' is U+00FC = C3 BC in UTF-8 and not a piece of this 512-token vocabulary ('é' is).
        Assert.Equal(-1, Tok512.FindPiece("ü"));
        var ids = Tok512.Encode("ü", addSpecial: false);
        Assert.Equal([Tok512.FindPiece("▁"), 3 + 0xC3, 3 + 0xBC], ids);
        Assert.Equal("ü", Tok512.Decode(ids));
        Assert.Equal([Tok512.FindPiece("▁"), Tok512.FindPiece("é")], Tok512.Encode("é", addSpecial: false));
    }

    private static byte[] Header(int maxLength) => BitConverter.GetBytes(maxLength);

    private static byte[] Entry(float score, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        return [.. BitConverter.GetBytes(score), .. BitConverter.GetBytes(bytes.Length), .. bytes];
    }

    private static ModelFormatException LoadFails(byte[] content, int vocabSize, string expectedInMessage)
    {
        using var dir = new TempDir();
        string path = dir.File("tokenizer.bin");
        File.WriteAllBytes(path, content);
        var e = Assert.Throws<ModelFormatException>(() => Llama2cTokenizer.Load(path, vocabSize));
        Assert.Equal(path, e.FilePath);
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expectedInMessage, e.Message);
        return e;
    }

    [Fact]
    public void TruncatedFilesAreTypedErrorsNamingTheFileAndToken()
    {
        byte[] good = File.ReadAllBytes(SharedData.Tok512);
        LoadFails(good[..2], 512, "too short for the max_token_length header");
        LoadFails(good[..(good.Length - 3)], 512, "token 511 needs");
        // The same file read as a larger vocabulary runs out of tokens.
        LoadFails(good, 513, "inside the header of token 512");
    }

    [Fact]
    public void ImpossibleContentsAreTypedErrors()
    {
        byte[] three = [.. Entry(0, "<unk>"), .. Entry(0, "\n<s>\n"), .. Entry(0, "\n</s>\n")];
        LoadFails([.. Header(0), .. three], 3, "max_token_length is 0");
        LoadFails([.. Header(3), .. three], 3, "token 0 at byte 8 has length 5, expected 0 to max_token_length 3");
        LoadFails([.. Header(8), .. three[..^14], .. BitConverter.GetBytes(0f), .. BitConverter.GetBytes(-1)], 3, "token 2 at byte 34 has length -1");
        LoadFails([.. Header(8), .. three, .. Entry(0, "ab")[..8], 0xC3, 0x28], 4, "token 3 at byte 52 is not valid UTF-8");
    }

    [Fact]
    public void SmallHandWrittenFileLoadsWithKindsAndSpaces()
    {
        using var dir = new TempDir();
        string path = dir.File("tokenizer.bin");
        File.WriteAllBytes(path, [.. Header(6), .. Entry(0, "<unk>"), .. Entry(0, "\n<s>\n"), .. Entry(0, "\n</s>\n"),
            .. Entry(0, "<0x41>"), .. Entry(-1, " "), .. Entry(-2, "h"), .. Entry(-3, "i"), .. Entry(-4, " h"), .. Entry(-5, " hi")]);
        var tok = Llama2cTokenizer.Load(path, 9);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x41>", "▁", "h", "i", "▁h", "▁hi"], Enumerable.Range(0, 9).Select(tok.GetPiece));
        Assert.Equal(TokenKind.Byte, tok.GetKind(3));
        Assert.Equal([1, 8, 7, 3], tok.Encode("hi hA"));
        Assert.Equal("hi hA", tok.Decode([1, 8, 7, 3]));
    }
}
