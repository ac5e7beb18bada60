#!/usr/bin/env bash
# One call on a bare GPU machine returns every GPU figure: `rbd devices`, `bench
# kernels`, `bench rbd`, `profile` (SGD and RBD, with the dispatch log), one epoch of
# CNN-CIFAR-10 SGD and RBD training, then as much of `rbd reproduce fig1` (then Table
# 1's CIFAR-10 rows) as the time budget allows, resumably.
#
#   scripts/gpu-check.sh [--quick] [--pack DIR] [--budget SECONDS] OUT_DIR
#
# Nothing is built and nothing is fetched: everything comes from the pack that
# scripts/gpu-pack.sh wrote (DIR, default .gpu-pack): the binary (rbd.xz; $RBD_BIN
# overrides it), the Vulkan loader (debs/, unpacked only where libvulkan.so.1 is
# missing and we are root), CIFAR-10 (cifar10/, built with python3 into a scratch
# folder) and earlier paper runs (runs/, resumed in a copy).
#
# Full mode first checks the adapter: the best must be a discrete GPU through Vulkan,
# else the script stops with the adapters it saw. It sets WGPU_BACKEND=vulkan.
# --quick runs every section end to end on a CPU adapter (llvmpipe, `--device
# wgpu-cpu`) with tiny sizes, synthetic CIFAR-shaped batches for the profiles, the FC
# network on synthetic MNIST-shaped IDX data written here for training, and a one-run
# stand-in manifest for the paper, as CI's bare-machine test does; its section limits
# are 5 times a GPU's, its budget 1500 s.
#
# Writes into OUT_DIR:
#   gpu-check.json      rewritten after every section (valid JSON throughout, "finished"
#                       false until the end), so a call killed at its limit keeps every
#                       section that finished
#   paper-runs.tar.gz   the paper's run directories (unpack into DIR/runs for the next
#                       call; into results/ to commit them)
#   gpu-check.log       every section's stderr
# Each section records its command, exit status, seconds and output (the command's JSON
# where it prints JSON, else its last lines); a failing section does not stop the
# others. The exit status is 0 when every section passed, 1 otherwise, 3 when the
# adapter check stopped the run.
set -u

usage() { echo "usage: $0 [--quick] [--pack DIR] [--budget SECONDS] OUT_DIR" >&2; exit 2; }
QUICK=0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PACK="$ROOT/.gpu-pack"
BUDGET="" # seconds for everything: 530 (a device command may run 600); --quick 1500
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --pack) shift; [ $# -gt 0 ] || usage; PACK="$1" ;;
    --budget) shift; [ $# -gt 0 ] || usage; BUDGET="$1" ;;
    -h|--help) usage ;;
    -*) echo "$0: unknown option $1" >&2; usage ;;
    *) [ -z "$OUT" ] || usage; OUT="$1" ;;
  esac
  shift
done
[ -n "$OUT" ] || usage
# Section limits are a GPU's; a CPU adapter (on a CI machine others share) gets SLACK
# times as long.
if [ "$QUICK" -eq 1 ]; then SLACK=5; BUDGET="${BUDGET:-1500}"; else SLACK=1; BUDGET="${BUDGET:-530}"; fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
JSON="$OUT/gpu-check.json"
LOG="$OUT/gpu-check.log"
: >"$LOG"
START=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rbd-gpu-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
say() { echo "[gpu-check $(($(date +%s) - START)) s] $*" | tee -a "$LOG" >&2; }

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
STOPPED=""
MODE=$([ "$QUICK" -eq 1 ] && echo quick || echo full)
DEVICE=$([ "$QUICK" -eq 1 ] && echo wgpu-cpu || echo gpu)
DATA_NOTE=""
RBD_VERSION=""

