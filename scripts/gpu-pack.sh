#!/usr/bin/env bash
# Preparation for one call on a bare GPU machine (no Rust toolchain, no network, maybe
# no Vulkan loader): packs what scripts/gpu-check.sh needs into an ignored folder of
# this checkout, and prints the total the device tool will carry against its 64 MiB.
# Run it here, with network, in the checkout the device tool sends.
#
#   scripts/gpu-pack.sh [--quick] [--bin PATH] [--pack DIR] [--no-debs] [--no-cifar]
#
# Into DIR (default .gpu-pack, added to .git/info/exclude; name it in the call's carry):
#   rbd.xz       the release binary (PATH, else `cargo build --release --bin rbd`),
#                stripped and xz-compressed
#   debs/        the Vulkan loader and the GL/EGL libraries (`apt-get download`), which
#                gpu-check.sh unpacks where the machine lacks libvulkan.so.1
#   cifar10/     CIFAR-10 as the JPEG copy and its builder (the folder of
#                $RBD_CIFAR10_BUILDER, default ../shared/data/cifar10): all 60,000
#                images in about 19 MB, built into the binary layout on the machine
#   runs/        kept as it is: paper run directories returned by an earlier call
#                (unpack its paper-runs.tar.gz here), so the next call resumes them
#   MANIFEST     what was packed, from which commit
# --quick packs the binary alone (CI's bare-machine test; gpu-check.sh --quick needs no
# data). The exit status is 1 when the total exceeds 64 MiB.
set -euo pipefail

usage() { echo "usage: $0 [--quick] [--bin PATH] [--pack DIR] [--no-debs] [--no-cifar]" >&2; exit 2; }
QUICK=0 DEBS=1 CIFAR=1 BIN="" PACK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 DEBS=0 CIFAR=0 ;;
    --bin) shift; [ $# -gt 0 ] || usage; BIN="$1" ;;
    --pack) shift; [ $# -gt 0 ] || usage; PACK="$1" ;;
    --no-debs) DEBS=0 ;;
    --no-cifar) CIFAR=0 ;;
    *) usage ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PACK="${PACK:-$ROOT/.gpu-pack}"
LIMIT=$((64 * 1024 * 1024))
mkdir -p "$PACK"
PACK="$(cd "$PACK" && pwd)"
# The pack must not travel as untracked files of its own: ignore it where it is inside.
case "$PACK/" in
  "$ROOT"/*)
    rel="/${PACK#"$ROOT"/}/"
    if [ -d .git ] || [ -f .git ]; then
      exclude="$(git rev-parse --git-path info/exclude)"
      mkdir -p "$(dirname "$exclude")"
      grep -qxF "$rel" "$exclude" 2>/dev/null || echo "$rel" >>"$exclude"
    fi
    ;;
esac

# The binary: stripped (no debug info, no symbols) and xz-compressed.
if [ -z "$BIN" ]; then
  echo "building rbd (cargo build --release --bin rbd)" >&2
  cargo build --release --bin rbd >&2
  BIN="$ROOT/target/release/rbd"
fi
[ -x "$BIN" ] || { echo "$0: $BIN is not an executable" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp "$BIN" "$tmp/rbd"
strip --strip-all "$tmp/rbd"
xz -9 -T1 -c "$tmp/rbd" >"$PACK/rbd.xz.tmp"
mv "$PACK/rbd.xz.tmp" "$PACK/rbd.xz"
echo "binary: $(stat -c %s "$BIN") bytes -> stripped $(stat -c %s "$tmp/rbd") -> xz $(stat -c %s "$PACK/rbd.xz")" >&2

# The Vulkan loader and GL/EGL libraries, for amd64 whatever this machine is.
rm -rf "$PACK/debs"
if [ "$DEBS" -eq 1 ]; then
  mkdir -p "$PACK/debs" "$tmp/lists/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$tmp/lists")
  apt-get "${o[@]}" update -qq >&2
  (cd "$PACK/debs" && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >&2)
fi

# CIFAR-10: the JPEG copy and its builder.
rm -rf "$PACK/cifar10"
if [ "$CIFAR" -eq 1 ]; then
  src="$(dirname "${RBD_CIFAR10_BUILDER:-$ROOT/../shared/data/cifar10/build.py}")"
  for f in build.py cifar10-jpeg-q75.tar.gz train-labels.txt test-labels.txt; do
    [ -f "$src/$f" ] || { echo "$0: $src/$f missing (set RBD_CIFAR10_BUILDER, or --no-cifar)" >&2; exit 1; }
  done
  mkdir -p "$PACK/cifar10"
  cp "$src"/{build.py,cifar10-jpeg-q75.tar.gz,train-labels.txt,test-labels.txt} "$PACK/cifar10/"
fi

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  echo "packed by scripts/gpu-pack.sh at commit $commit on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "mode: $([ "$QUICK" -eq 1 ] && echo quick || echo full)"
  (cd "$PACK" && find . -type f ! -name MANIFEST -printf '%s %p\n' | sort -k2)
} >"$PACK/MANIFEST"

# What travels: tracked files, untracked files git does not ignore, and the pack.
sum() { awk '{ s += $1 } END { print s + 0 }'; }
sizes() { xargs -0 -r stat -c %s -- 2>/dev/null || true; }
tracked=$(git ls-files -z | sizes | sum)
untracked=$(git ls-files -z --others --exclude-standard | sizes | sum)
packed=$(find "$PACK" -type f -printf '%s\n' | sum)
part() { find "$PACK/$1" -type f -printf '%s\n' 2>/dev/null | sum; }
total=$((tracked + untracked + packed))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "total $(mib "$total") of the 64 MiB limit ($total of $LIMIT bytes): tracked $(mib "$tracked"), untracked $(mib "$untracked"), pack $(mib "$packed") (binary $(mib "$(stat -c %s "$PACK/rbd.xz")"), cifar10 $(mib "$(part cifar10)"), debs $(mib "$(part debs)"), runs $(mib "$(part runs)"))"
if [ "$total" -gt "$LIMIT" ]; then
  echo "$0: over the limit by $(mib $((total - LIMIT))): pack less (--no-cifar) or carry less" >&2
  exit 1
fi
