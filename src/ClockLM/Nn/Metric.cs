namespace ClockLM.Nn;

/// <summary>A quantity reported during training besides the loss.</summary>
public enum Metric
{
    /// <summary>
    /// Keras's <c>"accuracy"</c>, resolved from the loss: with binary cross-entropy (or mean squared error on one output)
    /// the share of values where prediction and target fall on the same side of 0.5; with categorical
    /// cross-entropy (or mean squared error on several outputs) the share of rows whose arg-max agree; with sparse
    /// categorical cross-entropy the share of rows whose arg-max is the label.
    /// </summary>
    /// <remarks>Keras compares the thresholded prediction to the target exactly, so a soft target such as 0.9 never counts;
    /// here targets are thresholded too, so 0.9 counts as 1.</remarks>
    Accuracy,
}
