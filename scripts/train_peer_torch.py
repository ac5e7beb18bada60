#!/usr/bin/env python3
"""An independent PyTorch peer of `rbd train --optimizer sgd` for Table 1's FC and CNN cells.

Written from the paper's description (its text and supplement: models, data, augmentation),
not from rbd's code: it reads the same IDX / CIFAR-10 binary files, builds the network with
torch.nn, augments with its own code and trains with torch.optim.SGD. If it ends where rbd
ends, a gap to the paper is not a bug of rbd's engine, data pipeline or trainer.

    python3 scripts/train_peer_torch.py --model cnn --dataset fmnist --lr-log2 -4 --seed 0 \
        --epochs 100 --data ~/.cache/rbd --out results/peer-torch/cnn-fmnist-sgd/seed0

Writes config.json, metrics.jsonl (one line per epoch), checkpoint.pt (after every epoch;
never commit it) and, at the end, summary.json into --out. Rerunning the same command
resumes from the checkpoint, bitwise as uninterrupted; an --out holding a finished run or
another configuration is refused. Needs torch and numpy (`python3 -m venv DIR &&
DIR/bin/pip install torch numpy`). A CNN run is about 50 min on one core here.
"""

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        b = f.read()
    ndim = b[3]
    dims = [int.from_bytes(b[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(dirname, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(dirname, name)
        if os.path.exists(p):
            return p
    sys.exit(f"peer_torch: {stem}[.gz] not found in {dirname}")


def load(data, dataset):
    """(train images u8 [N,C,H,W], train labels, test images, test labels)."""
    if dataset in ("mnist", "fmnist"):
        d = os.path.join(data, dataset)
        xs = [idx(find(d, f"{s}-images-idx3-ubyte"))[:, None] for s in ("train", "t10k")]
        ys = [idx(find(d, f"{s}-labels-idx1-ubyte")) for s in ("train", "t10k")]
        return xs[0], ys[0], xs[1], ys[1]
    d = os.path.join(data, "cifar10", "cifar-10-batches-bin")

    def batch(name):
        r = np.fromfile(os.path.join(d, name), np.uint8).reshape(-1, 3073)
        return r[:, 1:].reshape(-1, 3, 32, 32), r[:, 0]

    parts = [batch(f"data_batch_{i}.bin") for i in range(1, 6)]
    xt, yt = batch("test_batch.bin")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xt, yt)


def standardise(x):
    """tf.image.per_image_standardization over all values of each image."""
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, unbiased=False, keepdim=True).clamp_min(1.0 / flat.shape[1] ** 0.5)
    return ((flat - mean) / std).reshape(x.shape)


def crop(padded, size, gen):
    """A random size×size window of each padded image."""
    n, c, hp, wp = padded.shape
    oy = torch.randint(0, hp - size + 1, (n,), generator=gen)
    ox = torch.randint(0, wp - size + 1, (n,), generator=gen)
    ar = torch.arange(size)
    rows = (oy[:, None] + ar)[:, None, :, None].expand(n, c, size, size)
    cols = (ox[:, None] + ar)[:, None, None, :].expand(n, c, size, size)
    chan = torch.arange(c)[None, :, None, None].expand(n, c, size, size)
    return padded[torch.arange(n)[:, None, None, None], chan, rows, cols]


def augment(x, dataset, order, gen):
    """The paper's training augmentation on a batch of [0,1] (or standardised) images."""
    if dataset in ("mnist", "fmnist"):
        x = crop(F.pad(x, (3, 3, 3, 3)), 28, gen)
        return x + (torch.rand(x.shape[0], 1, 1, 1, generator=gen) - 0.5)
    # CIFAR-10: standardise-first pads the standardised image with 0 (its mean);
    # augment-first pads black pixels and standardises the crop.
    x = crop(F.pad(x, (4, 4, 4, 4)), 32, gen)
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return standardise(x) if order == "augment-first" else x


class Cnn(nn.Module):
    def __init__(self, c, side):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(c, 32, 3), nn.Conv2d(32, 64, 3), nn.Conv2d(64, 64, 3)
        s = ((side - 2) // 2 - 2) // 2 - 2
        self.d1, self.d2 = nn.Linear(64 * s * s, 64), nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.relu(self.c3(x)).flatten(1)
        return self.d2(F.relu(self.d1(x)))


class Fc(nn.Module):
    def __init__(self, c, side):
        super().__init__()
        self.d1, self.d2 = nn.Linear(c * side * side, 128), nn.Linear(128, 10)

    def forward(self, x):
        return self.d2(F.relu(self.d1(x.flatten(1))))


def glorot(model, gen):
    """Keras' defaults: Glorot-uniform kernels (fans include the receptive field), zero biases."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight
            rf = w[0, 0].numel() if w.dim() == 4 else 1
            fan_in, fan_out = w.shape[1] * rf, w.shape[0] * rf
            lim = (6.0 / (fan_in + fan_out)) ** 0.5
            with torch.no_grad():
                w.copy_(torch.rand(w.shape, generator=gen) * 2 * lim - lim)
                m.bias.zero_()


def commit():
    """The checkout's commit, and whether this script differs from it."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", os.path.abspath(__file__)], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head} with this script changed" if dirty else head


def machine():
    """'CPU model, N cores', as rbd's provenance names it."""
    model = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def evaluate(model, x, y):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            out = model(x[i : i + 1000])
            loss += F.cross_entropy(out, y[i : i + 1000], reduction="sum").item()
            correct += (out.argmax(1) == y[i : i + 1000]).sum().item()
    model.train()
    return loss / len(x), 100.0 * correct / len(x)


# What a resume may change without changing the run (threads change no result here:
# the ops are deterministic at a fixed count, but the count is recorded per stretch).
RESUMABLE = {"epochs", "threads", "data", "out", "machine", "torch", "commit"}


def save(out, model, gen, epoch):
    """checkpoint.pt after each epoch, written to a temporary name and renamed."""
    tmp = os.path.join(out, "checkpoint.pt.tmp")
    torch.save({"epoch": epoch, "model": model.state_dict(), "gen": gen.get_state()}, tmp)
    os.replace(tmp, os.path.join(out, "checkpoint.pt"))


def resume(out, config, model, gen):
    """The epoch to start from: 0 for a new run, else the checkpoint's (model and generator
    restored, metrics.jsonl cut to it). Refuses a directory holding another run."""
    ckpt = os.path.join(out, "checkpoint.pt")
    metrics = os.path.join(out, "metrics.jsonl")
    if not os.path.exists(ckpt):
        if os.path.exists(metrics):
            sys.exit(f"peer_torch: {out} holds metrics.jsonl but no checkpoint.pt; choose another --out")
        return 0
    old = json.load(open(os.path.join(out, "config.json")))
    differ = sorted(k for k in set(old) | set(config) if k not in RESUMABLE and old.get(k) != config.get(k))
    if differ:
        sys.exit(f"peer_torch: {out} holds another run (config.json differs in {', '.join(differ)})")
    state = torch.load(ckpt, weights_only=False)
    model.load_state_dict(state["model"])
    gen.set_state(state["gen"])
    with open(metrics) as f:
        kept = f.readlines()[: state["epoch"]]
    with open(metrics, "w") as f:
        f.writelines(kept)
    print(f"peer_torch: resuming {out} after epoch {state['epoch']}", flush=True)
    return state["epoch"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["fc", "cnn"], required=True)
    ap.add_argument("--dataset", choices=["mnist", "fmnist", "cifar10"], required=True)
    ap.add_argument("--lr-log2", type=int, required=True, help="SGD rate as a power of 2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--augment", choices=["on", "off"], default="on")
    ap.add_argument("--order", choices=["standardise-first", "augment-first"], default="standardise-first")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/rbd"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    # A finished run keeps summary.json, or is sealed with it into run.json.gz.
    if any(os.path.exists(os.path.join(a.out, f)) for f in ("summary.json", "run.json.gz")):
        sys.exit(f"peer_torch: {a.out} holds a finished run; choose another --out")
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    xtr, ytr, _, _ = load(a.data, a.dataset)
    x = torch.from_numpy(xtr.astype(np.float32) / 255.0)
    if a.dataset == "cifar10" and a.order == "standardise-first":
        x = standardise(x)
    y = torch.from_numpy(ytr.astype(np.int64))
    perm = torch.randperm(len(x), generator=gen)
    val, train = perm[:10000], perm[10000:]
    xv = standardise(x[val]) if a.dataset == "cifar10" and a.order == "augment-first" else x[val]
    xv, yv, xt, yt = xv, y[val], x[train], y[train]

    model = (Cnn if a.model == "cnn" else Fc)(x.shape[1], x.shape[2])
    glorot(model, gen)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=2.0**a.lr_log2)
    steps = len(xt) // a.batch
    config = dict(vars(a), parameters=params, torch=torch.__version__, machine=machine(), commit=commit())
    start = resume(a.out, config, model, gen)
    if start == 0:
        json.dump(config, open(os.path.join(a.out, "config.json"), "w"), indent=1)
    log = open(os.path.join(a.out, "metrics.jsonl"), "a" if start else "w")
    for epoch in range(start, a.epochs):
        t0 = time.time()
        order = torch.randperm(len(xt), generator=gen)
        seen = correct = 0
        loss_sum = 0.0
        for s in range(steps):
            b = order[s * a.batch : (s + 1) * a.batch]
            xb = xt[b]
            if a.augment == "on":
                xb = augment(xb, a.dataset, a.order, gen)
            elif a.dataset == "cifar10" and a.order == "augment-first":
                xb = standardise(xb)
            out = model(xb)
            loss = F.cross_entropy(out, yt[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(b)
            correct += (out.argmax(1) == yt[b]).sum().item()
            seen += len(b)
        vl, va = evaluate(model, xv, yv)
        row = dict(epoch=epoch + 1, train_loss=loss_sum / seen, train_accuracy=100.0 * correct / seen,
                   val_loss=vl, val_accuracy=va, seconds=time.time() - t0)
        log.write(json.dumps(row) + "\n")
        log.flush()
        save(a.out, model, gen, epoch + 1)
        print(json.dumps(row), flush=True)
    last = [json.loads(l) for l in open(os.path.join(a.out, "metrics.jsonl"))]
    tail = [r["val_accuracy"] for r in last[-10:]]
    summary = dict(config, final_val_accuracy=last[-1]["val_accuracy"],
                   last10_mean=sum(tail) / len(tail), best_val_accuracy=max(r["val_accuracy"] for r in last))
    json.dump(summary, open(os.path.join(a.out, "summary.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
