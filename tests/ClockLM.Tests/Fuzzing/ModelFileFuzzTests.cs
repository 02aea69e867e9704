using System.Buffers.Binary;
using ClockLM.Formats;
using ClockLM.Gguf;
using ClockLM.Models;
using ClockLM.Tensors;
using ClockLM.Tokenizers;
using CsCheck;
using Xunit.Abstractions;

namespace ClockLM.Tests.Fuzzing;

/// <summary>The GGUF and llama2.c readers on random bytes and on mutations of valid files: each input loads (and a
/// model that loads runs a token) or ends in the reader's typed format error, never another exception.</summary>
public sealed class ModelFileFuzzTests(ITestOutputHelper output)
{
    private static readonly Gen<ulong> Interesting = Gen.OneOf<ulong>(
        Gen.OneOf<ulong>(0UL, 1UL, 2UL, 31UL, 32UL, 255UL, 0x7FFF_FFFFUL, 0x8000_0000UL, 0xFFFF_FFFFUL, 1UL << 32, 1UL << 40, long.MaxValue, ulong.MaxValue),
        Gen.ULong);

    /// <summary>How an input is made from a valid file: raw bytes, bytes overwritten, a value written, or a truncation.</summary>
    private static readonly Gen<(int Kind, byte[] Noise, int Position, ulong Value)> Mutations =
        Gen.Select(Gen.Int[0, 3], Gen.Byte.Array[1, 64], Gen.Int[0, int.MaxValue], Interesting);

    private static void Write(string path, byte[] valid, int headerLength, (int Kind, byte[] Noise, int Position, ulong Value) m)
    {
        byte[] bytes = m.Kind switch
        {
            0 => [.. valid.AsSpan(0, 8), .. m.Noise, .. m.Noise, .. m.Noise], // a GGUF v3 header, then noise
            1 => Overwrite(valid, m.Position % headerLength, m.Noise),
            2 => Overwrite(valid, m.Position % (headerLength - 8), BitConverter.GetBytes(m.Value)),
            _ => valid[..(m.Position % valid.Length)],
        };
        File.WriteAllBytes(path, bytes);
    }

    private static byte[] Overwrite(byte[] valid, int at, byte[] data)
    {
        byte[] copy = (byte[])valid.Clone();
        data.AsSpan(0, Math.Min(data.Length, copy.Length - at)).CopyTo(copy.AsSpan(at));
        return copy;
    }

    [Fact]
    public void GgufReaderAcceptsOrRejectsEveryInputWithItsFormatError()
    {
        using var dir = FuzzBudget.Scratch();
        string valid = dir.File("valid.gguf"), path = dir.File("fuzzed.gguf");
        TestModels.WriteRandomLlama(valid, new LlamaConfig(32, 64, 2, 4, 2, 300, 16), TestModels.SmallVocabulary(300), GgmlType.Q8_0);
        byte[] bytes = File.ReadAllBytes(valid);
        int headerLength;
        using (var file = GgufFile.Open(valid)) headerLength = (int)file.DataOffset;

        FuzzBudget.Run(output, "GGUF reader", Mutations, m =>
        {
            Write(path, bytes, headerLength, m);
            try
            {
                using (var file = GgufFile.Open(path))
                    if (file.Has("tokenizer.ggml.model")) Tokenizer.Load(file).Encode("Hello world");
                using var model = Model.Load(path);
                model.CreateTransformer(4).Forward(1, 0);
            }
            catch (GgufFormatException) { }
        });
    }

    [Fact]
    public void Llama2cReaderAcceptsOrRejectsEveryInputWithItsFormatError()
    {
        using var dir = FuzzBudget.Scratch();
        string path = dir.File("fuzzed.bin"), tokenizerPath = dir.File("fuzzed-tok.bin");
        // A tiny valid checkpoint: dim 8, hidden 16, 1 layer, 2 heads, 2 kv heads, vocab 16, context 4, shared classifier.
        int[] header = [8, 16, 1, 2, 2, 16, 4];
        int floats = 16 * 8 + (8 + 8 * 8 + 2 * 8 * 8 + 8 * 8 + 8 + 3 * 8 * 16) + 8 + 4 * 4;
        byte[] valid = new byte[7 * 4 + 4 * floats];
        for (int i = 0; i < 7; i++) BinaryPrimitives.WriteInt32LittleEndian(valid.AsSpan(4 * i), header[i]);
        File.WriteAllBytes(path, valid);
        using (var ok = Llama2cCheckpoint.Open(path)) Assert.Equal(16, ok.Config.VocabSize);
        byte[] tokenizer = File.ReadAllBytes(SharedData.Tok512)[..512];

        FuzzBudget.Run(output, "llama2.c reader", Mutations, m =>
        {
            Write(path, valid, 7 * 4, m with { Kind = m.Kind == 2 ? 1 : m.Kind });
            try
            {
                using var checkpoint = Llama2cCheckpoint.Open(path);
            }
            catch (ModelFormatException) { }
            File.WriteAllBytes(tokenizerPath, Overwrite(tokenizer, m.Position % tokenizer.Length, m.Noise)[..(m.Kind == 3 ? m.Position % 512 : 512)]);
            try
            {
                Llama2cTokenizer.Load(tokenizerPath, 16).Encode("hi");
            }
            catch (ModelFormatException) { }
        });
    }
}
