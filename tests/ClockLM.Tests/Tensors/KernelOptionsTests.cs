using System.Runtime.Intrinsics.X86;
using ClockLM.Models;
using ClockLM.Tensors;
using Microsoft.Extensions.Logging;

namespace ClockLM.Tests.Tensors;

/// <summary>
/// The choice of kernels is an options object passed to <see cref="Model.Load"/> and from the weights to every product:
/// what it accepts and refuses, that a model runs on the kernels it was given, that the choices which must not change
/// results do not (the packed Q4_0 kernel's width, packing itself), and that every fast path a model has to leave is
/// logged once and counted.
/// </summary>
public class KernelOptionsTests
{
    [Fact]
    public void BestIsTheFastestPathAndWidthThisMachineRuns()
    {
        Assert.Equal(KernelOptions.BestPath, KernelOptions.Best.Path);
        Assert.Equal(Avx512BW.IsSupported ? 512 : 256, KernelOptions.Best.PackedWidth);
        Assert.Equal(KernelOptions.Best, new KernelOptions());
        // The fast path runs wherever AVX2 and FMA do; elsewhere the shortfall says why it does not.
        Assert.Equal(CpuSupport.Has(Cpu.Avx2), KernelOptions.Best.Shortfall is null);
        Assert.Equal(CpuSupport.Has(Cpu.Avx2), KernelOptions.Best.UsesPacked);
        // A slower path chosen on purpose is no shortfall.
        Assert.Null(new KernelOptions { Path = KernelPath.Scalar }.Shortfall);
    }

    /// <summary>A fact for x86 machines whose runtime uses what the processor has (CPUID is an x86 instruction, and
    /// <c>DOTNET_EnableAVX512=0</c>, or <c>DOTNET_EnableAVX512F=0</c> on older runtimes, would make the runtime's answer
    /// differ from the processor's on purpose).</summary>
    public sealed class FactOnX86Attribute : FactAttribute
    {
        public FactOnX86Attribute() => Skip = !X86Base.IsSupported ? "CPUID is an x86 instruction"
            : Environment.GetEnvironmentVariable("DOTNET_EnableAVX512") == "0" || Environment.GetEnvironmentVariable("DOTNET_EnableAVX512F") == "0"
                ? "the runtime is told to leave AVX-512 off"
            : null;
    }

    [FactOnX86]
    public void CpuidReadsAvx512AsTheJitDoes()
    {
        // Under the JIT, Avx512BW.IsSupported is the machine's answer; the CPUID bits a native build reads to notice
        // AVX-512 it was compiled without must agree with it, and the JIT build never reports it compiled out.
        Assert.Equal(Avx512F.IsSupported && Avx512BW.IsSupported, KernelOptions.ProcessorReportsAvx512BW());
        Assert.False(KernelOptions.Avx512CompiledOut);
    }

    [Theory]
    [InlineData("scalar", KernelPath.Scalar, 0)]
    [InlineData("Vector128", KernelPath.Vector128, 0)]
    [InlineData("SCALAR/256", KernelPath.Scalar, 256)]
    [InlineData(" vector128/256 ", KernelPath.Vector128, 256)]
    public void ParseReadsAPathAndAWidth(string text, KernelPath path, int width)
    {
        var kernels = KernelOptions.Parse(text);
        Assert.Equal(path, kernels.Path);
        Assert.Equal(width == 0 ? KernelOptions.Best.PackedWidth : width, kernels.PackedWidth);
        Assert.Equal(kernels, KernelOptions.Parse(kernels.ToString()));
        Assert.Same(KernelOptions.Best, KernelOptions.Parse("best"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("vector")]
    [InlineData("avx2")]
    [InlineData("2")]
    [InlineData("vector256/384")]
    [InlineData("vector256/")]
    [InlineData("scalar/256/512")]
    public void ParseRefusesTextItCannotRead(string text)
    {
        var e = Assert.Throws<FormatException>(() => KernelOptions.Parse(text));
        Assert.Contains($"'{text}'", e.Message);
    }

    [Fact]
    public void KernelsThisMachineCannotRunAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new KernelOptions { PackedWidth = 384 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new KernelOptions { Path = (KernelPath)9 });
        if (Avx512BW.IsSupported) Assert.Equal(512, new KernelOptions { PackedWidth = 512 }.PackedWidth);
        else Assert.Contains("AVX-512BW", Assert.Throws<PlatformNotSupportedException>(() => KernelOptions.Parse("scalar/512")).Message);
        if (Avx2.IsSupported) Assert.Equal(KernelPath.Vector512, new KernelOptions { Path = KernelPath.Vector512 }.Path);
        else Assert.Contains("AVX2", Assert.Throws<PlatformNotSupportedException>(() => new KernelOptions { Path = KernelPath.Vector256 }).Message);
    }

    private const int Vocab = 304, Context = 64;

    /// <summary>A random Q4_0 model of 11 blocks per row (an odd count: the last block pair of every packed octet is
    /// half empty) and three layers.</summary>
    private static string WriteQ4_0Model(TempDir dir)
    {
        string path = dir.File("q4_0.gguf");
        var config = new LlamaConfig(Dim: 352, HiddenDim: 704, Layers: 3, Heads: 4, KvHeads: 2, VocabSize: Vocab, ContextLength: Context);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(Vocab), GgmlType.Q4_0, std: 0.05f);
        return path;
    }

