namespace ClockLM.Tensors;

/// <summary>How a <see cref="ProductInput"/>'s laid-out activations are arranged.</summary>
internal enum ActivationLayout { None, Quads, Q4_0Pairs }
