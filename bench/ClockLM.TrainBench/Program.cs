using System.Diagnostics;
using ClockLM.Clock;
using ClockLM.Training;

// Training throughput of `clocklm train`'s steps on one shape: tokens/s, GFLOP/s and the share of the roofline's peak.
//
//   clocklm-train-bench --data kjv-train.txt [--shape builtin|builtin512|dim384] [--warmup W] [--steps N] [--peak GFLOPS]
//
// The run trains W + N + 1 steps on the text and times steps W+1 .. W+N (the first steps compile code and size buffers;
// the last one also measures the validation loss). Threads: every processor the process may run on (bench/train-ab.sh
// pins it with taskset). FLOPs are counted as 6 × parameters × tokens (forward 2, backward 4, the tied head counted
// once as the matrix it is) plus causal attention, 6 × dim × T(T+1)/2 × 2 per sequence and layer (scores and values,
// forward and backward); masked work a kernel does anyway is not counted. The peak is the cached roofline's
// (`clocklm roofline`), or --peak.
string? data = null, shapeName = "builtin";
int warmup = -1, steps = -1;
double? peak = null;
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--data": data = Next(); break;
        case "--shape": shapeName = Next(); break;
        case "--warmup": warmup = int.Parse(Next()); break;
        case "--steps": steps = int.Parse(Next()); break;
        case "--peak": peak = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
if (data is null || !File.Exists(data))
{
    Console.Error.WriteLine("usage: clocklm-train-bench --data TEXT [--shape builtin|builtin512|dim384] [--warmup W] [--steps N] [--peak GFLOPS]");
    return 2;
}

// The built-in model's first shape (context 128), its present one (models/README.md) and a dim-384, 8-layer one.
var options = shapeName switch
{
    "builtin" => new TrainingOptions
    {
        Dim = 128, Layers = 5, Heads = 4, KvHeads = 2, HiddenDim = 384, VocabSize = 1024, ContextLength = 128, Batch = 8,
    },
    "builtin512" => new TrainingOptions
    {
        Dim = 128, Layers = 6, Heads = 4, KvHeads = 2, HiddenDim = 384, VocabSize = 1024, ContextLength = 512, Batch = 4,
    },
    "dim384" => new TrainingOptions
    {
        Dim = 384, Layers = 8, Heads = 6, KvHeads = 2, HiddenDim = 1024, VocabSize = 4096, ContextLength = 256, Batch = 8,
    },
    _ => throw new ArgumentException($"--shape {shapeName}: expected builtin, builtin512 or dim384"),
};
if (warmup < 0) warmup = shapeName == "dim384" ? 2 : 5;
if (steps < 0) steps = shapeName == "dim384" ? 6 : 30;
options = options with
{
    Steps = warmup + steps + 1, WarmupSteps = 10, LearningRate = 3e-3, MinLearningRate = 3e-4, Seed = 1,
    CheckpointEvery = 0, EvalEvery = 0, EvalBatches = 1,
};

var c = options.ModelConfig;
long parameters = new LlamaTrainingModel(c, seed: 1).ParameterCount;
long tokensPerStep = (long)options.Batch * options.ContextLength;
double T = options.ContextLength;
double flopsPerStep = 6.0 * parameters * tokensPerStep + 6.0 * c.Dim * T * (T + 1) * options.Batch * c.Layers;
peak ??= Roofline.LoadOrMeasure(Roofline.DefaultCachePath).PeakGflops;

TimeSpan start = default, end = default;
var wall = Stopwatch.StartNew();
LlamaTrainer.Train(File.ReadAllText(data), options, progress: p =>
{
    if (p.Step == warmup) start = p.Elapsed;
    if (p.Step == warmup + steps) end = p.Elapsed;
});
double seconds = (end - start).TotalSeconds;
double tokensPerSecond = steps * tokensPerStep / seconds;
double gflops = steps * flopsPerStep / seconds / 1e9;
Console.WriteLine($"{shapeName}: {parameters:N0} parameters, {tokensPerStep} tokens/step, {Environment.ProcessorCount} threads: " +
    $"{tokensPerSecond:F0} tokens/s, {gflops:F1} GFLOP/s = {100 * gflops / peak:F1}% of {peak:F1} GFLOP/s peak " +
    $"({steps} steps in {seconds:F1} s after {warmup}; {wall.Elapsed.TotalSeconds:F0} s in all)");
return 0;