# Rewrites gpu-check.json with every section so far.
write_json() {
  local finished="$1" n i
  {
    printf '{\n"mode": "%s",\n"device": "%s",\n' "$MODE" "$DEVICE"
    printf '"data": %s,\n' "$(printf '%s' "$DATA_NOTE" | json_string)"
    printf '"rbd": %s,\n' "$(printf '%s' "$RBD_VERSION" | json_string)"
    printf '"started_utc": "%s",\n' "$(date -u -d "@$START" +%Y-%m-%dT%H:%M:%SZ)"
    printf '"total_seconds": %s,\n' "$(($(date +%s) - START))"
    printf '"finished": %s,\n' "$finished"
    [ -n "$STOPPED" ] && printf '"stopped": %s,\n' "$(printf '%s' "$STOPPED" | json_string)"
    printf '"all_ok": %s,\n' "$([ "$FAILED" -eq 0 ] && [ -z "$STOPPED" ] && echo true || echo false)"
    printf '"sections": {\n'
    n=${#SECTIONS[@]}
    for ((i = 0; i < n; i++)); do
      printf '%s' "${SECTIONS[$i]}"
      [ $((i + 1)) -lt "$n" ] && printf ',\n' || printf '\n'
    done
    printf '}\n}\n'
  } >"$JSON.tmp"
  mv "$JSON.tmp" "$JSON"
}

left() { echo $((BUDGET - ($(date +%s) - START))); }

# section NAME LIMIT_S KIND CMD...: runs CMD; KIND json = stdout is the output,
# KIND text = the last lines of stdout and stderr are.
section() {
  local name="$1" limit="$2" kind="$3"
  shift 3
  local cmd remaining
  cmd="$(printf '%q ' "$@" | json_string)"
  limit=$((limit * SLACK))
  remaining=$(left)
  if [ "$remaining" -le 5 ]; then
    SECTIONS+=("\"$name\": {\"command\": $cmd, \"ok\": false, \"skipped\": \"time budget of ${BUDGET} s spent\"}")
    FAILED=1
    write_json false
    return
  fi
  [ "$limit" -le "$remaining" ] || limit="$remaining"
  say "[$name] $*"
  local t0 t1 rc secs output ok=true
  t0=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  cat "$WORK/$name.err" >>"$LOG"
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
  say "[$name] exit $rc, ${secs} s"
  write_json false
}

# A training section: the run's last metrics line (JSON) is its output's companion,
# with the epoch's training time (its line of provenance.jsonl) as "timing".
train_section() {
  local name="$1" limit="$2"
  shift 2
  local dir="$WORK/$name-run"
  section "$name" "$limit" text "$RBD" train --out "$dir" --quiet "$@"
  if [ -s "$dir/metrics.jsonl" ]; then
    local i=$((${#SECTIONS[@]} - 1))
    SECTIONS[$i]="${SECTIONS[$i]%\}}, \"metrics\": $(tail -n 1 "$dir/metrics.jsonl")}"
    local timing
    timing="$(grep '"seconds"' "$dir/provenance.jsonl" 2>/dev/null | tail -n 1)"
    if [ -n "$timing" ]; then
      SECTIONS[$i]="${SECTIONS[$i]%\}}, \"timing\": $timing}"
    fi
    write_json false
  fi
}

finish() {
  write_json true
  say "wrote $JSON (all sections ok: $([ "$FAILED" -eq 0 ] && [ -z "$STOPPED" ] && echo yes || echo no))"
}

# ---- the binary, the loader, the adapter -------------------------------------------

if [ -n "${RBD_BIN:-}" ]; then
  RBD="$RBD_BIN"
elif [ -f "$PACK/rbd.xz" ]; then
  RBD="$WORK/rbd"
  xz -dc "$PACK/rbd.xz" >"$RBD" && chmod +x "$RBD"
else
  STOPPED="no binary: $PACK/rbd.xz is missing (run scripts/gpu-pack.sh first; this script never builds)"
  say "$STOPPED"
  finish
  exit 3
fi
RBD_VERSION="$("$RBD" --version 2>&1)"

if [ "$QUICK" -eq 0 ]; then
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    if [ "$(id -u)" = 0 ] && ls "$PACK"/debs/*.deb >/dev/null 2>&1; then
      say "no Vulkan loader here: unpacking $PACK/debs"
      for f in "$PACK"/debs/*.deb; do dpkg -x "$f" /; done
      ldconfig
    else
      say "no Vulkan loader here and none packed (scripts/gpu-pack.sh packs it)"
    fi
  fi
  # Where the driver's manifests are not where the loaders look (the device notes).
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
  done
  egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ -f "$egl" ]; then
    export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
  fi
  say "Vulkan driver manifest: ${VK_DRIVER_FILES:-the loader default}"
  export WGPU_BACKEND=vulkan
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK/xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

section devices 60 json "$RBD" devices --json
adapter_line() {
  # The best adapter as "backend type name" from devices' JSON (python3 when there,
  # else a grep over the pretty-printed JSON).
  local f="$WORK/devices.out"
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["adapters"]; print(" ".join([a[0]["backend"], a[0]["device_type"], a[0]["name"]]) if a else "none")' "$f" 2>/dev/null && return
  fi
  local b t n
  b=$(grep -m1 '"backend"' "$f" | sed 's/.*: "\(.*\)".*/\1/')
  t=$(grep -m1 '"device_type"' "$f" | sed 's/.*: "\(.*\)".*/\1/')
  n=$(grep -m1 '"name"' "$f" | sed 's/.*: "\(.*\)".*/\1/')
  echo "${b:-none} ${t:-} ${n:-}"
}
BEST="$(adapter_line)"
say "best adapter: $BEST"
if [ "$QUICK" -eq 0 ] && [[ "$BEST" != "Vulkan DiscreteGpu "* ]]; then
  STOPPED="the best adapter is not a discrete GPU through Vulkan ($BEST); adapters: $(tr -d '\n' <"$WORK/devices.out" 2>/dev/null | head -c 2000). Check the Vulkan loader (debs/) and VK_DRIVER_FILES; nothing was measured"
  say "$STOPPED"
  finish
  exit 3
elif [ "$QUICK" -eq 1 ] && [ "$BEST" = "none" ]; then
  STOPPED="no wgpu adapter at all (install mesa-vulkan-drivers, or WGPU_BACKEND=gl)"
  say "$STOPPED"
  finish
  exit 3
fi

# ---- data -------------------------------------------------------------------------

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

DATA="$WORK/data"
mkdir -p "$DATA"
if [ "$QUICK" -eq 1 ]; then
  write_idx "$DATA/idx" 384 train
  write_idx "$DATA/idx" 64 t10k
  DATA_NOTE="quick mode: synthetic MNIST-shaped IDX data (384 random 28x28 images written by the script) for training, synthetic CIFAR-shaped batches for the profiles, on a CPU adapter; no CIFAR-10"
  DATASET="idx:$DATA/idx"
  # The FC network: training's machinery without compiling the CNN's kernels again
  # (the profiles run the CNN).
  MODEL=fc
  TRAIN_EXTRA=(--val-size 64 --train-limit 384)
  BENCH_EXTRA=(--quick --repeats 1)
  PROFILE_EXTRA=(--warmup 0 --steps 1)
else
  if [ -f "$PACK/cifar10/build.py" ]; then
    section data 180 text python3 "$PACK/cifar10/build.py" "$DATA/cifar10"
    DATA_NOTE="full mode: CIFAR-10 built on this machine from the packed JPEG copy ($PACK/cifar10)"
  else
    DATA_NOTE="full mode: no CIFAR-10 packed ($PACK/cifar10 missing): the training and paper sections fail"
  fi
  DATASET="cifar10"
  MODEL=cnn
  TRAIN_EXTRA=(--data-dir "$DATA")
  BENCH_EXTRA=(--repeats 5)
  PROFILE_EXTRA=(--warmup 3 --steps 10)
fi
write_json false

# ---- measurements -----------------------------------------------------------------

BACKENDS="$([ "$QUICK" -eq 1 ] && echo wgpu-cpu || echo gpu)"
section bench_kernels 90 json "$RBD" bench kernels --json --backends "$BACKENDS" "${BENCH_EXTRA[@]}"
section bench_rbd 120 json "$RBD" bench rbd --json --backends "$BACKENDS" "${BENCH_EXTRA[@]}"
section profile_sgd 60 json "$RBD" profile --json --device "$DEVICE" --model cnn \
  --optimizer sgd --dataset cifar10 --synthetic "${PROFILE_EXTRA[@]}"
section profile_rbd 60 json "$RBD" profile --json --device "$DEVICE" --model cnn \
  --optimizer rbd --dim 250 --dataset cifar10 --synthetic "${PROFILE_EXTRA[@]}"
train_section train_sgd 120 --model "$MODEL" --dataset "$DATASET" --optimizer sgd --epochs 1 \
  --device "$DEVICE" "${TRAIN_EXTRA[@]}"
train_section train_rbd 120 --model "$MODEL" --dataset "$DATASET" --optimizer rbd --dim 250 \
  --epochs 1 --device "$DEVICE" "${TRAIN_EXTRA[@]}"

# ---- the paper, resumably, in what time is left -------------------------------------

RUNS="$WORK/runs"
mkdir -p "$RUNS"
[ -d "$PACK/runs" ] && cp -a "$PACK/runs/." "$RUNS/"
if [ "$QUICK" -eq 1 ]; then
  # A stand-in with the paper's machinery (a manifest, resumable run directories) on
  # the synthetic data: one run, one seed, one epoch.
  cat >"$WORK/gpu-quick.toml" <<EOF
name = "gpu-quick"
title = "gpu-check --quick: the paper section's machinery on synthetic data"
epochs = 1
seeds = 1

[defaults]
model = "$MODEL"
dataset = "$DATASET"
dim = 8
train_limit = 384
val_size = 64

[[run]]
id = "cnn-synthetic-rbd"
optimizer = "rbd"
column = "RBD"
EOF
  PAPER=("$WORK/gpu-quick.toml")
else
  PAPER=(fig1 "table1 --only cifar10")
fi
for artefact in "${PAPER[@]}"; do
  # Stop at the budget with SIGINT: the run writes its checkpoint after its step.
  remaining=$(($(left) - 25))
  name="paper_$(basename "${artefact%% *}" .toml | tr -c 'a-z0-9\n' '_')"
  if [ "$remaining" -le 20 ]; then
    SECTIONS+=("\"$name\": {\"ok\": true, \"skipped\": \"no time left in the budget of ${BUDGET} s\"}")
    write_json false
    continue
  fi
  say "[$name] rbd reproduce $artefact for at most $remaining s"
  t0=$(date +%s)
  # shellcheck disable=SC2086 # the artefact carries its --only
  timeout -s INT -k 60 "$remaining" "$RBD" reproduce $artefact --device "$DEVICE" \
    --results "$RUNS" --data-dir "$DATA" >"$WORK/$name.out" 2>>"$LOG"
  rc=$?
  # 124: stopped at the budget (runs checkpointed), which is how this section ends
  # when the paper does not fit; anything else non-zero is a failure.
  ok=$([ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] && echo true || echo false)
  [ "$ok" = true ] || FAILED=1
  output="$(tail -n 40 "$WORK/$name.out" | json_string)"
  SECTIONS+=("\"$name\": {\"command\": $(printf 'rbd reproduce %s --device %s' "$artefact" "$DEVICE" | json_string), \"ok\": $ok, \"exit_status\": $rc, \"stopped_at_budget\": $([ "$rc" -eq 124 ] && echo true || echo false), \"seconds\": $(($(date +%s) - t0)), \"output\": $output}")
  say "[$name] exit $rc"
  write_json false
done
(cd "$RUNS" && tar -czf "$OUT/paper-runs.tar.gz" .)
finish
exit "$FAILED"
