#!/usr/bin/env bash
# Images/s and bytes per step of FC-MNIST with K = 1, 2, 4 ranks (4 oversubscribes
# this 2-core machine), RBD (per-worker and shared bases, d = 250) and SGD, each run
# twice back to back, against the single-process run measured in the same loop.
# Usage: scripts/measure-distributed.sh [binary built with --features mpi]
set -euo pipefail
BIN="${1:-target/release/rbd}"
OUT="${TMPDIR:-/tmp}/rbd-dist-measure"
rm -rf "$OUT"; mkdir -p "$OUT"
COMMON=(--model fc --dataset mnist --device cpu --epochs 1 --train-limit 7400 --val-size 1000 --quiet --checkpoint-every 0)
row() { # name, run directory
  python3 - "$1" "$2" <<'PY'
import json, sys
name, d = sys.argv[1], sys.argv[2]
r = [json.loads(l) for l in open(d + "/metrics.jsonl")][-1]
c = r.get("comm") or {}
print(f"| {name} | {r['step']} | {r['images_per_second']:.0f} | {c.get('bytes_per_step', '-')} | {c.get('comm_seconds', float('nan')):.2f} | {c.get('compute_seconds', float('nan')):.2f} | {r['val_accuracy']*100:.1f} |")
PY
}
echo "| run | steps | images/s | bytes sent per step per rank | comm s | compute s | val acc % |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for rep in 1 2; do
  for opt in "rbd per-worker 2^1" "rbd shared 2^1" "sgd - 2^-3"; do
    set -- $opt
    o=$1; base=$2; lr=$3
    dir="$OUT/$o-$base-single-$rep"
    "$BIN" train "${COMMON[@]}" --optimizer "$o" --lr "$lr" --out "$dir" >/dev/null
    row "$o single process (2 threads), rep $rep" "$dir"
    for k in 1 2 4; do
      threads=$(( k >= 2 ? 1 : 2 ))
      dir="$OUT/$o-$base-k$k-$rep"
      flags=(--distributed)
      [ "$base" != "-" ] && flags+=(--rbd-base "$base")
      RAYON_NUM_THREADS=$threads mpirun -n "$k" "$BIN" train "${COMMON[@]}" --optimizer "$o" --lr "$lr" "${flags[@]}" --out "$dir" >/dev/null
      row "$o ${base/-/} K=$k ($threads thread/rank), rep $rep" "$dir"
    done
  done
done
