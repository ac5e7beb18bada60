"""PyTorch peer of `rbd bench rbd --peer torch`: the same CNN, batch and step, timed here.

`rbd bench rbd --peer torch` feeds this file to a Python interpreter on standard input
and reads one JSON object from its standard output. It can also be run by hand:

    python3 bench/bench_peer_torch.py --repeats 5

(scripts/peer_torch.py is another peer: it trains Table 1's SGD cells.)

It times, on the paper's CIFAR-10 CNN (conv 3x3 32, pool, conv 3x3 64, pool, conv 3x3 64,
dense 64, dense 10; D = 122,570), batch 32, synthetic images:

* the SGD step: forward, cross-entropy, backward, the loss and accuracy read out (as
  rbd's trainer does every step), theta -= lr * g;
* the materialised random-bases step at d directions: the same gradient, then a
  torch.randn(d, D) basis scaled by 1/sqrt(D) is drawn, c = basis @ g, theta -= lr *
  basis^T c (what a PyTorch implementation of the paper does);
* the chunked random-bases step, as a careful user writes it to avoid the d x D
  basis: the directions in chunks of k, each chunk drawn from its own seeded
  torch.Generator (seed = step * 2^20 + chunk), c = basis_k @ g chunk by chunk, then
  every chunk drawn again from the same seed for the update theta -= lr * basis_k^T
  c_k (each entry generated twice, d x D never held); k from --chunks, the fastest
  reported;
* training throughput in images/s of the SGD loop for the MNIST-shaped CNN (D = 93,322)
  and the CIFAR-10 one.

Each figure is measured with torch's default thread count and with 1 thread (PyTorch's
OpenMP threads can collapse when another process shares the cores), and the faster is
reported, with its thread count: the peer is given its best showing.

Exit status 0 with {"error": ...} when torch cannot be imported, so the caller can say
"no peer measured" with the reason.
"""

