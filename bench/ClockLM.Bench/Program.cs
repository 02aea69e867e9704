using BenchmarkDotNet.Running;

// `--vs-llamacpp` runs the ClockLM vs llama.cpp comparison harness; anything else goes to BenchmarkDotNet.
if (args.Contains("--vs-llamacpp"))
    return ClockLM.Bench.VersusLlamaCpp.Run(args);
// `--speculative-vs-llamacpp` times greedy decoding without and with drafts on both engines.
if (args.Contains("--speculative-vs-llamacpp"))
    return ClockLM.Bench.SpeculativeVersusLlamaCpp.Run(args);
// `--matvec-quick` times one matrix-vector product per weight type with a stopwatch (quick A/B between builds).
if (args.Contains("--matvec-quick"))
    return ClockLM.Bench.Kernels.MatVecQuick.Run(args);
// `--attention-quick` times one layer's attention over a cache of --depth positions per cache type.
if (args.Contains("--attention-quick"))
    return ClockLM.Bench.Kernels.AttentionQuick.Run(args);
// `--matmul-kernels` times MatMul against one MatVec per vector.
if (args.Contains("--matmul-kernels"))
    return ClockLM.Bench.Kernels.MatMulKernels.Run(args);
// `--serve-load` runs the HTTP server load test (concurrent streaming clients, answers checked against runs alone).
if (args.Contains("--serve-load"))
    return ClockLM.Bench.Server.ServerLoadTest.Run(args);
// `--scheduler-quick` times the slot scheduler against BatchDecoder, 1 vs N sequences, in one process (no HTTP).
if (args.Contains("--scheduler-quick"))
    return ClockLM.Bench.Server.SchedulerQuick.Run(args);
// `--conversation-ttft` times the first token of each turn of a scripted chat, prompt cache on and off.
if (args.Contains("--lora-quick"))
    return ClockLM.Bench.Server.LoraQuick.Run(args);

if (args.Contains("--conversation-ttft"))
    return ClockLM.Bench.Server.ConversationTtft.Run(args);
// `--first-token-cold` times load, prompt and first token with the model file dropped from the page cache.
if (args.Contains("--first-token-cold"))
    return ClockLM.Bench.Clock.FirstTokenCold.Run(args);
// `--bandwidth` prints the roofline's read bandwidth beside a plain streaming loop's and F16 decode's, per thread count.
// `--f16-stream` times one core streaming F16/BF16 matrix-vector rows beside a plain read loop over the same bytes.
if (args.Contains("--f16-stream"))
    return ClockLM.Bench.Kernels.F16Stream.Run(args);
if (args.Contains("--bandwidth"))
    return ClockLM.Bench.Clock.ReadBandwidth.Run(args);
// `--observer-overhead` times decoding with and without an observer, paired, on stories260K and llama-110m (or --model).
if (args.Contains("--observer-overhead"))
    return ClockLM.Bench.Clock.ObserverOverhead.Run(args);
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
