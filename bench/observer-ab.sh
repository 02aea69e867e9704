#!/bin/sh
# Observer overhead, before and after: `ClockLM.Bench --observer-overhead` built from another revision (default: main)
# and from this working tree, run alternately on the same models, each a paired measurement in one process (a token
# observed and the same token unobserved, in turns).
#
#   sh bench/observer-ab.sh [BASE_REVISION] [REPETITIONS] [ROUNDS]
#
# Models: stories260K from ../shared and llama-110m Q4_0 ($LLAMA110M, default /work/models/llama-110m-Q4_0.gguf).
# Work goes to $AB_DIR (default /tmp/clocklm-observer-ab): the base revision is exported there with git archive (the
# repository is not touched). One thread, pinned to CPU $CPU (default 0). This tree's build also runs `--observer all`
# once: the timestamp's cost, the timestamps a token takes, and `bare` (the timestamps alone).
set -e
base=${1:-main}
reps=${2:-3}
rounds=${3:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${AB_DIR:-/tmp/clocklm-observer-ab}
stories="$here/../shared/models/stories260K/stories260K.bin"
llama=${LLAMA110M:-/work/models/llama-110m-Q4_0.gguf}
cpu=${CPU:-0}

rm -rf "$dir/base"
mkdir -p "$dir/base"
git -C "$here" archive "$base" | tar -x -C "$dir/base"
dotnet build -c Release "$dir/base/bench/ClockLM.Bench" -o "$dir/base-bin" > "$dir/base-build.log"
dotnet build -c Release "$here/bench/ClockLM.Bench" -o "$dir/branch-bin" > "$dir/branch-build.log"

models="--model $stories --model $llama"
r=1
while [ $r -le "$reps" ]; do
  echo "== base ($base), repetition $r"
  taskset -c $cpu "$dir/base-bin/ClockLM.Bench" --observer-overhead --observer both --rounds $rounds $models | grep -v '^#'
  echo "== branch, repetition $r"
  taskset -c $cpu "$dir/branch-bin/ClockLM.Bench" --observer-overhead --observer both --rounds $rounds $models | grep -v '^#'
  r=$((r + 1))
done
echo "== branch, the timestamps alone"
taskset -c $cpu "$dir/branch-bin/ClockLM.Bench" --observer-overhead --observer all --rounds $rounds $models | grep -v '^#'
