using ClockLM.Formats;
using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;

namespace ClockLM.Tests.Gguf;

/// <summary>Thousands of random mutations and truncations of valid model files: each ends in a valid load (and a
/// forward pass that does not crash) or in the typed format error — never another exception or a hang.</summary>
public class GgufFuzzTests
{
    private static readonly ulong[] Interesting = [0, 1, 2, 31, 32, 33, 255, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1UL << 32, 1UL << 40, long.MaxValue, ulong.MaxValue];

    [Fact]
    public void MutatedGgufModelsLoadOrFailWithTheFormatError()
    {
        using var dir = new TempDir();
        string valid = dir.File("valid.gguf");
        var config = new LlamaConfig(Dim: 32, HiddenDim: 64, Layers: 2, Heads: 4, KvHeads: 2, VocabSize: 40, ContextLength: 16);
        TestModels.WriteRandomLlama(valid, config, TestModels.SmallVocabulary(40), GgmlType.F32);
        byte[] original = File.ReadAllBytes(valid);
        int headerLength;
        using (var file = GgufFile.Open(valid)) headerLength = (int)file.DataOffset;

        var rng = new Random(20261128);
        string path = dir.File("mutated.gguf");
        int loaded = 0, rejected = 0;
        for (int iteration = 0; iteration < 3000; iteration++)
        {
            byte[] bytes = (byte[])original.Clone();
            switch (rng.Next(4))
            {
                case 0: // flip a few bytes in the header, metadata or tensor table
                    for (int k = rng.Next(1, 6); k > 0; k--) bytes[rng.Next(headerLength)] ^= (byte)rng.Next(1, 256);
                    break;
                case 1: // an interesting 32- or 64-bit value anywhere in the header
                {
                    int at = rng.Next(headerLength - 8);
                    ulong v = Interesting[rng.Next(Interesting.Length)];
                    if (rng.Next(2) == 0) BitConverter.TryWriteBytes(bytes.AsSpan(at), v);
                    else BitConverter.TryWriteBytes(bytes.AsSpan(at), (uint)v);
                    break;
                }
                case 2: // truncation
                    Array.Resize(ref bytes, rng.Next(bytes.Length));
                    break;
                default: // random bytes over a random stretch
                {
                    int at = rng.Next(headerLength), n = rng.Next(1, 64);
                    for (int i = at; i < Math.Min(bytes.Length, at + n); i++) bytes[i] = (byte)rng.Next(256);
                    break;
                }
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                using var model = Model.Load(path);
                var transformer = model.CreateTransformer(8);
                transformer.Forward(Math.Min(1, model.Config.VocabSize - 1), 0);
                model.Tokenizer.Encode("the ant");
                loaded++;
            }
            catch (GgufFormatException e)
            {
                Assert.StartsWith(path, e.Message);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iteration}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
        }
        Assert.True(rejected > 1000, $"only {rejected} of 3000 mutations were rejected");
        Assert.True(loaded > 0, "no mutation loaded: the test only sees one path");
    }

    [Fact]
    public void MutatedLlama2cHeadersLoadOrFailWithTheFormatError()
    {
        using var dir = new TempDir();
        byte[] original = File.ReadAllBytes(SharedData.Stories260K);
        string path = dir.File("mutated.bin");
        var rng = new Random(7);
        for (int iteration = 0; iteration < 300; iteration++)
        {
            byte[] bytes = (byte[])original.Clone();
            int field = rng.Next(7);
            int value = rng.Next(3) switch { 0 => rng.Next(), 1 => -rng.Next(), _ => (int)Interesting[rng.Next(Interesting.Length)] };
            BitConverter.TryWriteBytes(bytes.AsSpan(4 * field), value);
            if (rng.Next(4) == 0) Array.Resize(ref bytes, rng.Next(bytes.Length));
            File.WriteAllBytes(path, bytes);
            try
            {
                using var ckpt = Llama2cCheckpoint.Open(path);
            }
            catch (ModelFormatException e)
            {
                Assert.StartsWith(path, e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iteration}: field {field} = {value}: {e.GetType().Name}: {e.Message}");
            }
        }
    }
}
