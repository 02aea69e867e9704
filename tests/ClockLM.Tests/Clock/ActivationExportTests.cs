using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using ClockLM.Clock;
using ClockLM.Models;
using ClockLM.Tests.Cli;

namespace ClockLM.Tests.Clock;

/// <summary>`clocklm capture` and <see cref="ActivationExport"/>: safetensors files checked against the format's rules
/// (an 8-byte little-endian header length, a JSON header, tensors whose byte ranges tile the data without holes), and
/// against the activations captured in memory.</summary>
public class ActivationExportTests
{
    [Fact]
    public void CaptureWritesOneTensorPerPointWithTokenIdsAndPromptOffsets()
    {
        using var dir = new TempDir();
        string[] prompts = ["Once upon a time", "", "Tom had a ball.\\nHe threw it.", "The sun"];
        File.WriteAllLines(dir.File("prompts.txt"), prompts);
        string output = dir.File("acts.safetensors");
        var result = ClockLMProcess.Run("capture", "-m", SharedData.Stories260K, "--data", dir.File("prompts.txt"),
            "--points", "blocks.3.hook_resid_post, blocks.0.attn.hook_z,blocks.2.mlp.hook_post", "--out", output);
        Assert.True(result.ExitCode == 0, result.StdErr);

        using var model = Model.Load(SharedData.Stories260K);
        var c = model.Config;
        int[][] ids = new[] { "Once upon a time", "Tom had a ball.\nHe threw it.", "The sun" }.Select(p => model.Tokenizer.Encode(p).ToArray()).ToArray();
        int positions = ids.Sum(p => p.Length);
        Assert.Contains($"3 points, {positions} positions of 3 prompts", result.StdOut);

        var file = SafetensorsFile.Read(output);
        Assert.Equal("clocklm.activations", file.Metadata["format"]);
        Assert.Equal("blocks.3.hook_resid_post,blocks.0.attn.hook_z,blocks.2.mlp.hook_post", file.Metadata["points"]);
        Assert.Equal($"F32 [{positions}, {c.Dim}]", file.Shape("blocks.3.hook_resid_post"));
        Assert.Equal($"F32 [{positions}, {c.QDim}]", file.Shape("blocks.0.attn.hook_z"));
        Assert.Equal($"F32 [{positions}, {c.HiddenDim}]", file.Shape("blocks.2.mlp.hook_post"));
        Assert.Equal($"I32 [{positions}]", file.Shape("token_ids"));
        Assert.Equal("I64 [4]", file.Shape("prompt_offsets"));
        Assert.Equal(ids.SelectMany(p => p), file.Int32s("token_ids"));
        Assert.Equal([0L, ids[0].Length, ids[0].Length + ids[1].Length, positions], file.Int64s("prompt_offsets"));

        float[] resid = file.Floats("blocks.3.hook_resid_post"), z = file.Floats("blocks.0.attn.hook_z"), post = file.Floats("blocks.2.mlp.hook_post");
        int row = 0;
        foreach (int[] prompt in ids)
        {
            var capture = ActivationCapture.Run(model.CreateTransformer(), prompt);
            for (int p = 0; p < prompt.Length; p++, row++)
            {
                Assert.Equal(capture.Get("blocks.3.hook_resid_post", p), resid.AsSpan(row * c.Dim, c.Dim).ToArray());
                Assert.Equal(capture.Get("blocks.0.attn.hook_z", p), z.AsSpan(row * c.QDim, c.QDim).ToArray());
                Assert.Equal(capture.Get("blocks.2.mlp.hook_post", p), post.AsSpan(row * c.HiddenDim, c.HiddenDim).ToArray());
            }
        }
        Assert.False(File.Exists(output + ".partial"));
    }

    [Fact]
    public void ThePromptsAreReadTwiceAndNotKept()
    {
        using var dir = new TempDir();
        using var model = Model.Load(SharedData.Stories260K);
        var t = model.CreateTransformer(32);
        int readings = 0, mostAlive = 0;
        // 1,000 prompts made one at a time; every so often, how many of those already handed over are still reachable.
        IEnumerable<int[]> Prompts()
        {
            readings++;
            var handed = new List<WeakReference>();
            for (int i = 0; i < 1000; i++)
            {
                if (i % 250 == 249)
                {
                    GC.Collect();
                    mostAlive = Math.Max(mostAlive, handed.Count(w => w.IsAlive));
                }
                int[] prompt = [1, 3 + i % 500, 3 + i * 7 % 500];
                handed.Add(new WeakReference(prompt));
                yield return prompt;
            }
        }
        var summary = ActivationExport.Write(t, Prompts, [(ActivationPoint.ResidPost, 1)], dir.File("a.safetensors"));
        Assert.Equal((1000, 3000L, 2), (summary.Prompts, summary.Positions, readings));
        Assert.True(mostAlive <= 2, $"{mostAlive} prompts were still held");
        var file = SafetensorsFile.Read(dir.File("a.safetensors"));
        Assert.Equal(3000 * 64, file.Floats("blocks.1.hook_resid_post").Length);
        Assert.Equal(new FileInfo(dir.File("a.safetensors")).Length, summary.Bytes);
    }

