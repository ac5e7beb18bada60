#!/usr/bin/env bash
# What keeping FPD's fixed basis in memory saves in training, on the same binary: each
# CIFAR-10 network the campaign trains with FPD (FC and the CNN at d = 250, ResNet-8 at
# d = 500) for 150 steps with the basis kept (the default) and regenerated at every step
# (RBD_KEEP_BASIS=off), alternately, twice; the training seconds each run's provenance
# records (evaluation excluded), and whether the kept and regenerated runs end bit for bit alike.
# Run it on a quiet machine (a campaign: its pause script). About 3 minutes on 2 cores.
# Usage: scripts/measure-kept-basis.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${TMPDIR:-/tmp}/rbd-kept-basis-$(date -u +%Y%m%d-%H%M)}"
mkdir -p "$OUT"
cargo build --release 2>&1 | tail -1
B=./target/release/rbd
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet -- ':!results' || echo ' with uncommitted changes'); $(lscpu | grep 'Model name' | sed 's/  */ /g'); vector extensions: $(grep -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
# The epoch's training seconds, as the run's provenance records them.
seconds() { python3 -c "import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1]['seconds'])" "$1/provenance.jsonl"; }
# model, d, rate (any rate: the time does not depend on it)
for spec in "fc 250 2^-1" "cnn 250 2^-1" "resnet8 500 2^-1"; do
  read -r model d lr <<<"$spec"
  declare -A t=()
  for round in 1 2; do
    for keep in off on; do
      dir="$OUT/$model-$keep-$round"
      rm -rf "$dir"
      RBD_KEEP_BASIS=$keep "$B" train --model "$model" --dataset cifar10 --optimizer fpd \
        --lr "$lr" --dim "$d" --epochs 1 --train-limit 4800 --val-size 1000 \
        --checkpoint-every 0 --quiet --device cpu --out "$dir" >/dev/null
      t[$keep]="${t[$keep]:-} $(seconds "$dir")"
    done
  done
  same=no
  if cmp -s "$OUT/$model-off-1/final.safetensors" "$OUT/$model-on-1/final.safetensors" &&
     cmp -s <(cut -d, -f1-11 "$OUT/$model-off-1/metrics.csv") <(cut -d, -f1-11 "$OUT/$model-on-1/metrics.csv"); then
    same=yes
  fi
  python3 - "$model" "$d" "${t[off]}" "${t[on]}" "$same" <<'PY'
import sys
model, d, off, on, same = sys.argv[1:]
off = [float(x) for x in off.split()]
on = [float(x) for x in on.split()]
print(f"{model:<8} d = {d:<4} 150 FPD steps, training seconds: regenerated {' '.join(f'{x:.2f}' for x in off)}, "
      f"kept {' '.join(f'{x:.2f}' for x in on)}; kept {min(off) / min(on):.2f}x faster (best of each); same bits: {same}")
PY
done
