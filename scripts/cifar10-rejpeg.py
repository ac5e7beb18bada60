#!/usr/bin/env python3
"""Re-compress a CIFAR-10 binary copy with JPEG, to measure how much JPEG costs a model.

The only CIFAR-10 some machines have is a JPEG-derived copy (quality 75, about 8/255 RMS
error against the originals). We cannot compare against the originals there, but we can
add a second, comparable dose of JPEG error to that copy and measure what it costs:

    python3 scripts/cifar10-rejpeg.py SRC_DIR OUT_DIR --quality Q

SRC_DIR and OUT_DIR hold (or will hold) cifar-10-batches-bin/. Every training and test
image is encoded at quality Q and decoded again; the labels and order are kept. Prints the
RMS pixel change (in 1/255) so the dose can be matched to the first compression's.
Needs Pillow (pip install pillow).
"""

import argparse
import io
import math
import os
import sys

from PIL import Image

BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
RECORD = 1 + 3 * 32 * 32


def rejpeg(record: bytes, quality: int) -> bytes:
    label, pixels = record[:1], record[1:]
    planes = [pixels[c * 1024 : (c + 1) * 1024] for c in range(3)]
    rgb = bytes(b for i in range(1024) for b in (planes[0][i], planes[1][i], planes[2][i]))
    buf = io.BytesIO()
    Image.frombytes("RGB", (32, 32), rgb).save(buf, format="JPEG", quality=quality)
    decoded = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").tobytes()
    out = bytes(decoded[i * 3 + c] for c in range(3) for i in range(1024))
    return label + out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="directory holding cifar-10-batches-bin/")
    parser.add_argument("out", help="directory to write cifar-10-batches-bin/ into")
    parser.add_argument("--quality", type=int, required=True, help="JPEG quality, 1-95")
    args = parser.parse_args()
    if not 1 <= args.quality <= 95:
        parser.error(f"--quality must be in 1..95, got {args.quality}")
    src = os.path.join(args.src, "cifar-10-batches-bin")
    out = os.path.join(args.out, "cifar-10-batches-bin")
    if os.path.exists(out):
        parser.error(f"{out} exists; refusing to overwrite it")
    missing = [n for n in BATCHES if not os.path.isfile(os.path.join(src, n))]
    if missing:
        parser.error(f"{src} lacks {', '.join(missing)}: not a CIFAR-10 binary copy")
    os.makedirs(out + ".partial", exist_ok=True)
    squared, count = 0, 0
    for name in BATCHES:
        path = os.path.join(src, name)
        try:
            data = open(path, "rb").read()
        except OSError as err:
            parser.error(f"cannot read {path}: {err}")
        if len(data) % RECORD:
            parser.error(f"{path}: {len(data)} bytes is not a whole number of {RECORD}-byte records")
        records = [data[i : i + RECORD] for i in range(0, len(data), RECORD)]
        written = []
        for record in records:
            new = rejpeg(record, args.quality)
            squared += sum((a - b) ** 2 for a, b in zip(record[1:], new[1:]))
            count += RECORD - 1
            written.append(new)
        with open(os.path.join(out + ".partial", name), "wb") as f:
            f.write(b"".join(written))
        print(f"{name}: {len(records)} images", file=sys.stderr)
    os.rename(out + ".partial", out)
    print(f"quality {args.quality}: RMS change {math.sqrt(squared / count):.2f}/255 over {count // (RECORD - 1)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