    [Fact]
    public void PointsWithoutAFixedWidthOrOutsideTheModelAreRefused()
    {
        using var dir = new TempDir();
        using var model = Model.Load(SharedData.Stories260K);
        var t = model.CreateTransformer(32);
        IEnumerable<int[]> Prompts() => [[1, 5, 6]];
        Assert.Contains("grows with the position", Assert.Throws<ArgumentException>(() =>
            ActivationExport.Write(t, Prompts, [(ActivationPoint.AttentionPattern, 0)], dir.File("x"))).Message);
        Assert.Contains("blocks.5.hook_resid_post: the model has layers 0..4", Assert.Throws<ArgumentException>(() =>
            ActivationExport.Write(t, Prompts, [(ActivationPoint.ResidPost, 5)], dir.File("x"))).Message);
        Assert.Contains("prompt 1 is 40 tokens", Assert.Throws<ArgumentException>(() =>
            ActivationExport.Write(t, () => [new int[40]], [(ActivationPoint.ResidPost, 1)], dir.File("x"))).Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }
}

/// <summary>A safetensors file read by the format's rules alone (not by ClockLM's reader): 8 bytes of little-endian header
/// length N, N bytes of UTF-8 JSON (an object; "__metadata__" maps strings to strings; every other key is a tensor with
/// dtype, shape and data_offsets relative to the data), then the data, which the tensors' byte ranges cover exactly.</summary>
public sealed class SafetensorsFile
{
    private readonly byte[] _data;
    private readonly Dictionary<string, (string DType, long[] Shape, long Begin, long End)> _tensors = new();

    private SafetensorsFile(byte[] data) => _data = data;

    public Dictionary<string, string> Metadata { get; } = new();

    public static SafetensorsFile Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.True(n <= (ulong)bytes.Length - 8, "the header runs past the end of the file");
        var header = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes, 8, (int)n);
        Assert.StartsWith("{", header);
        Assert.Equal(0, (8 + (int)n) % 8); // the data starts 8-byte aligned (the format recommends it)
        var file = new SafetensorsFile(bytes[(8 + (int)n)..]);
        using var json = JsonDocument.Parse(header);
        foreach (var entry in json.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__")
            {
                foreach (var m in entry.Value.EnumerateObject()) file.Metadata[m.Name] = m.Value.GetString()!;
                continue;
            }
            string dtype = entry.Value.GetProperty("dtype").GetString()!;
            long[] shape = entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            long[] offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            int size = dtype switch { "F32" or "I32" => 4, "I64" => 8, _ => throw new InvalidDataException($"unexpected dtype {dtype}") };
            Assert.Equal(2, offsets.Length);
            Assert.Equal(shape.Aggregate(1L, (a, b) => a * b) * size, offsets[1] - offsets[0]);
            file._tensors[entry.Name] = (dtype, shape, offsets[0], offsets[1]);
        }
        long at = 0;
        foreach (var t in file._tensors.Values.OrderBy(t => t.Begin))
        {
            Assert.Equal(at, t.Begin); // no hole, no overlap
            at = t.End;
        }
        Assert.Equal(file._data.Length, at);
        return file;
    }

    /// <summary>dtype and shape as text, e.g. "F32 [25, 64]".</summary>
    public string Shape(string name) => $"{_tensors[name].DType} [{string.Join(", ", _tensors[name].Shape)}]";

    public float[] Floats(string name) => Slice<float>(name, "F32");
    public int[] Int32s(string name) => Slice<int>(name, "I32");
    public long[] Int64s(string name) => Slice<long>(name, "I64");

    private T[] Slice<T>(string name, string dtype) where T : struct
    {
        var t = _tensors[name];
        Assert.Equal(dtype, t.DType);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(_data.AsSpan((int)t.Begin, (int)(t.End - t.Begin))).ToArray();
    }
}
