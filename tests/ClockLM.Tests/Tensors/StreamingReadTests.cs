using ClockLM.Clock;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>The roofline's read loops read every byte: each one's XOR equals the word-by-word reference, whatever the
/// prefetch distance and size; and a measurement taken the old way is measured again rather than trusted.</summary>
public class StreamingReadTests
{
    [Theory]
    [InlineData(256)]
    [InlineData(512 + 256)]
    [InlineData(64 * 1024)]
    [InlineData(1 << 20)]
    public unsafe void EveryReadLoopGivesTheReferenceXor(int bytes)
    {
        var data = new byte[bytes];
        new Random(bytes).NextBytes(data);
        fixed (byte* p = data)
        {
            ulong expected = StreamingRead.XorScalar(p, bytes);
            Assert.NotEqual(0UL, expected);
            foreach (var (name, ahead) in Roofline.ReadLoops)
                Assert.True(expected == StreamingRead.Xor(p, bytes, ahead), $"{name} over {bytes} bytes");
            // A word changed anywhere, the last one included, changes every loop's result.
            data[bytes - 3] ^= 0x40;
            foreach (var (name, ahead) in Roofline.ReadLoops)
                Assert.True((expected ^ (0x40UL << 40)) == StreamingRead.Xor(p, bytes, ahead), $"{name}: the last word was not read");
        }
    }

    [Fact]
    public unsafe void ABufferThatIsNotWholeStepsIsRefused()
    {
        var data = new byte[300];
        fixed (byte* p = data)
        {
            byte* q = p;
            var e = Assert.Throws<ArgumentException>(() => StreamingRead.Xor(q, 300, 0));
            Assert.Contains("multiple of 256", e.Message);
        }
    }

    [Fact]
    public void ReadBandwidthNamesTheLoopThatReachedIt()
    {
        var point = Roofline.ReadBandwidth(threads: 2, bufferBytes: 8 << 20, runs: 2);
        Assert.Equal(2, point.Threads);
        Assert.InRange(point.GigabytesPerSecond, 0.01, 10000);
        Assert.Contains(point.Read, Roofline.ReadLoops.Select(l => l.Name));
    }

    [Fact]
    public void ACacheOfTheOldMethodIsMeasuredAgain()
    {
        using var dir = new TempDir();
        string path = dir.File("roofline.json");
        File.WriteAllText(path, """
            { "bandwidth": [ { "threads": 1, "gigabytes_per_second": 4.16 } ], "peak_gflops": 52.5, "peak_gflops_one_thread": 26.25,
              "buffer_bytes": 1048576, "measured_at": "2026-01-01T00:00:00Z", "processor_count": 1 }
            """);
        Assert.Equal(0, Roofline.Load(path)!.Method);
        var roofline = Roofline.LoadOrMeasure(path, maxThreads: 1, bufferBytes: 8 << 20);
        Assert.Equal(Roofline.CurrentMethod, roofline.Method);
        Assert.NotEqual(new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc), roofline.MeasuredAt);
        Assert.Equal(Roofline.CurrentMethod, Roofline.Load(path)!.Method); // and saved
        Assert.NotNull(Roofline.Load(path)!.Bandwidth[0].Read);
    }
}
