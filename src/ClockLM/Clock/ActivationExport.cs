using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using ClockLM.Models;

namespace ClockLM.Clock;

/// <summary>What <see cref="ActivationExport.Write"/> wrote.</summary>
/// <param name="Prompts">Prompts run.</param>
/// <param name="Positions">Token positions in all (the rows of every tensor).</param>
/// <param name="Bytes">Size of the file.</param>
public sealed record ActivationExportSummary(int Prompts, long Positions, long Bytes);

/// <summary>
/// Activations to disk, for analysis elsewhere: runs prompts through a model and streams the activations at chosen
/// hook points into one safetensors file, readable by Python's <c>safetensors</c> (and so by numpy and PyTorch):
/// one F32 tensor per point named as the point (<c>blocks.3.hook_resid_post</c>), (positions, width), every prompt's
/// tokens one after another; <c>token_ids</c>, I32 (positions); and <c>prompt_offsets</c>, I64 (prompts + 1), where
/// prompt i's rows are [offsets[i], offsets[i+1]).
/// </summary>
/// <remarks>
/// A safetensors file begins with its header (every tensor's shape and byte range), so the prompts are read twice:
/// once to count their tokens (the shapes), once to run them. Each prompt's activations are written to their places in
/// the file as soon as it has run, so memory holds one prompt's activations whatever the number of prompts. The file
/// is written under a temporary name and renamed when complete.
/// </remarks>
public static class ActivationExport
{
    /// <summary>
    /// Runs each prompt of <paramref name="prompts"/> (token ids, each from position 0; enumerated twice) on
    /// <paramref name="transformer"/> and writes the activations at <paramref name="points"/> to <paramref name="path"/>.
    /// </summary>
    /// <exception cref="ArgumentException">No point or no prompt, a point outside the model or of no fixed width
    /// (the attention pattern), the same point twice, or an empty prompt or one longer than the context.</exception>
    public static ActivationExportSummary Write(Transformer transformer, Func<IEnumerable<int[]>> prompts,
        IReadOnlyList<(ActivationPoint Point, int Layer)> points, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors files are little-endian; this machine is big-endian");
        var c = transformer.Config;
        if (points.Count == 0) throw new ArgumentException("no activation points to capture");
        var widths = new int[points.Count];
        for (int p = 0; p < points.Count; p++)
        {
            var (point, layer) = points[p];
            string name = ActivationPoints.Name(point, layer);
            if (layer >= c.Layers) throw new ArgumentException($"{name}: the model has layers 0..{c.Layers - 1}");
            if (point == ActivationPoint.AttentionPattern)
                throw new ArgumentException($"{name} has a width that grows with the position; capture per-head points (attn.hook_z) instead");
            if (points.Take(p).Contains(points[p])) throw new ArgumentException($"{name} is named twice");
            widths[p] = ActivationPoints.Width(point, c);
        }

        // Pass 1: the shapes.
        var lengths = new List<int>();
        foreach (int[] ids in prompts())
        {
            if (ids.Length == 0) throw new ArgumentException($"prompt {lengths.Count + 1} has no tokens");
            if (ids.Length > transformer.ContextLength)
                throw new ArgumentException($"prompt {lengths.Count + 1} is {ids.Length} tokens but the context holds {transformer.ContextLength}");
            lengths.Add(ids.Length);
        }
        if (lengths.Count == 0) throw new ArgumentException("no prompts");
        long positions = lengths.Sum(n => (long)n);

        // The header: the points' tensors, then token_ids and prompt_offsets, back to back from offset 0.
        static JsonObject Tensor(string dtype, long[] shape, long begin, long end) => new()
        {
            ["dtype"] = dtype,
            ["shape"] = new JsonArray([.. shape.Select(d => (JsonNode)d)]),
            ["data_offsets"] = new JsonArray(begin, end),
        };
        var meta = new JsonObject { ["format"] = "clocklm.activations", ["points"] = string.Join(",", points.Select(p => ActivationPoints.Name(p.Point, p.Layer))) };
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>()) meta[key] = value;
        var header = new JsonObject { ["__metadata__"] = meta };
        var starts = new long[points.Count];
        long offset = 0;
        for (int p = 0; p < points.Count; p++)
        {
            starts[p] = offset;
            long end = offset + positions * widths[p] * sizeof(float);
            header[ActivationPoints.Name(points[p].Point, points[p].Layer)] = Tensor("F32", [positions, widths[p]], offset, end);
            offset = end;
        }
        long idsStart = offset, offsetsStart = idsStart + positions * sizeof(int), dataLength = offsetsStart + (lengths.Count + 1L) * sizeof(long);
        header["token_ids"] = Tensor("I32", [positions], idsStart, offsetsStart);
        header["prompt_offsets"] = Tensor("I64", [lengths.Count + 1L], offsetsStart, dataLength);
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int headerLength = (json.Length + 7) / 8 * 8; // padded with spaces so the data starts 8-byte aligned
        long dataStart = 8 + headerLength;

        string temporary = path + ".partial";
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            {
                file.SetLength(dataStart + dataLength);
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerLength);
                file.Write(length);
                file.Write(json);
                for (int i = json.Length; i < headerLength; i++) file.WriteByte((byte)' ');

                // Pass 2: each prompt's activations, written to their rows of every tensor.
                var buffers = widths.Select(w => new float[transformer.ContextLength * w]).ToArray();
                var index = new Dictionary<(ActivationPoint, int), int>();
                for (int p = 0; p < points.Count; p++) index[points[p]] = p;
                long row = 0;
                int prompt = 0;
                foreach (int[] ids in prompts())
                {
                    if (prompt == lengths.Count || ids.Length != lengths[prompt])
                        throw new InvalidOperationException("the prompts changed between their two readings");
                    transformer.Run(ids, (point, layer, position, activation) =>
                    {
                        if (index.TryGetValue((point, layer), out int p)) activation.CopyTo(buffers[p].AsSpan(position * widths[p], widths[p]));
                    });
                    for (int p = 0; p < points.Count; p++)
                    {
                        file.Position = dataStart + starts[p] + row * widths[p] * sizeof(float);
                        file.Write(MemoryMarshal.AsBytes(buffers[p].AsSpan(0, ids.Length * widths[p])));
                    }
                    file.Position = dataStart + idsStart + row * sizeof(int);
                    file.Write(MemoryMarshal.AsBytes(ids.AsSpan()));
                    row += ids.Length;
                    prompt++;
                }
                if (prompt != lengths.Count) throw new InvalidOperationException("the prompts changed between their two readings");

                file.Position = dataStart + offsetsStart;
                long start = 0;
                var offsets = new long[lengths.Count + 1];
                for (int i = 0; i < lengths.Count; i++) (offsets[i], start) = (start, start + lengths[i]);
                offsets[^1] = start;
                file.Write(MemoryMarshal.AsBytes(offsets.AsSpan()));
            }
            File.Move(temporary, path, overwrite: true);
            return new ActivationExportSummary(lengths.Count, positions, dataStart + dataLength);
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}
