using System.Runtime.Intrinsics;

namespace ClockLM.Tensors;

/// <summary>How the attention kernels read one KV-cache row format: value i, or values i..i+7 (i a multiple of 8, so
/// that in Q8_0 the eight lie in one block). Every value comes out as the exact float the row stands for.</summary>
internal unsafe interface ICacheRowFormat
{
    static abstract float Load(byte* row, int i);
    static abstract Vector256<float> Load8(byte* row, int i);
}
