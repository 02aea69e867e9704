using System.IO.MemoryMappedFiles;

namespace ClockLM.Tensors;

/// <summary>A read-only memory-mapped file whose regions are handed out as <see cref="TensorView"/>s without copying.</summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;

    /// <summary>Maps <paramref name="path"/> (which must not be empty).</summary>
    public MappedFile(string path)
    {
        Path = path;
        Length = new FileInfo(path).Length;
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
    }

    /// <summary>The mapped file's path.</summary>
    public string Path { get; }

    /// <summary>File length in bytes.</summary>
    public long Length { get; }

    /// <summary>The first byte of the mapping; valid until <see cref="Dispose"/>.</summary>
    internal byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return _base;
        }
    }

    /// <summary>The bytes [offset, offset + length).</summary>
    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        Check(offset, length);
        return new ReadOnlySpan<byte>(_base + offset, length);
    }

    /// <summary>A rows x cols tensor of <paramref name="type"/> starting at <paramref name="offset"/>.</summary>
    public TensorView View(long offset, GgmlType type, int rows, int cols)
    {
        Check(offset, GgmlTypeInfo.RowBytes(type, cols) * rows);
        return new TensorView(type, rows, cols, _base + offset);
    }

    private void Check(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if (offset < 0 || length < 0 || offset > Length || length > Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{Path}: region [{offset}, {offset + length}) lies outside the {Length} byte file");
    }

    /// <summary>Unmaps the file; views over it must no longer be used.</summary>
    public void Dispose()
    {
        if (_base != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _base = null;
        }
        _view.Dispose();
        _map.Dispose();
    }
}