    /// <summary>The logits of a prompt read in one chunk (several vectors per product), then of one more token.</summary>
    private static float[] Logits(string path, ModelOptions options)
    {
        using var model = Model.Load(path, null, options);
        Assert.Same(options.Kernels, model.Weights.Kernels);
        var transformer = model.CreateTransformer(Context);
        var prompt = Enumerable.Range(0, 13).Select(i => (i * 37 + 11) % Vocab).ToArray();
        var chunk = transformer.Evaluate(prompt, 0).ToArray();
        return [.. chunk, .. transformer.Forward(5, prompt.Length)];
    }

    private static void AssertBitIdentical(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}: logit {i} is {actual[i]}, expected {expected[i]}");
    }

    /// <summary>The packed Q4_0 kernel on 256-bit halves and on 512-bit registers, and the file layout without packing,
    /// give a model the same logits bit for bit.</summary>
    [FactNeeds(Cpu.Avx512BW)]
    public void ThePackedKernelsWidthLeavesAModelsLogitsUnchanged()
    {
        using var dir = new TempDir();
        string path = WriteQ4_0Model(dir);
        var wide = new KernelOptions { Path = KernelPath.Vector256, PackedWidth = 512 };
        var narrow = wide with { PackedWidth = 256 };
        var expected = Logits(path, new ModelOptions { Kernels = wide });
        AssertBitIdentical(expected, Logits(path, new ModelOptions { Kernels = narrow }), "256-bit pair kernel");
        AssertBitIdentical(expected, Logits(path, new ModelOptions { Kernels = wide, PackWeights = false }), "file layout");
    }

    /// <summary>An F16 or BF16 model whose feed-forward rows are longer than 4096 columns keeps its down projections in
    /// panels (<see cref="HalfPanels"/>) and its other matrices in the file layout; its logits (a prompt in one chunk, then
    /// one token) are those of the file layout bit for bit, 256 and 512 bits wide.</summary>
    [TheoryNeeds(Cpu.Avx2)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void LongHalfRowsInPanelsLeaveAModelsLogitsUnchanged(GgmlType type)
    {
        using var dir = new TempDir();
        string path = dir.File("long-rows.gguf");
        var config = new LlamaConfig(Dim: 64, HiddenDim: 4160, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: Vocab, ContextLength: Context);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(Vocab), type, std: 0.05f);
        foreach (int width in Avx512BW.IsSupported ? new[] { 256, 512 } : [256])
        {
            var kernels = new KernelOptions { Path = KernelPath.Vector256, PackedWidth = width };
            using (var model = Model.Load(path, null, new ModelOptions { Kernels = kernels }))
                Assert.All(model.Weights.Layers, l => Assert.True(l.W2.IsPacked && !l.W1.IsPacked && !l.Wq.IsPacked));
            var expected = Logits(path, new ModelOptions { Kernels = kernels, PackWeights = false });
            AssertBitIdentical(expected, Logits(path, new ModelOptions { Kernels = kernels }), $"{type} down projections in panels, {width} bits");
        }
    }

    /// <summary>An F16 down projection with an infinity cannot go in panels (their loop assumes finite halves): the load
    /// leaves it in its file layout and says so once, naming it, while the other layer's goes in panels.</summary>
    [FactNeeds(Cpu.Avx2)]
    public void AnF16MatrixWithAnInfinityStaysInItsFileLayoutAndIsCounted()
    {
        using var dir = new TempDir();
        string source = dir.File("long-rows.gguf"), path = dir.File("infinity.gguf");
        var config = new LlamaConfig(Dim: 64, HiddenDim: 4160, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: Vocab, ContextLength: Context);
        TestModels.WriteRandomLlama(source, config, TestModels.SmallVocabulary(Vocab), GgmlType.F16, std: 0.05f);
        TestModels.CopyGguf(source, path, tensor: (t, data) =>
        {
            if (t.Name == "blk.1.ffn_down.weight") System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 * 4150), 0x7c00);
            return data;
        });
        var log = new LogRecorder();
        using var model = Model.Load(path, null, new ModelOptions { Logger = log, Kernels = new KernelOptions { Path = KernelPath.Vector256 } });
        Assert.True(model.Weights.Layers[0].W2.IsPacked);
        Assert.False(model.Weights.Layers[1].W2.IsPacked);
        var fallback = Assert.Single(model.Weights.KernelFallbacks);
        Assert.Contains("blk.1.ffn_down.weight: F16 64x4160 stays in its file layout (a value is infinite or NaN)", fallback);
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains(fallback));
    }

    /// <summary>A model loaded on other kernels runs on them: the scalar reference packs nothing (only the 256-bit path
    /// reads packed weights), and its logits agree with the fast path's to float rounding (attention and softmax sum in
    /// another order; the quantized products are the same bits).</summary>
    [FactNeeds(Cpu.Avx2)]
    public void AModelRunsOnTheKernelsItIsGiven()
    {
        using var dir = new TempDir();
        string path = WriteQ4_0Model(dir);
        var scalar = new ModelOptions { Kernels = KernelOptions.Parse("scalar") };
        using (var model = Model.Load(path, null, scalar))
        {
            Assert.Null(model.Weights.PackedStorage);
            Assert.All(model.Weights.Layers, l => Assert.False(l.Wq.IsPacked || l.W2.IsPacked));
        }
        var expected = Logits(path, new ModelOptions());
        var actual = Logits(path, scalar);
        float scale = expected.Max(MathF.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-4f * scale, $"logit {i}: scalar kernels {actual[i]}, fast ones {expected[i]}");
    }

    /// <summary>Collects what a model load logs.</summary>
    private sealed class LogRecorder : ILogger
    {
        public List<(LogLevel Level, string Message)> Entries { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((logLevel, formatter(state, exception)));
    }

    /// <summary>An output head of 300 rows (not whole octets) cannot be packed: the load says so once, with the matrix's
    /// name and the reason, and counts it; the kernel choice is logged once too.</summary>
    [FactNeeds(Cpu.Avx2)]
    public void AMatrixPackingCannotTakeIsLoggedOnceAndCounted()
    {
        using var dir = new TempDir();
        string path = dir.File("q8_0.gguf");
        var config = new LlamaConfig(Dim: 256, HiddenDim: 512, Layers: 2, Heads: 4, KvHeads: 4, VocabSize: 300, ContextLength: 32);
        TestModels.WriteRandomLlama(path, config, TestModels.SmallVocabulary(300), GgmlType.Q8_0, std: 0.05f);
        var log = new LogRecorder();
        using var model = Model.Load(path, null, new ModelOptions { Logger = log });
        var fallback = Assert.Single(model.Weights.KernelFallbacks);
        Assert.Contains("output.weight", fallback);
        Assert.Contains("300 rows, not a multiple of 8", fallback);
        Assert.False(model.Weights.Output.IsPacked);
        Assert.True(model.Weights.Layers[0].Wq.IsPacked);
        var info = Assert.Single(log.Entries, e => e.Level == LogLevel.Information);
        Assert.Contains(KernelOptions.Best.ToString(), info.Message);
        var warning = Assert.Single(log.Entries, e => e.Level == LogLevel.Warning);
        Assert.Contains(fallback, warning.Message);
        Assert.Equal(2, log.Entries.Count);
    }

    /// <summary>A model whose every Q4_0 matrix packs has no fallback and logs no warning.</summary>
    [FactNeeds(Cpu.Avx2)]
    public void AModelThatPacksWhollyHasNoFallback()
    {
        using var dir = new TempDir();
        string path = WriteQ4_0Model(dir);
        var log = new LogRecorder();
        using var model = Model.Load(path, null, new ModelOptions { Logger = log });
        Assert.Empty(model.Weights.KernelFallbacks);
        Assert.DoesNotContain(log.Entries, e => e.Level == LogLevel.Warning);
    }
}
