using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ClockLM.Tensors;

/// <summary>
/// F16 and BF16 matrices of long rows stored panel by panel, laid out once when a model loads: panel p holds columns
/// [2048 p, 2048 (p + 1)) of every row (the last panel the rest), one row's piece after another, and the panels follow
/// each other. The same bytes as the file's rows, in another order.
/// </summary>
/// <remarks>
/// Decoding multiplies each row with x. A row of 5632 halves (11 KB, the feed-forward's down projection of
/// tinyllama-1.1b) needs all 22 KB of x, which does not stay in a 32 KB first-level cache beside the row streaming
/// past: every row fetched x again from the second level, and one core streamed these rows at 8 GB/s against 20 for
/// rows of 2048. Taking the rows' pieces of one panel together (<see cref="HalfMatVec.F16PanelRows"/>) keeps 8 KB of x
/// cached, and in this layout those pieces are one sequential stream, which the hardware prefetchers follow; reading
/// the same pieces out of the file's rows (a piece, then a jump over the row's other columns) streamed no faster than
/// whole rows. Only rows longer than <see cref="PackedAbove"/> columns are laid out so: shorter ones, with x, fit.
/// </remarks>
internal static unsafe class HalfPanels
{
    /// <summary>Columns of one panel (8 KB of x as floats; a multiple of 32, so each panel's 32-value steps are whole).</summary>
    public const int Columns = 2048;

    /// <summary>Rows at most this long stay in their file layout.</summary>
    public const int PackedAbove = 4096;

    /// <summary>True when <paramref name="w"/> is an F16 or BF16 matrix whose rows are long enough to lay out in panels
    /// and this machine runs the kernel that reads them.</summary>
    public static bool CanPack(in TensorView w) =>
        Avx2.IsSupported && Fma.IsSupported && w.Type is GgmlType.F16 or GgmlType.BF16 && w.Cols > PackedAbove && w.Rows > 0;

    /// <summary>True when products of <paramref name="w"/> on <paramref name="kernels"/> read its panels.</summary>
    public static bool Used(in TensorView w, KernelOptions kernels) =>
        w.Packed != null && w.Type is GgmlType.F16 or GgmlType.BF16 && kernels.UsesPacked;

    /// <summary>Panels of a row of <paramref name="cols"/> values.</summary>
    public static int Count(int cols) => (cols + Columns - 1) / Columns;

    /// <summary>Values of each row's piece of panel <paramref name="panel"/>.</summary>
    public static int Width(int cols, int panel) => Math.Min(Columns, cols - panel * Columns);

    /// <summary>
    /// Where row <paramref name="row"/>'s piece of panel <paramref name="panel"/> would put column 0: the piece's start
    /// less the panel's first column, so that <c>Base(...)[c]</c> is the value at column c for every c of the panel
    /// (the pointer itself may lie outside the matrix and is only offset, never read).
    /// </summary>
    public static ushort* Base(byte* panels, int rows, int cols, int row, int panel) =>
        (ushort*)(panels + 2L * panel * rows * Columns + 2L * row * Width(cols, panel)) - panel * Columns;

    /// <summary>Copies rows [first, first + count), given in their file layout at <paramref name="source"/>
    /// (<paramref name="rowBytes"/> apart), to their places in the panels of a matrix of <paramref name="rows"/> rows.
    /// False when some F16 value is infinite or NaN: the panel kernel widens halves assuming finite ones, so such a
    /// matrix must stay in its file layout.</summary>
    public static bool Pack(GgmlType type, int cols, byte* source, int rowBytes, int first, int count, int rows, byte* panels)
    {
        bool finite = true;
        for (int r = 0; r < count; r++)
        {
            var row = (ushort*)(source + (long)r * rowBytes);
            if (type == GgmlType.F16) finite &= Finite(row, cols);
            for (int p = 0; p < Count(cols); p++)
            {
                int width = Width(cols, p);
                Buffer.MemoryCopy(row + p * Columns, Base(panels, rows, cols, first + r, p) + p * Columns, 2L * width, 2L * width);
            }
        }
        return finite;
    }

    /// <summary>True when none of the n halves at h has exponent 31 (infinity or NaN).</summary>
    private static bool Finite(ushort* h, int n)
    {
        var top = Vector256<ushort>.Zero;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var v = Vector256.Load(h + i);
            top = Vector256.Max(top, v + v); // the magnitude shifted left one: exponent 31 is 0xf800 and above
        }
        bool finite = !Vector256.GreaterThanOrEqualAny(top, Vector256.Create((ushort)0xf800));
        for (; i < n; i++) finite &= (h[i] & 0x7c00) != 0x7c00;
        return finite;
    }
}
