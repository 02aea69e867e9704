using System.Security.Cryptography;
using System.Text;

namespace ClockLM.Models;

/// <summary>
/// A fingerprint of a model file, for data that only that model can use (saved KV caches): SHA-256 over the file's
/// size and, for a GGUF file, its tensor table (name, type, shape, offset of every tensor) and the first 4 KiB of each
/// tensor's data, so two files of one architecture with other weights differ; another format's file is hashed whole.
/// LoRA adapters the model runs with (<see cref="Model.Lora"/>) enter it through their
/// <see cref="LoraAdapters.Fingerprint"/>: the same file under other adapters is another model.
/// Reads a few megabytes at most for a GGUF file, whatever its size.
/// </summary>
public static class ModelIdentity
{
    /// <summary>Bytes of each tensor's data that enter the hash.</summary>
    public const int SampleBytes = 4096;

    /// <summary>The fingerprint of <paramref name="model"/>'s file (32 bytes) under the adapters it runs with.</summary>
    public static byte[] Of(Model model) => Of(model, model?.Lora);

    /// <summary>The fingerprint of <paramref name="model"/>'s file (32 bytes) under <paramref name="lora"/> (a
    /// processor's own adapters, <see cref="Transformer.Lora"/>); adapters that apply nothing count as none.</summary>
    public static byte[] Of(Model model, LoraAdapters? lora)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        if (lora is { PairCount: > 0 }) hash.AppendData(lora.Fingerprint);
        if (model.Gguf is not { } file)
        {
            using var stream = File.OpenRead(model.Path);
            hash.AppendData(SHA256.HashData(stream));
            return hash.GetHashAndReset();
        }
        hash.AppendData(BitConverter.GetBytes(model.FileBytes));
        foreach (var tensor in file.Tensors)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(tensor.Name));
            hash.AppendData(BitConverter.GetBytes((int)tensor.Type));
            foreach (long d in tensor.Dimensions) hash.AppendData(BitConverter.GetBytes(d));
            hash.AppendData(BitConverter.GetBytes(tensor.Offset));
            var data = file.GetTensorData(tensor);
            hash.AppendData(data[..(int)Math.Min(SampleBytes, data.Length)]);
        }
        return hash.GetHashAndReset();
    }
}
