using System.Runtime.InteropServices;
using System.Text;

namespace ClockLM.Tests.Oracle;

/// <summary>
/// llama.cpp's control-vector loading, through llama.cpp's own GGUF reader (ggml-base, the library LLamaSharp loaded):
/// the rules of <c>common_control_vector_load_one</c> (from llama.cpp's common library, which LLamaSharp does not ship),
/// applied to what <c>gguf_init_from_file</c> parses. Every tensor must be <c>direction.N</c> with N ≥ 1, one-dimensional
/// F32, all of one length; direction N goes to offset n_embd × (N - 1) of the buffer
/// <c>llama_set_adapter_cvec</c> takes, scaled by the file's strength and summed over files.
/// </summary>
public static unsafe class LlamaCppControlVector
{
    /// <summary>What llama.cpp read from a control-vector file.</summary>
    /// <param name="NEmbd">Length of every direction.</param>
    /// <param name="Data">n_embd × (highest layer) floats, layer 1 first, scaled and summed.</param>
    /// <param name="ModelHint">The file's <c>controlvector.model_hint</c>, as llama.cpp's GGUF reader read it.</param>
    /// <param name="LayerCount">The file's <c>controlvector.layer_count</c> (-1 when absent).</param>
    public sealed record Loaded(int NEmbd, float[] Data, string? ModelHint, int LayerCount);

    [StructLayout(LayoutKind.Sequential)]
    private struct GgufInitParams
    {
        public byte NoAlloc;
        public IntPtr* Context;
    }

    /// <summary>Loads <paramref name="files"/> (path, strength) as llama.cpp does; needs an open <see cref="LlamaCppOracle"/>
    /// (so the native library is loaded). Throws with llama.cpp's reason when it would refuse a file.</summary>
    public static Loaded Load(params (string Path, float Strength)[] files)
    {
        int nEmbd = -1;
        var data = new List<float>();
        string? hint = null;
        int layerCount = -1;
        foreach (var (path, strength) in files)
        {
            var one = LoadOne(path, strength);
            if (nEmbd != -1 && one.NEmbd != nEmbd) throw new InvalidDataException($"{path}: control vectors do not match previous dimensions");
            nEmbd = one.NEmbd;
            while (data.Count < one.Data.Length) data.Add(0f);
            for (int i = 0; i < one.Data.Length; i++) data[i] += one.Data[i];
            (hint, layerCount) = (one.ModelHint, one.LayerCount);
        }
        return new Loaded(nEmbd, data.ToArray(), hint, layerCount);
    }

    private static Loaded LoadOne(string path, float strength)
    {
        var f = Functions.Value;
        IntPtr ggml = IntPtr.Zero;
        byte[] name = Encoding.UTF8.GetBytes(path + "\0");
        IntPtr gguf;
        fixed (byte* p = name)
            gguf = f.InitFromFile(p, new GgufInitParams { NoAlloc = 0, Context = &ggml });
        if (gguf == IntPtr.Zero) throw new InvalidDataException($"{path}: llama.cpp's GGUF reader refused the file");
        try
        {
            long tensors = f.TensorCount(gguf);
            int nEmbd = -1;
            var data = new List<float>();
            for (long i = 0; i < tensors; i++)
            {
                IntPtr namePointer = f.TensorName(gguf, i);
                string tensorName = Marshal.PtrToStringUTF8(namePointer)!;
                int dot = tensorName.IndexOf('.');
                int layer = dot > 0 && tensorName[..dot] == "direction" && int.TryParse(tensorName[(dot + 1)..], out int l) ? l : -1;
                if (layer < 0) throw new InvalidDataException($"{path}: invalid/unparsable direction tensor layer index ({tensorName})");
                if (layer == 0) throw new InvalidDataException($"{path}: invalid (zero) direction tensor layer index");
                IntPtr tensor = f.GetTensor(ggml, (byte*)namePointer);
                if (*(int*)tensor != 0) throw new InvalidDataException($"{path}: invalid (non-F32) direction tensor type ({tensorName})");
                if (f.Dimensions(tensor) != 1) throw new InvalidDataException($"{path}: invalid (non-1D) direction tensor shape ({tensorName})");
                int count = checked((int)f.Elements(tensor));
                if (nEmbd == -1) nEmbd = count;
                else if (count != nEmbd) throw new InvalidDataException($"{path}: direction tensor does not match previous dimensions ({tensorName})");
                while (data.Count < nEmbd * layer) data.Add(0f);
                float* values = f.Data(tensor);
                for (int j = 0; j < nEmbd; j++) data[nEmbd * (layer - 1) + j] += values[j] * strength;
            }
            return new Loaded(nEmbd, data.ToArray(), String(gguf, "controlvector.model_hint"), Int32(gguf, "controlvector.layer_count"));
        }
        finally
        {
            f.Free(gguf);
            if (ggml != IntPtr.Zero) f.FreeContext(ggml);
        }
    }

