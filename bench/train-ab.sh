#!/bin/sh
# Training throughput, before and after: bench/ClockLM.TrainBench built against another revision (default: main) and
# against this working tree, run alternately on the same text, shapes and thread counts.
#
#   sh bench/train-ab.sh [BASE_REVISION] [REPETITIONS]
#
# Needs the KJV text (apt-get install bible-kjv-text; see models/make-kjv-corpus.sh). Work goes to $AB_DIR (default
# /tmp/clocklm-train-ab): the base revision is exported there with git archive (the repository is not touched).
# Threads are set by pinning: taskset -c 0 (1 thread) and -c 0,1 (2 threads); both builds size their threads from
# the processors they may run on. The base build's default step counts are smaller, as it is much slower. SHAPES
# (default "builtin dim384"; builtin512 is the present built-in model's) limits the shapes.
set -e
base=${1:-main}
reps=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${AB_DIR:-/tmp/clocklm-train-ab}
mkdir -p "$dir/data"
[ -f "$dir/data/kjv-train.txt" ] || sh "$here/models/make-kjv-corpus.sh" "$dir/data" > /dev/null

rm -rf "$dir/base"
mkdir -p "$dir/base"
git -C "$here" archive "$base" | tar -x -C "$dir/base"
rm -rf "$dir/base/bench/ClockLM.TrainBench"
cp -r "$here/bench/ClockLM.TrainBench" "$dir/base/bench/"
rm -rf "$dir/base/bench/ClockLM.TrainBench/bin" "$dir/base/bench/ClockLM.TrainBench/obj"
dotnet build -c Release "$dir/base/bench/ClockLM.TrainBench" -o "$dir/base-bin" > "$dir/base-build.log"
dotnet build -c Release "$here/bench/ClockLM.TrainBench" -o "$dir/branch-bin" > "$dir/branch-build.log"

data="$dir/data/kjv-train.txt"
for shape in ${SHAPES:-builtin dim384}; do
  if [ $shape = dim384 ]; then base_steps="--warmup 1 --steps 2"; else base_steps="--warmup 2 --steps 10"; fi
  for cpus in 0 0,1; do
    r=1
    while [ $r -le "$reps" ]; do
      printf 'base   %-8s cpus %-4s ' $shape $cpus
      taskset -c $cpus "$dir/base-bin/clocklm-train-bench" --data "$data" --shape $shape $base_steps
      printf 'branch %-8s cpus %-4s ' $shape $cpus
      taskset -c $cpus "$dir/branch-bin/clocklm-train-bench" --data "$data" --shape $shape
      r=$((r + 1))
    done
  done
done
