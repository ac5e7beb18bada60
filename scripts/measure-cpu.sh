#!/usr/bin/env bash
# Everything docs/benchmarks.md quotes for one CPU kind, in one go: the machine, a fresh
# calibration of the random-bases plan, `rbd bench rbd` (its phase table and the issue
# targets included) with the PyTorch and JAX peers where their interpreters are given,
# the convolution paths per layer, FPD's kept basis in training, and the README's two
# commands timed from a fresh clone. Run it on a quiet machine: stop anything else first
# (a campaign: its pause script). About 30 minutes on 2 cores.
# Usage: scripts/measure-cpu.sh [OUT_DIR]
#   RBD_TORCH_PYTHON, RBD_JAX_PYTHON: the peers' interpreters (venvs outside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${TMPDIR:-/tmp}/rbd-cpu-measure-$(date -u +%Y%m%d-%H%M)}"
mkdir -p "$OUT"
echo "results go to $OUT"

{
  date -u
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' with uncommitted changes')"
  lscpu | grep -E 'Model name|^CPU\(s\)|L1d|L2|L3|Thread|Hypervisor'
  echo "vector extensions: $(grep -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  vmstat 1 3 | tail -1 | awk '{print "vmstat: us " $13 " sy " $14 " id " $15 " st " $17}'
} | tee "$OUT/machine.txt"

cargo build --release 2>&1 | tail -1
peers=()
[ -n "${RBD_TORCH_PYTHON:-}" ] && peers+=(--peer "torch=$RBD_TORCH_PYTHON")
[ -n "${RBD_JAX_PYTHON:-}" ] && peers+=(--peer "jax=$RBD_JAX_PYTHON")
echo "== rbd bench rbd (calibrating the cpu plan afresh)"
RBD_CPU_PLAN=calibrate ./target/release/rbd bench rbd --backends cpu "${peers[@]}" | tee "$OUT/bench-rbd.txt"

echo "== convolution paths per layer"
cargo run --release -q -p rbd-kernels --example bench_conv_paths 80 | tee "$OUT/conv-paths.txt"

echo "== FPD's kept basis against regenerating it, in training (CIFAR-10, fetched on first use)"
# Not fatal: without CIFAR-10 (no network, no offline copy) the rest still runs.
scripts/measure-kept-basis.sh "$OUT/kept-basis" 2>&1 | tee "$OUT/kept-basis-training.txt" ||
  echo "the kept-basis measurement failed (is CIFAR-10 available? python3 ../shared/data/cifar10/build.py DIR builds it offline)"

echo "== the README's two commands from a fresh clone"
rm -rf "$OUT/fresh"
git clone -q . "$OUT/fresh"
(
  cd "$OUT/fresh"
  { time cargo run --release -- reproduce quick --results runs; } > ../quick.txt 2>&1
  { time cargo test --release --workspace; } > ../tests.txt 2>&1
)
tail -8 "$OUT/quick.txt"
grep -E '^test result: .*(FAILED|failed; [1-9])' "$OUT/tests.txt" || echo "tests: no failures"
tail -4 "$OUT/tests.txt"
echo "done: $OUT (machine.txt, bench-rbd.txt, conv-paths.txt, quick.txt, tests.txt)"
