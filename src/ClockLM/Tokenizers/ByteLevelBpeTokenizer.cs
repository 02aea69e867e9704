using ClockLM.Gguf;

namespace ClockLM.Tokenizers;

/// <summary>Placeholder until this vocabulary type is implemented.</summary>
public sealed class ByteLevelBpeTokenizer : Tokenizer
{
    public static ByteLevelBpeTokenizer FromGguf(GgufFile file) => throw new GgufFormatException(file.Path, "ByteLevelBpeTokenizer is not implemented yet");
    public override int VocabSize => 0;
    public override string GetPiece(int id) => throw new NotImplementedException();
    public override TokenKind GetKind(int id) => throw new NotImplementedException();
    public override List<int> Encode(string text, bool addSpecial = true, bool parseSpecial = false) => throw new NotImplementedException();
    public override void AppendBytes(int id, int previous, List<byte> output) => throw new NotImplementedException();
}
