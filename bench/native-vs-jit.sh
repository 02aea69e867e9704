#!/usr/bin/env bash
# Native (AOT) clocklm against the JIT build: start to first token on the built-in model (median of N runs), and
# prompt/decode tokens/s of a model file through `clocklm bench`. Run it in a quiet window:
#
#   bench/native-vs-jit.sh [MODEL.gguf] [RUNS]
#
# MODEL defaults to none (first-token figures only); for the issue's figure use tinyllama-1.1b Q4_0, or a random-weight
# model of the same shape (same speed): clocklm synth --shape tinyllama-1.1b --type Q4_0 /tmp/tinyllama-q4_0.gguf
# Start to first token is the wall time of `clocklm run -n 1` (process start, model load, prompt, one token, exit).
# AOT=PATH compares another native build, e.g. the x86-64-v4 one for AVX-512 machines (docs/native.md):
#   dotnet publish src/ClockLM.Cli -c Release -r linux-x64 -p:PublishAot=true -p:IlcInstructionSet=x86-64-v4 -o /tmp/clocklm-v4
#   AOT=/tmp/clocklm-v4/clocklm bench/native-vs-jit.sh MODEL.gguf 10
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-}
runs=${2:-10}
bench_args=${BENCH_ARGS:--p 128 -n 64 -t 2 -r 3}

jit_dir=src/ClockLM.Cli/bin/Release/net10.0
aot=${AOT:-src/ClockLM.Cli/bin/Release/net10.0/linux-x64/publish/clocklm}
[ -f "$jit_dir/clocklm.dll" ] || dotnet build -c Release src/ClockLM.Cli >/dev/null
if [ ! -x "$aot" ]; then
  [ -z "${AOT:-}" ] || { echo "AOT=$AOT is not an executable" >&2; exit 1; }
  dotnet publish src/ClockLM.Cli -c Release -r linux-x64 -p:PublishAot=true >/dev/null
fi

# Median wall time in ms of `$@ run --temp 0 -n 1 "In the beginning"` over $runs runs (after one untimed run).
first_token_ms() {
  "$@" run --temp 0 -n 1 "In the beginning" >/dev/null 2>&1
  local times=()
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s%N)
    "$@" run --temp 0 -n 1 "In the beginning" >/dev/null 2>&1
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{ t[NR] = $1 } END { m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }'
}

echo "start to first token, built-in model, median of $runs:"
echo "  native: $(first_token_ms "$aot") ms"
echo "  JIT:    $(first_token_ms dotnet "$jit_dir/clocklm.dll") ms"

if [ -n "$model" ]; then
  echo
  echo "native: clocklm bench -m $model $bench_args"
  # shellcheck disable=SC2086
  "$aot" bench -m "$model" $bench_args
  echo "JIT: clocklm bench -m $model $bench_args"
  # shellcheck disable=SC2086
  dotnet "$jit_dir/clocklm.dll" bench -m "$model" $bench_args
fi
