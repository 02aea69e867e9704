using System.Text;
using ClockLM.Tokenizers;

namespace ClockLM.Tests.Tokenizers;

public class StreamingDetokenizerTests
{
    private static readonly SentencePieceTokenizer Llama = SentencePieceVocabFileTests.Load("ggml-vocab-llama-spm.gguf");

    [Fact]
    public void EmojiSpelledInByteTokensComesOutWhole()
    {
        // 😁 is U+1F601 = F0 9F 98 81; the llama vocabulary has no piece for it, so it is spelled in byte tokens.
        var ids = Llama.Encode("Hi 😁!", addSpecial: true);
        int[] emojiBytes = [3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x81];
        int at = ids.IndexOf(emojiBytes[0]);
        Assert.True(at > 0);
        Assert.Equal(emojiBytes, ids.Skip(at).Take(4));

        var streaming = new StreamingDetokenizer(Llama);
        var outputs = ids.Select(streaming.Append).ToList();
        // The three first bytes release nothing, the fourth the whole character.
        Assert.Equal(["", "", ""], outputs.Skip(at).Take(3));
        Assert.Equal("😁", outputs[at + 3]);
        Assert.Equal(0, streaming.PendingByteCount);
        Assert.Equal("Hi 😁!", string.Concat(outputs) + streaming.Flush());
    }

    [Fact]
    public void HeldBytesAreCountedAndFlushedAsReplacementCharacter()
    {
        var streaming = new StreamingDetokenizer(Llama);
        Assert.Equal("", streaming.Append(3 + 0xE2));
        Assert.Equal("", streaming.Append(3 + 0x82));
        Assert.Equal(2, streaming.PendingByteCount);
        // The text ends inside the character: Flush gives what Decode gives for the same ids.
        Assert.Equal(Llama.Decode([3 + 0xE2, 3 + 0x82]), streaming.Flush());
        Assert.Equal("\uFFFD", Llama.Decode([3 + 0xE2, 3 + 0x82]));
        Assert.Equal(0, streaming.PendingByteCount);
    }

    [Fact]
    public void BytesThatCanNeverFormACharacterAreReleasedAtOnce()
    {
        var streaming = new StreamingDetokenizer(Llama);
        Assert.Equal("", streaming.Append(3 + 0xF0));
        // F0 followed by 'A' cannot become a character: both come out, F0 as U+FFFD.
        Assert.Equal("\uFFFDA", streaming.Append(3 + 'A'));
        // A lone continuation byte is invalid on its own.
        Assert.Equal("\uFFFD", streaming.Append(3 + 0x81));
    }

    [Fact]
    public void ConcatenatedStreamEqualsDecodeForManyTexts()
    {
        string[] texts = ["Hello world", " leading space", "нещо на Български", "🚀 (normal) 😶‍🌫️ ✅", "ied 4 ½ months",
            "កាន់តែពិសេសអាចខលចេញ", "tab\tand\nnewline", "   ", "我想在apple工作1314151天～"];
        foreach (string text in texts)
        {
            var ids = Llama.Encode(text, addSpecial: true);
            var streaming = new StreamingDetokenizer(Llama);
            var built = new StringBuilder();
            foreach (int id in ids)
            {
                string piece = streaming.Append(id);
                Assert.DoesNotContain('\uFFFD', piece); // never half a character
                built.Append(piece);
            }
            built.Append(streaming.Flush());
            Assert.Equal(Llama.Decode(ids), built.ToString());
            Assert.Equal(text, built.ToString());
        }
    }

    [Fact]
    public void ResetStartsANewSequence()
    {
        var streaming = new StreamingDetokenizer(Llama);
        int hello = Llama.FindPiece("▁Hello");
        Assert.Equal("Hello", streaming.Append(hello));  // first token: prefix space dropped
        Assert.Equal(" Hello", streaming.Append(hello)); // later: kept
        streaming.Append(3 + 0xF0);
        streaming.Reset();
        Assert.Equal(0, streaming.PendingByteCount);
        Assert.Equal("Hello", streaming.Append(hello));
    }
}
