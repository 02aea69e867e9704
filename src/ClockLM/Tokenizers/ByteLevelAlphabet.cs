namespace ClockLM.Tokenizers;

/// <summary>
/// GPT-2's reversible byte-to-character map: byte-level BPE vocabularies store every byte as a printable character.
/// Printable Latin-1 bytes (<c>!</c>..<c>~</c>, <c>¡</c>..<c>¬</c>, <c>®</c>..<c>ÿ</c>) stand for themselves; the other
/// 68 bytes, in increasing order, become U+0100, U+0101, ... (so space is <c>Ġ</c> U+0120 and newline <c>Ċ</c> U+010A).
/// </summary>
public static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly short[] CharToByte = BuildCharToByte();

    /// <summary>The character that stands for <paramref name="b"/>.</summary>
    public static char Encode(byte b) => ByteToChar[b];

    /// <summary>The byte <paramref name="c"/> stands for, or -1 when it is not in the alphabet.</summary>
    public static int Decode(char c) => c < CharToByte.Length ? CharToByte[c] : -1;

    /// <summary>Encodes bytes as alphabet text.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (chars, source) =>
        {
            for (int i = 0; i < source.Length; i++)
                chars[i] = ByteToChar[source[i]];
        });
    }

    private static bool StandsForItself(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0x100;
        for (int b = 0; b < 256; b++)
            map[b] = StandsForItself(b) ? (char)b : (char)next++;
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var map = new short[0x100 + 68];
        Array.Fill(map, (short)-1);
        for (int b = 0; b < 256; b++)
            map[ByteToChar[b]] = (short)b;
        return map;
    }
}