    private static string? String(IntPtr gguf, string key)
    {
        byte[] k = Encoding.UTF8.GetBytes(key + "\0");
        fixed (byte* p = k)
        {
            long id = Functions.Value.FindKey(gguf, p);
            if (id < 0) return null;
            // llama.cpp aborts when a value is read as another type than it has, so the type is checked first.
            if (Functions.Value.ValueType(gguf, id) != 8) throw new InvalidDataException($"{key} is not a string");
            return Marshal.PtrToStringUTF8(Functions.Value.StringValue(gguf, id));
        }
    }

    private static int Int32(IntPtr gguf, string key)
    {
        byte[] k = Encoding.UTF8.GetBytes(key + "\0");
        fixed (byte* p = k)
        {
            long id = Functions.Value.FindKey(gguf, p);
            if (id < 0) return -1;
            if (Functions.Value.ValueType(gguf, id) != 5) throw new InvalidDataException($"{key} is not an int32");
            return Functions.Value.Int32Value(gguf, id);
        }
    }

    /// <summary>The ggml-base functions, from the copy of the library the process loaded for LLamaSharp.</summary>
    private sealed class Native
    {
        public required delegate* unmanaged<byte*, GgufInitParams, IntPtr> InitFromFile;
        public required delegate* unmanaged<IntPtr, long> TensorCount;
        public required delegate* unmanaged<IntPtr, long, IntPtr> TensorName;
        public required delegate* unmanaged<IntPtr, long, IntPtr> StringValue;
        public required delegate* unmanaged<IntPtr, long, int> Int32Value;
        public required delegate* unmanaged<IntPtr, byte*, long> FindKey;
        public required delegate* unmanaged<IntPtr, long, int> ValueType;
        public required delegate* unmanaged<IntPtr, void> Free;
        public required delegate* unmanaged<IntPtr, byte*, IntPtr> GetTensor;
        public required delegate* unmanaged<IntPtr, int> Dimensions;
        public required delegate* unmanaged<IntPtr, long> Elements;
        public required delegate* unmanaged<IntPtr, float*> Data;
        public required delegate* unmanaged<IntPtr, void> FreeContext;
    }

    private static readonly Lazy<Native> Functions = new(() =>
    {
        // The process maps the ggml-base that libllama was loaded with; use that one.
        string? path = File.ReadLines("/proc/self/maps").Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 6 && parts[5].EndsWith("/libggml-base.so", StringComparison.Ordinal))
            .Select(parts => parts[5]).FirstOrDefault()
            ?? throw new InvalidOperationException("llama.cpp's ggml-base is not loaded; open a LlamaCppOracle first");
        IntPtr lib = NativeLibrary.Load(path);
        IntPtr F(string name) => NativeLibrary.GetExport(lib, name);
        return new Native
        {
            InitFromFile = (delegate* unmanaged<byte*, GgufInitParams, IntPtr>)F("gguf_init_from_file"),
            TensorCount = (delegate* unmanaged<IntPtr, long>)F("gguf_get_n_tensors"),
            TensorName = (delegate* unmanaged<IntPtr, long, IntPtr>)F("gguf_get_tensor_name"),
            StringValue = (delegate* unmanaged<IntPtr, long, IntPtr>)F("gguf_get_val_str"),
            Int32Value = (delegate* unmanaged<IntPtr, long, int>)F("gguf_get_val_i32"),
            FindKey = (delegate* unmanaged<IntPtr, byte*, long>)F("gguf_find_key"),
            ValueType = (delegate* unmanaged<IntPtr, long, int>)F("gguf_get_kv_type"),
            Free = (delegate* unmanaged<IntPtr, void>)F("gguf_free"),
            GetTensor = (delegate* unmanaged<IntPtr, byte*, IntPtr>)F("ggml_get_tensor"),
            Dimensions = (delegate* unmanaged<IntPtr, int>)F("ggml_n_dims"),
            Elements = (delegate* unmanaged<IntPtr, long>)F("ggml_nelements"),
            Data = (delegate* unmanaged<IntPtr, float*>)F("ggml_get_data_f32"),
            FreeContext = (delegate* unmanaged<IntPtr, void>)F("ggml_free"),
        };
    });
}