import argparse
import json
import platform
import sys
import time


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def timing(samples_s):
    ms = [s * 1e3 for s in samples_s]
    return {"median_ms": median(ms), "min_ms": min(ms), "max_ms": max(ms), "repeats": len(ms)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dims", type=int, default=250)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--skip-rbd", action="store_true", help="SGD and images/s only")
    ap.add_argument(
        "--chunks",
        default="10,50",
        help="comma-separated directions per chunk of the chunked step (fastest reported)",
    )
    ap.add_argument(
        "--threads",
        default="default,1",
        help="comma-separated thread counts to try ('default' = torch's own)",
    )
    args = ap.parse_args()
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except Exception as e:  # no torch: the caller reports "no peer measured"
        print(json.dumps({"error": f"cannot import torch with {sys.executable}: {e}"}))
        return

    torch.manual_seed(0)

    class Cnn(nn.Module):
        def __init__(self, c, side):
            super().__init__()
            self.c1 = nn.Conv2d(c, 32, 3)
            self.c2 = nn.Conv2d(32, 64, 3)
            self.c3 = nn.Conv2d(64, 64, 3)
            s = ((side - 2) // 2 - 2) // 2 - 2
            self.d1 = nn.Linear(64 * s * s, 64)
            self.d2 = nn.Linear(64, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.c1(x)), 2)
            x = F.max_pool2d(F.relu(self.c2(x)), 2)
            x = F.relu(self.c3(x))
            return self.d2(F.relu(self.d1(torch.flatten(x, 1))))

    def setup(c, side):
        model = Cnn(c, side)
        params = list(model.parameters())
        dim = sum(p.numel() for p in params)
        x = torch.randn(args.batch, c, side, side)
        y = torch.arange(args.batch) * 7 % 10
        return model, params, dim, x, y

    def gradient(model, params, x, y):
        for p in params:
            p.grad = None
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        # Read back loss and accuracy, as rbd's trainer does every step.
        loss.item()
        int((logits.argmax(1) == y).sum())
        return torch.cat([p.grad.reshape(-1) for p in params])

    lr = 0.01

    def sgd_step(model, params, x, y):
        gradient(model, params, x, y)
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-lr)

    def rbd_step(model, params, dim, x, y, gen):
        g = gradient(model, params, x, y)
        with torch.no_grad():
            basis = torch.randn(args.dims, dim, generator=gen) / dim**0.5
            update = basis.t() @ (basis @ g)
            off = 0
            for p in params:
                n = p.numel()
                p.add_(update[off : off + n].view_as(p), alpha=-lr)
                off += n

    def rbd_chunked_step(model, params, dim, x, y, k, step):
        g = gradient(model, params, x, y)
        with torch.no_grad():
            gen = torch.Generator()
            starts = range(0, args.dims, k)

            def basis(i, j0):
                gen.manual_seed(step * 2**20 + i)
                return torch.randn(min(k, args.dims - j0), dim, generator=gen) / dim**0.5

            coords = [basis(i, j0) @ g for i, j0 in enumerate(starts)]
            update = torch.zeros(dim)
            for i, j0 in enumerate(starts):
                update.add_(basis(i, j0).t() @ coords[i])
            off = 0
            for p in params:
                n = p.numel()
                p.add_(update[off : off + n].view_as(p), alpha=-lr)
                off += n

    def measure(f):
        for _ in range(args.warmup):
            f()
        out = []
        for _ in range(max(1, args.repeats)):
            t = time.perf_counter()
            f()
            out.append(time.perf_counter() - t)
        return out

    default_threads = torch.get_num_threads()
    counts = []
    for t in args.threads.split(","):
        n = default_threads if t.strip() == "default" else int(t)
        if n not in counts:
            counts.append(n)
    report = {
        "peer": "torch",
        "torch_version": torch.__version__,
        "threads": default_threads,
        "thread_counts_measured": counts,
        "python": platform.python_version(),
        "executable": sys.executable,
        "batch": args.batch,
        "dims": args.dims,
    }
    per_threads = {}
    for n in counts:
        torch.set_num_threads(n)
        r = {}
        model, params, dim, x, y = setup(3, 32)
        report["parameters"] = dim
        r["sgd_step"] = timing(measure(lambda: sgd_step(model, params, x, y)))
        if not args.skip_rbd:
            gen = torch.Generator().manual_seed(0)
            r["rbd_materialised_step"] = timing(
                measure(lambda: rbd_step(model, params, dim, x, y, gen))
            )
            chunked = []
            for k in [int(c) for c in args.chunks.split(",") if c.strip()]:
                steps = iter(range(10**9))
                t = timing(measure(lambda: rbd_chunked_step(model, params, dim, x, y, k, next(steps))))
                chunked.append(dict(t, chunk=k))
            if chunked:
                r["rbd_chunked_step"] = min(chunked, key=lambda t: t["median_ms"])
                r["rbd_chunked_all"] = chunked
        images = {}
        for name, c, side in [("mnist", 1, 28), ("cifar10", 3, 32)]:
            m, ps, d, xx, yy = setup(c, side)
            samples = measure(lambda: sgd_step(m, ps, xx, yy))
            images[name] = {"parameters": d, "images_per_s": args.batch / median(samples)}
        r["sgd_images_per_s"] = images
        per_threads[n] = r
    torch.set_num_threads(default_threads)
    report["per_thread_count"] = {str(n): r for n, r in per_threads.items()}
    # The best showing of each figure, with the thread count it came from.
    for key in ["sgd_step", "rbd_materialised_step", "rbd_chunked_step"]:
        runs = [(r[key]["median_ms"], n) for n, r in per_threads.items() if key in r]
        if runs:
            _, n = min(runs)
            report[key] = dict(per_threads[n][key], threads=n)
    report["sgd_images_per_s"] = {}
    for name in ["mnist", "cifar10"]:
        rate, n = max((r["sgd_images_per_s"][name]["images_per_s"], n) for n, r in per_threads.items())
        report["sgd_images_per_s"][name] = dict(per_threads[n]["sgd_images_per_s"][name], threads=n)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
