using ClockLM.Gguf;
using ClockLM.Tensors;

namespace ClockLM.Tests.Gguf;

public class GgufRoundTripTests
{
    private static GgufWriter EveryValueType(int alignment = 32)
    {
        var w = new GgufWriter { Alignment = alignment };
        w.Set("u8", GgufValue.From((byte)200));
        w.Set("i8", GgufValue.From((sbyte)-100));
        w.Set("u16", GgufValue.From((ushort)60000));
        w.Set("i16", GgufValue.From((short)-30000));
        w.Set("u32", GgufValue.From(4000000000u));
        w.Set("i32", GgufValue.From(-2000000000));
        w.Set("f32", GgufValue.From(3.25f));
        w.Set("bool", GgufValue.From(true));
        w.Set("string", GgufValue.From("héllo ▁wörld"));
        w.Set("u64", GgufValue.From(18000000000000000000UL));
        w.Set("i64", GgufValue.From(-9000000000000000000L));
        w.Set("f64", GgufValue.From(-1.0 / 3));
        w.Set("arr.f32", GgufValue.From(new[] { 1f, -2f, 0.5f }));
        w.Set("arr.str", GgufValue.From(new[] { "a", "", "ccc" }));
        w.Set("arr.bool", GgufValue.Array(GgufValueType.Bool, new[] { true, false, true }));
        w.Set("arr.u8", GgufValue.Array(GgufValueType.UInt8, new byte[] { 1, 2, 255 }));
        w.Set("arr.i64", GgufValue.Array(GgufValueType.Int64, new long[] { long.MinValue, 0, long.MaxValue }));
        w.Set("arr.nested", GgufValue.Array(GgufValueType.Array, new[]
        {
            GgufValue.From(new[] { 1, 2, 3 }),
            GgufValue.Array(GgufValueType.Array, new[] { GgufValue.From(new[] { "deep" }) }),
            GgufValue.From(Array.Empty<float>()),
        }));
        return w;
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    [InlineData(1)]
    public void EveryMetadataTypeAndTensorsRoundTrip(int alignment)
    {
        using var dir = new TempDir();
        string path = dir.File("all.gguf");
        var w = EveryValueType(alignment);
        float[] matrix = Enumerable.Range(0, 6 * 32).Select(i => i * 0.5f - 3).ToArray();
        w.AddTensor("m", [32, 6], matrix);
        w.AddTensor("v", [3], new[] { 7f, 8f, 9f });
        w.Write(path);

        using var file = GgufFile.Open(path);
        Assert.Equal(3u, file.Version);
        Assert.Equal(alignment, file.Alignment);
        Assert.Equal(0, file.DataOffset % alignment);
        Assert.Equal((byte)200, file.Metadata["u8"].Value);
        Assert.Equal((sbyte)-100, file.Metadata["i8"].Value);
        Assert.Equal((ushort)60000, file.Metadata["u16"].Value);
        Assert.Equal((short)-30000, file.Metadata["i16"].Value);
        Assert.Equal(4000000000u, file.Metadata["u32"].Value);
        Assert.Equal(-2000000000, file.Metadata["i32"].Value);
        Assert.Equal(3.25f, file.Metadata["f32"].Value);
        Assert.Equal(true, file.Metadata["bool"].Value);
        Assert.Equal("héllo ▁wörld", file.GetString("string"));
        Assert.Equal(18000000000000000000UL, file.Metadata["u64"].Value);
        Assert.Equal(-9000000000000000000L, file.GetInteger("i64"));
        Assert.Equal(-1.0 / 3, file.Metadata["f64"].Value);
        Assert.Equal(new[] { 1f, -2f, 0.5f }, file.GetArray<float>("arr.f32"));
        Assert.Equal(new[] { "a", "", "ccc" }, file.GetArray<string>("arr.str"));
        Assert.Equal(new[] { true, false, true }, file.GetArray<bool>("arr.bool"));
        Assert.Equal(new byte[] { 1, 2, 255 }, file.GetArray<byte>("arr.u8"));
        Assert.Equal(new[] { long.MinValue, 0, long.MaxValue }, file.GetArray<long>("arr.i64"));
        var nested = file.GetArray<GgufValue>("arr.nested");
        Assert.Equal(new[] { 1, 2, 3 }, nested[0].AsArray<int>());
        Assert.Equal("deep", nested[1].AsArray<GgufValue>()[0].AsArray<string>()[0]);
        Assert.Empty(nested[2].AsArray<float>());
        Assert.Equal(file.MetadataKeys.Where(k => k != "general.alignment"),
            new[] { "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "u64", "i64", "f64", "arr.f32", "arr.str", "arr.bool", "arr.u8", "arr.i64", "arr.nested" });

        var m = file.GetTensor("m");
        Assert.Equal(GgmlType.F32, m.Type);
        Assert.Equal(new long[] { 32, 6 }, m.Dimensions);
        Assert.Equal(6, m.RowCount);
        Assert.Equal(matrix, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.GetTensorData(m)).ToArray());
        var view = file.GetView(m);
        var row = new float[32];
        view.DequantizeRow(5, row);
        Assert.Equal(matrix[(5 * 32)..], row);
        Assert.Equal(new[] { 7f, 8f, 9f }, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.GetTensorData(file.GetTensor("v"))).ToArray());
    }

    [Fact]
    public void TypedAccessorsNameTheKeyOnMismatch()
    {
        using var dir = new TempDir();
        string path = dir.File("t.gguf");
        EveryValueType().Write(path);
        using var file = GgufFile.Open(path);
        var e = Assert.Throws<GgufFormatException>(() => file.GetString("u32"));
        Assert.Contains("'u32'", e.Message);
        Assert.Contains("expected a string", e.Message);
        var missing = Assert.Throws<GgufFormatException>(() => file.GetInteger("nope"));
        Assert.Contains("'nope' is missing", missing.Message);
        Assert.Equal(5, file.GetInteger("nope", 5));
    }

    [Fact]
    public void VersionTwoFilesAreRead()
    {
        using var dir = new TempDir();
        string path = dir.File("v2.gguf");
        new GgufWriter().Set("general.architecture", "llama").AddTensor("x", [4], new[] { 1f, 2f, 3f, 4f }).Write(path);
        var bytes = File.ReadAllBytes(path);
        bytes[4] = 2; // version field: v2 has the same layout as v3 for little-endian files
        File.WriteAllBytes(path, bytes);
        using var file = GgufFile.Open(path);
        Assert.Equal(2u, file.Version);
        Assert.Equal("llama", file.GetString("general.architecture"));
    }
}
