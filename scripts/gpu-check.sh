#!/usr/bin/env bash
# GPU readiness check: runs `rbd devices`, `bench kernels`, `bench rbd`, `profile` (SGD and
# RBD) and one epoch of CNN-CIFAR-10 SGD and RBD training on `--device gpu`, within about
# 8 minutes, and writes ONE JSON file with every section.
#
#   scripts/gpu-check.sh [--quick] [--data-dir DIR] OUT.json
#
# --quick runs the same sections end to end on a CPU adapter (llvmpipe, `--device
# wgpu-cpu`) with tiny sizes and MNIST-shaped synthetic data written by this script
# (no data set, no network), as CI does. The binary is $RBD_BIN, else target/release/rbd
# (built with cargo if missing). Full mode reads CIFAR-10 from --data-dir (default
# $RBD_DATA, else ~/.cache/rbd); if it is missing there and $RBD_CIFAR10_BUILDER names
# the offline builder script, that is run first.
#
# Each section records its command, exit status, seconds and output (the command's JSON
# where it prints JSON, else its last lines); a failing section does not stop the others.
# The exit status is 0 when every section passed, 1 otherwise.
set -u

usage() { echo "usage: $0 [--quick] [--data-dir DIR] OUT.json" >&2; exit 2; }
QUICK=0
DATA_DIR="${RBD_DATA:-$HOME/.cache/rbd}"
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --data-dir) shift; [ $# -gt 0 ] || usage; DATA_DIR="$1" ;;
    -h|--help) usage ;;
    -*) echo "$0: unknown option $1" >&2; usage ;;
    *) [ -z "$OUT" ] || usage; OUT="$1" ;;
  esac
  shift
done
[ -n "$OUT" ] || usage

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RBD="${RBD_BIN:-$ROOT/target/release/rbd}"
if [ ! -x "$RBD" ]; then
  echo "building rbd (cargo build --release)" >&2
  (cd "$ROOT" && cargo build --release --bin rbd) || { echo "$0: cannot build rbd" >&2; exit 1; }
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rbd-gpu-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
BUDGET=460 # seconds for all sections (8 minutes less margin)

# A JSON string literal of stdin.
json_string() {
  local s
  s="$(cat)"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\t'/\\t}"
  s="${s//$'\r'/}"
  s="${s//$'\n'/\\n}"
  printf '"%s"' "$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')"
}

SECTIONS=()
FAILED=0

# section NAME TIMEOUT_S KIND CMD...: runs CMD; KIND json = stdout is the output,
# KIND text = the last lines of stdout and stderr are.
section() {
  local name="$1" limit="$2" kind="$3"
  shift 3
  local left=$((BUDGET - ($(date +%s) - START)))
  local cmd
  cmd="$(printf '%q ' "$@" | json_string)"
  if [ "$left" -le 5 ]; then
    SECTIONS+=("\"$name\": {\"command\": $cmd, \"ok\": false, \"skipped\": \"time budget of ${BUDGET} s spent\"}")
    FAILED=1
    return
  fi
  [ "$limit" -le "$left" ] || limit="$left"
  echo "[$name] $*" >&2
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  rc=$?
  t1=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  local output ok=true
  if [ "$rc" -ne 0 ]; then
    ok=false
    FAILED=1
    [ "$rc" -eq 124 ] && echo "timed out after ${limit} s" >>"$WORK/$name.err"
    output="$( (tail -n 20 "$WORK/$name.out"; tail -n 20 "$WORK/$name.err") | json_string)"
  elif [ "$kind" = json ]; then
    output="$(cat "$WORK/$name.out")"
  else
    output="$( (tail -n 40 "$WORK/$name.out"; tail -n 5 "$WORK/$name.err") | json_string)"
  fi
  [ -n "$output" ] || output=null
  SECTIONS+=("\"$name\": {\"command\": $cmd, \"ok\": $ok, \"exit_status\": $rc, \"seconds\": $secs, \"output\": $output}")
  echo "[$name] exit $rc, ${secs} s" >&2
}

# A training section: the run's last metrics line (JSON) is its output, with the
# epoch's training time (its line of provenance.jsonl) as "timing".
train_section() {
  local name="$1" limit="$2"
  shift 2
  local dir="$WORK/$name-run"
  section "$name" "$limit" text "$RBD" train --out "$dir" --quiet "$@"
  if [ -s "$dir/metrics.jsonl" ]; then
    local last
    last="$(tail -n 1 "$dir/metrics.jsonl")"
    # Append the epoch's metrics to the section just recorded.
    local i=$((${#SECTIONS[@]} - 1))
    SECTIONS[$i]="${SECTIONS[$i]%\}}, \"metrics\": $last}"
    local timing
    timing="$(grep '"seconds"' "$dir/provenance.jsonl" 2>/dev/null | tail -n 1)"
    if [ -n "$timing" ]; then
      SECTIONS[$i]="${SECTIONS[$i]%\}}, \"timing\": $timing}"
    fi
  fi
}

# A big-endian 32-bit integer as 4 raw bytes (octal escapes: printf has no portable \x).
be32() {
  printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)))"
}

