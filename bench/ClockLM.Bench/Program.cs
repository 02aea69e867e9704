using BenchmarkDotNet.Running;

// `--vs-llamacpp` runs the ClockLM vs llama.cpp comparison harness; anything else goes to BenchmarkDotNet.
if (args.Contains("--vs-llamacpp"))
    return ClockLM.Bench.VersusLlamaCpp.Run(args);
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
