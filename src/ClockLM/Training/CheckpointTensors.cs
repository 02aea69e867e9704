using System.Runtime.InteropServices;

namespace ClockLM.Training;

/// <summary>
/// The part every checkpoint shares: the trained tensors, AdamW's moments of each and the optimiser's step count.
/// Layout: count, then per tensor its floats (length, values), a flag, and when set the first and second moments
/// (length, values each); then Adam's t.
/// </summary>
internal static class CheckpointTensors
{
    /// <summary>Writes <paramref name="weights"/>, their <paramref name="moments"/> and <paramref name="iterations"/>.</summary>
    public static void Write(BinaryWriter writer, IReadOnlyList<float[]> weights, IReadOnlyList<(float[] M, float[] V)?> moments, long iterations)
    {
        writer.Write(weights.Count);
        for (int i = 0; i < weights.Count; i++)
        {
            WriteFloats(writer, weights[i]);
            writer.Write(moments[i].HasValue);
            if (moments[i] is { } m)
            {
                WriteFloats(writer, m.M);
                WriteFloats(writer, m.V);
            }
        }
        writer.Write(iterations);
    }

    /// <summary>Reads what <see cref="Write"/> wrote.</summary>
    /// <exception cref="CheckpointFormatException">A count the bytes left cannot hold, or negative iterations.</exception>
    /// <exception cref="EndOfStreamException">The file ends early.</exception>
    public static (float[][] Weights, (float[] M, float[] V)?[] Moments, long Iterations) Read(BinaryReader reader, string path)
    {
        int count = reader.ReadInt32();
        long left = reader.BaseStream.Length - reader.BaseStream.Position;
        const int leastBytes = 4 + 1; // a length and the moments flag
        if (count < 0 || count > left / leastBytes)
            throw new CheckpointFormatException(path, $"the checkpoint claims {count} tensors; the {left} bytes left hold at most {left / leastBytes}");
        var weights = new float[count][];
        var moments = new (float[], float[])?[count];
        for (int i = 0; i < count; i++)
        {
            weights[i] = ReadFloats(reader);
            if (reader.ReadBoolean()) moments[i] = (ReadFloats(reader), ReadFloats(reader));
        }
        long iterations = reader.ReadInt64();
        if (iterations < 0) throw new CheckpointFormatException(path, $"the optimizer iterations are {iterations}; expected 0 or more");
        return (weights, moments, iterations);
    }

    private static void WriteFloats(BinaryWriter writer, float[] values)
    {
        writer.Write(values.Length);
        writer.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private static float[] ReadFloats(BinaryReader reader)
    {
        int length = reader.ReadInt32();
        if (length < 0 || length > (reader.BaseStream.Length - reader.BaseStream.Position) / 4) throw new EndOfStreamException();
        var values = new float[length];
        var bytes = MemoryMarshal.AsBytes(values.AsSpan());
        if (reader.Read(bytes) != bytes.Length) throw new EndOfStreamException();
        return values;
    }
}
