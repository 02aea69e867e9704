using System.Text;
using ClockLM.Gguf;

namespace ClockLM.Tests.Gguf;

/// <summary>Hostile and broken GGUF files end in one GgufFormatException that names the file and the problem.</summary>
public class GgufErrorTests
{
    /// <summary>Builds GGUF bytes field by field, so each test can put a bad value exactly where it wants.</summary>
    private sealed class Bytes
    {
        private readonly MemoryStream _s = new();
        private readonly BinaryWriter _w;
        public Bytes() => _w = new BinaryWriter(_s);
        public Bytes U32(uint v) { _w.Write(v); return this; }
        public Bytes U64(ulong v) { _w.Write(v); return this; }
        public Bytes Str(string s) { var b = Encoding.UTF8.GetBytes(s); _w.Write((ulong)b.Length); _w.Write(b); return this; }
        public Bytes Raw(params byte[] b) { _w.Write(b); return this; }
        public Bytes Header(ulong tensors, ulong kvs, uint version = 3) => U32(GgufFile.Magic).U32(version).U64(tensors).U64(kvs);
        public Bytes Pad(int alignment = 32) { while (_s.Length % alignment != 0) _w.Write((byte)0); return this; }
        public byte[] ToArray() { _w.Flush(); return _s.ToArray(); }
    }

    private static string Fails(byte[] bytes, params string[] expected)
    {
        using var dir = new TempDir();
        string path = dir.File("bad.gguf");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path).Dispose());
        Assert.StartsWith(path + ": ", e.Message);
        foreach (var s in expected) Assert.Contains(s, e.Message);
        return e.Message;
    }

    [Fact] public void BadMagic() => Fails(new Bytes().U32(0x12345678).U32(3).U64(0).U64(0).ToArray(), "not a GGUF file");
    [Fact] public void VersionOne() => Fails(new Bytes().Header(0, 0, version: 1).ToArray(), "version 1");
    [Fact] public void UnknownVersion() => Fails(new Bytes().Header(0, 0, version: 7).ToArray(), "version 7");
    [Fact] public void TooShort() => Fails([0x47, 0x47], "too short");
    [Fact] public void HugeTensorCount() => Fails(new Bytes().Header(ulong.MaxValue, 0).ToArray(), "tensor count");
    [Fact] public void HugeMetadataCount() => Fails(new Bytes().Header(0, 1UL << 60).ToArray(), "metadata count");
    [Fact] public void StringLongerThanFile() => Fails(new Bytes().Header(0, 1).U64(1UL << 40).Raw(new byte[40]).ToArray(), "claims", "bytes");
    [Fact] public void StringLengthOverflowing() => Fails(new Bytes().Header(0, 1).U64(ulong.MaxValue).Raw(new byte[40]).ToArray(), "claims");
    [Fact] public void DuplicateKey() => Fails(new Bytes().Header(0, 2).Str("k").U32(4).U32(1).Str("k").U32(4).U32(2).ToArray(), "'k' appears twice");
    [Fact] public void UnknownValueType() => Fails(new Bytes().Header(0, 1).Str("k").U32(13).U32(0).ToArray(), "value type 13");
    [Fact] public void BadBool() => Fails(new Bytes().Header(0, 1).Str("k").U32(7).Raw(2).ToArray(), "bool");
    [Fact] public void HugeArray() => Fails(new Bytes().Header(0, 1).Str("k").U32(9).U32(6).U64(1UL << 62).ToArray(), "claims", "elements");
    [Fact] public void ArrayOfUnknownType() => Fails(new Bytes().Header(0, 1).Str("k").U32(9).U32(99).U64(1).ToArray(), "element type 99");

    [Fact]
    public void ArraysNestedTooDeep()
    {
        var b = new Bytes().Header(0, 1).Str("k").U32(9);
        for (int i = 0; i < 20; i++) b.U32(9).U64(1);
        b.U32(4).U64(0);
        Fails(b.ToArray(), "nests arrays deeper");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    [InlineData(48u)]
    public void AlignmentNotAPowerOfTwo(uint alignment) =>
        Fails(new Bytes().Header(0, 1).Str("general.alignment").U32(4).U32(alignment).ToArray(), "general.alignment", "power of two");

    [Fact]
    public void AlignmentOfWrongType() =>
        Fails(new Bytes().Header(0, 1).Str("general.alignment").U32(8).Str("32").ToArray(), "general.alignment", "UInt32");

    private static Bytes Tensor(Bytes b, string name, uint dims, ulong[] ne, uint type, ulong offset)
    {
        b.Str(name).U32(dims);
        foreach (var n in ne) b.U64(n);
        return b.U32(type).U64(offset);
    }

    [Fact] public void UnknownTensorType() => Fails(Tensor(new Bytes().Header(1, 0), "t", 1, [32], 77, 0).Pad().Raw(new byte[128]).ToArray(), "'t'", "type 77");
    [Fact] public void TooManyDimensions() => Fails(Tensor(new Bytes().Header(1, 0), "t", 5, [1, 1, 1, 1, 1], 0, 0).ToArray(), "5 dimensions");
    [Fact] public void ZeroDimension() => Fails(Tensor(new Bytes().Header(1, 0), "t", 2, [4, 0], 0, 0).ToArray(), "dimension 1 is 0");
    [Fact] public void OverflowingElementCount() => Fails(Tensor(new Bytes().Header(1, 0), "t", 2, [1UL << 40, 1UL << 40], 0, 0).ToArray(), "dimension 1");
    [Fact] public void RowNotWholeBlocks() => Fails(Tensor(new Bytes().Header(1, 0), "t", 1, [33], 8, 0).ToArray(), "block size 32");
    [Fact] public void MisalignedOffset() => Fails(Tensor(new Bytes().Header(1, 0), "t", 1, [4], 0, 3).ToArray(), "not a multiple of the alignment");
    [Fact] public void DataPastEnd() => Fails(Tensor(new Bytes().Header(1, 0), "t", 1, [1024], 0, 0).Pad().Raw(new byte[64]).ToArray(), "past the end");
    [Fact] public void HugeOffset() => Fails(Tensor(new Bytes().Header(1, 0), "t", 1, [4], 0, 1UL << 62).ToArray(), "past the end");

    [Fact]
    public void DuplicateTensor()
    {
        var b = new Bytes().Header(2, 0);
        Tensor(b, "t", 1, [8], 0, 0);
        Tensor(b, "t", 1, [8], 0, 32);
        Fails(b.Pad().Raw(new byte[64]).ToArray(), "'t' appears twice");
    }

    [Fact]
    public void EveryTruncationOfAValidFileFails()
    {
        using var dir = new TempDir();
        string path = dir.File("ok.gguf");
        new GgufWriter().Set("general.architecture", "llama").Set("list", GgufValue.From(new[] { "x", "yy" }))
            .AddTensor("a", [8], new float[8]).AddTensor("b", [4, 2], new float[8]).Write(path);
        byte[] full = File.ReadAllBytes(path);
        using (GgufFile.Open(path)) { }
        // The last tensor's 32 bytes of data end exactly at the end of the file, so every strict prefix is invalid.
        for (int n = 0; n < full.Length; n++)
        {
            File.WriteAllBytes(path, full[..n]);
            Assert.Throws<GgufFormatException>(() => GgufFile.Open(path).Dispose());
        }
    }

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        var e = Assert.Throws<FileNotFoundException>(() => GgufFile.Open("/nonexistent/model.gguf"));
        Assert.Contains("/nonexistent/model.gguf", e.Message);
    }
}
