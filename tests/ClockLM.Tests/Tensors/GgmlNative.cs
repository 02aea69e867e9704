using System.Runtime.InteropServices;
using ClockLM.Tensors;

namespace ClockLM.Tests.Tensors;

/// <summary>
/// ggml's own C reference quantizers, called from the libggml-base that LLamaSharp ships. The build without AVX is
/// used: it is compiled without FMA, so the compiler cannot fuse the reference's multiply-adds and the C code
/// rounds exactly as written, which is what ClockLM's quantizers reproduce.
/// </summary>
internal static unsafe class GgmlNative
{
    private static readonly nint Library = NativeLibrary.Load(
        Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "noavx", "libggml-base.so"));

    private static nint Export(string name) => NativeLibrary.GetExport(Library, name);

    private static string Suffix(GgmlType type) => type.ToString().ToLowerInvariant().Replace("_k", "_K");

    /// <summary>ggml's quantize_row_{type}_ref over a whole row.</summary>
    public static byte[] QuantizeRow(GgmlType type, float[] x)
    {
        var fn = (delegate* unmanaged<float*, byte*, long, void>)Export($"quantize_row_{Suffix(type)}_ref");
        var y = new byte[GgmlTypeInfo.RowBytes(type, x.Length)];
        fixed (float* px = x) fixed (byte* py = y) fn(px, py, x.Length);
        return y;
    }

    /// <summary>ggml's dequantize_row_{type}.</summary>
    public static float[] DequantizeRow(GgmlType type, byte[] q, int count)
    {
        var fn = (delegate* unmanaged<byte*, float*, long, void>)Export($"dequantize_row_{Suffix(type)}");
        var y = new float[count];
        fixed (byte* pq = q) fixed (float* py = y) fn(pq, py, count);
        return y;
    }

    public static ushort Fp32ToFp16(float x) => ((delegate* unmanaged<float, ushort>)Export("ggml_fp32_to_fp16"))(x);

    public static ushort Fp32ToBf16(float x) => ((delegate* unmanaged<float, ushort>)Export("ggml_fp32_to_bf16"))(x);
}
