namespace ClockLM.Tensors;

/// <summary>
/// Whether every value of an F16 matrix is finite. The F16 row kernel's fast widening turns an infinity or NaN into a
/// finite number, so until this is known the products run the kernel that also watches for them, and the first
/// product that reads every row tells (<see cref="Checked"/>); from then on a matrix found finite runs the kernel that
/// need not watch (<see cref="HalfMatVec"/>), one in five instructions fewer. Shared by the copies of a view.
/// </summary>
internal sealed class FiniteHalves
{
    private const int Unknown = 0, Finite = 1, NotFinite = 2;
    private int _state;
    private int _seen; // set by any share of rows of a watching product that met an infinity or NaN

    /// <summary>True once a product has read every row and met no infinity or NaN.</summary>
    public bool AllFinite => Volatile.Read(ref _state) == Finite;

    /// <summary>True once a product has read every row.</summary>
    public bool Known => Volatile.Read(ref _state) != Unknown;

    /// <summary>A watching product met an infinity or NaN in its share of rows (any thread).</summary>
    public void SawNonFinite() => Volatile.Write(ref _seen, 1);

    /// <summary>A watching product has read every row: the matrix is finite unless a share met an infinity or NaN.</summary>
    public void Checked() => Volatile.Write(ref _state, Volatile.Read(ref _seen) != 0 ? NotFinite : Finite);
}