# MNIST-shaped IDX files (28x28, labels 0..9 cycling), written here: no data set needed.
write_idx() {
  local dir="$1" n="$2" prefix="$3" i k
  mkdir -p "$dir"
  { printf '\000\000\010\003'; be32 "$n"; be32 28; be32 28; head -c $((n * 784)) /dev/urandom; } \
    >"$dir/$prefix-images-idx3-ubyte"
  {
    printf '\000\000\010\001'
    be32 "$n"
    for ((i = 0; i < n; i++)); do
      k=$((i * 7 % 10))
      printf "\\0$((k / 8))$((k % 8))"
    done
  } >"$dir/$prefix-labels-idx1-ubyte"
}

if [ "$QUICK" -eq 1 ]; then
  MODE="quick"
  DEVICE="wgpu-cpu"
  BACKENDS="wgpu-cpu"
  DATA="$WORK/idx"
  write_idx "$DATA" 384 train
  write_idx "$DATA" 64 t10k
  DATA_NOTE="quick mode: synthetic MNIST-shaped IDX data (384 random 28x28 images written by the script), CNN on llvmpipe; no CIFAR-10"
  DATASET="idx:$DATA"
  PROFILE_DATA=(--dataset mnist --synthetic)
  TRAIN_EXTRA=(--val-size 64 --train-limit 384)
  BENCH_EXTRA=(--quick --repeats 1)
  PROFILE_EXTRA=(--warmup 1 --steps 1)
else
  MODE="full"
  DEVICE="gpu"
  BACKENDS="gpu"
  if [ ! -d "$DATA_DIR/cifar10/cifar-10-batches-bin" ] && [ -n "${RBD_CIFAR10_BUILDER:-}" ]; then
    echo "building CIFAR-10 with $RBD_CIFAR10_BUILDER into $DATA_DIR/cifar10" >&2
    python3 "$RBD_CIFAR10_BUILDER" "$DATA_DIR/cifar10" >&2 || echo "the CIFAR-10 builder failed" >&2
  fi
  DATA_NOTE="full mode: CIFAR-10 from $DATA_DIR"
  DATASET="cifar10"
  PROFILE_DATA=(--dataset cifar10 --synthetic)
  TRAIN_EXTRA=(--data-dir "$DATA_DIR")
  BENCH_EXTRA=(--repeats 5)
  PROFILE_EXTRA=(--warmup 3 --steps 10)
fi

section devices 20 text "$RBD" devices
section bench_kernels 75 json "$RBD" bench kernels --json --backends "$BACKENDS" "${BENCH_EXTRA[@]}"
section bench_rbd 100 json "$RBD" bench rbd --json --backends "$BACKENDS" "${BENCH_EXTRA[@]}"
section profile_sgd 40 json "$RBD" profile --json --device "$DEVICE" --model cnn \
  --optimizer sgd "${PROFILE_DATA[@]}" "${PROFILE_EXTRA[@]}"
section profile_rbd 40 json "$RBD" profile --json --device "$DEVICE" --model cnn \
  --optimizer rbd --dim 250 "${PROFILE_DATA[@]}" "${PROFILE_EXTRA[@]}"
train_section train_sgd 90 --model cnn --dataset "$DATASET" --optimizer sgd --epochs 1 \
  --device "$DEVICE" "${TRAIN_EXTRA[@]}"
train_section train_rbd 90 --model cnn --dataset "$DATASET" --optimizer rbd --dim 250 \
  --epochs 1 --device "$DEVICE" "${TRAIN_EXTRA[@]}"

{
  printf '{\n"mode": "%s",\n"device": "%s",\n' "$MODE" "$DEVICE"
  printf '"data": %s,\n' "$(printf '%s' "$DATA_NOTE" | json_string)"
  printf '"rbd": %s,\n' "$("$RBD" --version 2>&1 | json_string)"
  printf '"started_utc": "%s",\n' "$(date -u -d "@$START" +%Y-%m-%dT%H:%M:%SZ)"
  printf '"total_seconds": %s,\n' "$(($(date +%s) - START))"
  printf '"all_ok": %s,\n' "$([ "$FAILED" -eq 0 ] && echo true || echo false)"
  printf '"sections": {\n'
  n=${#SECTIONS[@]}
  for ((i = 0; i < n; i++)); do
    printf '%s' "${SECTIONS[$i]}"
    [ $((i + 1)) -lt "$n" ] && printf ',\n' || printf '\n'
  done
  printf '}\n}\n'
} >"$OUT"
echo "wrote $OUT (all sections ok: $([ "$FAILED" -eq 0 ] && echo yes || echo no))" >&2
exit "$FAILED"
