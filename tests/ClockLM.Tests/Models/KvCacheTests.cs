using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tests.Families;
using ClockLM.Tests.Tensors;

namespace ClockLM.Tests.Models;

/// <summary>
/// The KV cache's operations that serving builds on — rolling back, copying a prefix, writing and reading positions
/// [0, n) byte for byte, and the context shift's re-rotation of keys — on stories260K and small family models, for
/// every cache type.
/// </summary>
public class KvCacheTests
{
    public static TheoryData<GgmlType> Types => [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0];

    private static int[] Tokens(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(3, vocab)).ToArray();
    }

    private static void AssertBitIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: [{i}] is {actual[i]}, expected {expected[i]}");
    }

    [Theory, MemberData(nameof(Types))]
    public void BytesPerPositionAreTheRowsOfEveryLayer(GgmlType type)
    {
        using var model = Model.Load(SharedData.Stories260K);
        var cache = model.CreateTransformer(16, cache: KvCacheOptions.Both(type)).Cache;
        int kvDim = model.Config.KvDim; // 32: one Q8_0 block
        long perRow = type switch { GgmlType.F32 => 4 * kvDim, GgmlType.F16 => 2 * kvDim, _ => kvDim / 32 * 34 };
        Assert.Equal(perRow, cache.KeyRowBytes);
        Assert.Equal(2 * perRow * model.Config.Layers, cache.BytesPerPosition);
        Assert.Equal(type, cache.KeyType);
        Assert.Equal(type, cache.ValueType);
    }

    [Theory, MemberData(nameof(Types))]
    public void WrittenPositionsReadBackBitForBitAndContinueTheSame(GgmlType type)
    {
        using var model = Model.Load(SharedData.Stories260K);
        var options = new KvCacheOptions { KeyType = type, ValueType = type == GgmlType.Q8_0 ? GgmlType.F16 : type };
        var tokens = Tokens(40, model.Config.VocabSize, seed: 1);
        var original = model.CreateTransformer(64, cache: options);
        original.Evaluate(tokens.AsSpan(0, 30), 0);

        using var stream = new MemoryStream();
        original.Cache.Write(stream, 25); // a prefix of what it holds
        Assert.Equal(original.Cache.SerializedBytes(25), stream.Length);
        // The bytes after the header are the stored rows themselves, layer by layer.
        var bytes = stream.ToArray();
        long at = bytes.Length - 25 * original.Cache.BytesPerPosition;
        for (int layer = 0; layer < model.Config.Layers; layer++)
        {
            var keys = original.Cache.KeyBytes(layer, 0, 25);
            Assert.True(keys.SequenceEqual(bytes.AsSpan((int)at, keys.Length)), $"keys of layer {layer}");
            at += keys.Length;
            var values = original.Cache.ValueBytes(layer, 0, 25);
            Assert.True(values.SequenceEqual(bytes.AsSpan((int)at, values.Length)), $"values of layer {layer}");
            at += values.Length;
        }

        var restored = model.CreateTransformer(64, cache: options);
        stream.Position = 0;
        Assert.Equal(25, restored.Cache.Read(stream));
        Assert.Equal(25, restored.Cache.Length);
        // Both continue from position 25 with the same tokens: the same logits, bit for bit.
        var expected = original.Evaluate(tokens.AsSpan(25), 25).ToArray();
        AssertBitIdentical(expected, restored.Evaluate(tokens.AsSpan(25), 25), $"{options}: logits after restoring");
    }

    [Fact]
    public void DataOfAnotherShapeOrTypeIsRefusedBeforeAnythingChanges()
    {
        using var model = Model.Load(SharedData.Stories260K);
        var source = model.CreateTransformer(32, cache: KvCacheOptions.F32);
        source.Evaluate(Tokens(10, 512, seed: 2), 0);
        using var stream = new MemoryStream();
        source.Cache.Write(stream, 10);
        byte[] data = stream.ToArray();

        var target = model.CreateTransformer(32); // F16
        target.Evaluate(Tokens(5, 512, seed: 3), 0);
        var e = Assert.Throws<InvalidDataException>(() => target.Cache.Read(new MemoryStream(data)));
        Assert.Contains("key type is F32, this cache stores F16", e.Message);
        Assert.Equal(5, target.Cache.Length); // untouched

        var small = model.CreateTransformer(8, cache: KvCacheOptions.F32);
        e = Assert.Throws<InvalidDataException>(() => small.Cache.Read(new MemoryStream(data)));
        Assert.Contains("10 positions, but this cache holds 8", e.Message);

        var wrong = (byte[])data.Clone();
        wrong[0] = (byte)'X';
        Assert.Contains("CLKV", Assert.Throws<InvalidDataException>(() => target.Cache.Read(new MemoryStream(wrong))).Message);
        wrong = (byte[])data.Clone();
        wrong[8] = 9; // layers
        Assert.Contains("layers is 9, expected 5", Assert.Throws<InvalidDataException>(() => target.Cache.Read(new MemoryStream(wrong))).Message);

        // Data that ends early leaves the cache empty, not half restored.
        var f32 = model.CreateTransformer(32, cache: KvCacheOptions.F32);
        f32.Evaluate(Tokens(5, 512, seed: 3), 0);
        e = Assert.Throws<InvalidDataException>(() => f32.Cache.Read(new MemoryStream(data[..^7])));
        Assert.Contains("ends in the values of layer 4", e.Message);
        Assert.Equal(0, f32.Cache.Length);
    }

    /// <summary>
    /// Attention reads F16 rows on the three-operation widening while every stored half is finite, and on the exact
    /// widening (counted) once one is not: the same logits bit for bit, with eight query heads per key/value head (as
    /// tinyllama-1.1b) over 70 positions, through a prompt chunk and single tokens.
    /// </summary>
    [FactNeeds(Cpu.Avx2)]
    public void FiniteHalvesAndTheExactWideningGiveTheSameLogits()
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        var config = new LlamaConfig(Dim: 512, HiddenDim: 768, Layers: 2, Heads: 8, KvHeads: 1, VocabSize: 96, ContextLength: 128);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(96), GgmlType.Q8_0, std: 0.05f);
        using var model = Model.Load(path);
        var tokens = Tokens(70, 96, seed: 6);
        var finite = model.CreateTransformer(128);
        var exact = model.CreateTransformer(128);
        // A row no step reads (the last position) with an infinite key turns the fast widening off for the whole cache.
        var huge = Enumerable.Repeat(1e6f, config.KvDim).ToArray();
        exact.Cache.Store(0, 127, huge, new float[config.KvDim]);
        Assert.False(exact.Cache.HalvesAllFinite);

        AssertBitIdentical(exact.Evaluate(tokens.AsSpan(0, 60), 0), finite.Evaluate(tokens.AsSpan(0, 60), 0), "a prompt of 60");
        for (int pos = 60; pos < 70; pos++)
            AssertBitIdentical(exact.Evaluate(tokens.AsSpan(pos, 1), pos), finite.Evaluate(tokens.AsSpan(pos, 1), pos), $"the token at {pos}");
        Assert.True(finite.Cache.HalvesAllFinite);
        Assert.Equal(0, finite.Cache.ExactHalfWidenings);
        // Keys and values, of each layer and row: 60 prompt rows and 10 single ones, one key/value head.
        Assert.Equal(2 * config.Layers * 70, exact.Cache.ExactHalfWidenings);
    }

    [Fact]
    public void TheFiniteFlagFollowsWhatTheCacheHolds()
    {
        using var model = Model.Load(SharedData.Stories260K);
        int kvDim = model.Config.KvDim;
        var cache = model.CreateTransformer(16).Cache; // F16
        var inf = new float[kvDim];
        inf[kvDim - 1] = float.PositiveInfinity;
        var nan = new float[kvDim];
        nan[3] = float.NaN;
        var largest = Enumerable.Repeat(65504f, kvDim).ToArray();

        cache.Store(1, 0, largest, largest);
        Assert.True(cache.HalvesAllFinite);
        cache.Store(1, 1, new float[kvDim], nan);
        Assert.False(cache.HalvesAllFinite);
        cache.Truncate(1); // still held below the length? The flag stays off until the cache is emptied.
        Assert.False(cache.HalvesAllFinite);
        cache.Truncate(0);
        Assert.True(cache.HalvesAllFinite);

        cache.Store(0, 0, inf, largest);
        cache.Length = 1;
        var copy = model.CreateTransformer(16).Cache;
        copy.CopyPrefix(cache, 1);
        Assert.False(copy.HalvesAllFinite);
        using var stream = new MemoryStream();
        cache.Write(stream, 1);
        stream.Position = 0;
        var read = model.CreateTransformer(16).Cache;
        read.Read(stream);
        Assert.False(read.HalvesAllFinite);
        // Rewriting the infinite row with finite values: read back, it is finite again.
        cache.Store(0, 0, largest, largest);
        stream.SetLength(0);
        cache.Write(stream, 1);
        stream.Position = 0;
        read.Read(stream);
        Assert.True(read.HalvesAllFinite);
        // Only halves count: an F32 cache holding an infinity reads on its own kernels.
        var f32 = model.CreateTransformer(16, cache: KvCacheOptions.Both(GgmlType.F32)).Cache;
        f32.Store(0, 0, inf, inf);
        Assert.True(f32.HalvesAllFinite);
    }

    [Theory, MemberData(nameof(Types))]
    public void TruncatingThenContinuingEqualsRunningTheShorterSequence(GgmlType type)
    {
        using var model = Model.Load(SharedData.Stories260K);
        var options = KvCacheOptions.Both(type);
        var a = Tokens(30, 512, seed: 4);
        var b = Tokens(8, 512, seed: 5);
        var t = model.CreateTransformer(64, cache: options);
        t.Evaluate(a, 0);
        t.Cache.Truncate(12);
        Assert.Equal(12, t.Cache.Length);
        var logits = t.Evaluate(b, 12).ToArray();
        Assert.Equal(20, t.Cache.Length);

        var fresh = model.CreateTransformer(64, cache: options);
        AssertBitIdentical(fresh.Evaluate([.. a[..12], .. b], 0), logits, $"{type}: rolled back to 12, then 8 more tokens");
    }

    [Theory, MemberData(nameof(Types))]
    public void ACopiedPrefixContinuesAsTheSequenceItCameFrom(GgmlType type)
    {
        using var model = Model.Load(SharedData.Stories260K);
        var options = KvCacheOptions.Both(type);
        var shared = Tokens(16, 512, seed: 6);
        var first = model.CreateTransformer(64, cache: options);
        first.Evaluate([.. shared, .. Tokens(9, 512, seed: 7)], 0);

        var second = model.CreateTransformer(64, cache: options);
        second.Cache.CopyPrefix(first.Cache, 16);
        Assert.Equal(16, second.Cache.Length);
        var tail = Tokens(5, 512, seed: 8);
        var expected = model.CreateTransformer(64, cache: options).Evaluate([.. shared, .. tail], 0).ToArray();
        AssertBitIdentical(expected, second.Evaluate(tail, 16), $"{type}: a copied prefix of 16, then 5 tokens");

        var other = model.CreateTransformer(64, cache: KvCacheOptions.Both(type == GgmlType.F32 ? GgmlType.F16 : GgmlType.F32));
        Assert.Throws<ArgumentException>(() => other.Cache.CopyPrefix(first.Cache, 16));
        Assert.Throws<ArgumentOutOfRangeException>(() => second.Cache.CopyPrefix(first.Cache, 26)); // it holds 25
    }

    /// <summary>
    /// After a shift the kept keys must be the keys of their new positions. Layer 0's keys depend only on the token
    /// and its position (they are computed from the embedding), so the shifted cache's layer-0 keys must equal those of
    /// a fresh run over the shorter sequence, up to the rounding of one more rotation (F32) and of storing again (F16,
    /// Q8_0); its values do not move in value at all. Llama with RoPE frequency factors (adjacent pairs), Qwen 2 (halves),
    /// Gemma 3 (sliding layers with their own RoPE base) and stories260K.
    /// </summary>
    [Theory]
    [InlineData("llama", GgmlType.F32, 2e-6)]
    [InlineData("qwen2", GgmlType.F32, 2e-6)]
    [InlineData("gemma3", GgmlType.F32, 2e-6)]
    [InlineData("stories260K", GgmlType.F32, 2e-6)]
    [InlineData("qwen2", GgmlType.F16, 2e-3)]
    [InlineData("gemma3", GgmlType.Q8_0, 2e-2)]
    public void ShiftedKeysAreTheKeysOfTheirNewPositions(string arch, GgmlType type, double tolerance)
    {
        using var dir = new TempDir();
        string path = dir.File($"{arch}.gguf");
        if (arch == "stories260K") path = SharedData.Stories260K;
        else FamilyModels.WriteArchitecture(path, arch, contextLength: 64);
        using var model = Model.Load(path);
        var options = KvCacheOptions.Both(type);
        var tokens = Tokens(40, model.Config.VocabSize, seed: 9);
        var shifted = model.CreateTransformer(64, cache: options);
        shifted.Evaluate(tokens, 0);
        shifted.ShiftContext(keep: 4, discard: 10);
        Assert.Equal(30, shifted.Cache.Length);
        Assert.Equal(29, shifted.Position);

        var fresh = model.CreateTransformer(64, cache: options);
        fresh.Evaluate([.. tokens[..4], .. tokens[14..]], 0);
        int kvDim = model.Config.KvDim;
        float[] a = new float[kvDim], b = new float[kvDim];
        double scale = 0, worst = 0;
        for (int pos = 0; pos < 30; pos++)
        {
            shifted.Cache.ReadKey(0, pos, a);
            fresh.Cache.ReadKey(0, pos, b);
            if (pos < 4) AssertBitIdentical(b, a, $"kept key at {pos}");
            for (int i = 0; i < kvDim; i++)
            {
                scale = Math.Max(scale, Math.Abs(b[i]));
                worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
            }
            shifted.Cache.ReadValue(0, pos, a);
            fresh.Cache.ReadValue(0, pos, b);
            AssertBitIdentical(b, a, $"value at {pos}");
        }
        Assert.True(worst <= tolerance * scale, $"{arch}, {type}: layer-0 keys differ by {worst:E3} (largest key {scale:E3})");
        // The sequence goes on at its new position.
        var logits = shifted.Forward(tokens[0], 30);
        Assert.All(logits.ToArray(), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void ModelsWithLearnedPositionsCannotShift()
    {
        using var dir = new TempDir();
        string path = dir.File("gpt2.gguf");
        FamilyModels.WriteGpt2(path, layers: 1, contextLength: 32);
        using var model = Model.Load(path);
        var t = model.CreateTransformer(32);
        t.Evaluate(Tokens(20, model.Config.VocabSize, seed: 1), 0);
        Assert.Throws<NotSupportedException>(() => t.ShiftContext(2, 5));
        Assert.Equal(20, t.Cache.Length);
    }
}
