using ClockLM.Gguf;
using ClockLM.Tensors;

namespace ClockLM.Models;

/// <summary>Re-writes a GGUF model with its weight matrices in the types a <see cref="QuantizationScheme"/> picks.</summary>
public static class ModelQuantizer
{
    /// <summary>Reads <paramref name="inputPath"/> and writes <paramref name="outputPath"/>: metadata copied (with
    /// <c>general.file_type</c> updated), 1-D tensors unchanged, matrices dequantized row by row and re-quantized.
    /// <paramref name="progress"/> hears the fraction of the output's tensor bytes written (0 to 1).</summary>
    public static void Quantize(string inputPath, string outputPath, QuantizationScheme scheme, IProgress<double>? progress = null)
    {
        using var input = GgufFile.Open(inputPath);
        string arch = input.GetStringOrNull("general.architecture") ?? "";
        int layers = (int)Math.Clamp(input.GetInteger($"{arch}.block_count", 0), 0, int.MaxValue);

        var writer = new GgufWriter { Alignment = input.Alignment };
        writer.CopyMetadata(input, key => key != "general.alignment");
        writer.Set("general.file_type", scheme.FileType);
        foreach (var tensor in input.Tensors)
        {
            bool isMatrix = tensor.Dimensions.Length >= 2 && tensor.Type is not (GgmlType.I8 or GgmlType.I16 or GgmlType.I32 or GgmlType.I64 or GgmlType.F64);
            if (!isMatrix)
            {
                var bytes = input.GetTensorData(tensor).ToArray();
                writer.AddTensor(tensor.Name, tensor.Type, tensor.Dimensions, bytes);
                continue;
            }
            if (!Tensors.Quantize.IsSupported(tensor.Type))
                throw new GgufFormatException(inputPath, $"tensor '{tensor.Name}' has type {tensor.Type}, which ClockLM cannot read back to re-quantize");
            var view = input.GetView(tensor);
            GgmlType type = scheme.TypeFor(tensor.Name, view.Cols, layers);
            writer.AddTensor(tensor.Name, type, tensor.Dimensions, (r, values) => view.DequantizeRow(r, values));
        }
        writer.Write(outputPath, progress);
    }
}
