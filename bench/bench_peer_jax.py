"""JAX peer of `rbd bench rbd --peer jax`: the same CNN, batch and step under jax.jit.

`rbd bench rbd --peer jax` feeds this file to a Python interpreter on standard input
and reads one JSON object from its standard output. It can also be run by hand:

    python3 bench/bench_peer_jax.py --repeats 5

It times, on the paper's CIFAR-10 CNN (conv 3x3 32, pool, conv 3x3 64, pool, conv 3x3 64,
dense 64, dense 10; D = 122,570), batch 32, synthetic images, each step one jitted
function of the flat parameter vector (jax.flatten_util.ravel_pytree):

* the SGD step: loss, accuracy and gradient (jax.value_and_grad), theta -= lr * g, the
  loss and accuracy read back to Python (as rbd's trainer does every step);
* the materialised random-bases step at d directions: the same gradient, a
  jax.random.normal(fold_in(key, step), (d, D)) basis scaled by 1/sqrt(D), c = basis @ g,
  theta -= lr * basis^T c;
* the chunked random-bases step: the directions in chunks of k drawn inside a
  jax.lax.scan from fold_in(fold_in(key, step), chunk), once for the coordinates and
  again for the update (d x D never held); k from --chunks, the fastest reported.

XLA picks its own thread count (all cores). Exit status 0 with {"error": ...} when jax
cannot be imported, so the caller can say "no peer measured" with the reason.
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
    ap.add_argument(
        "--chunks",
        default="10,50",
        help="comma-separated directions per chunk of the chunked step (fastest reported)",
    )
    args = ap.parse_args()
    try:
        import jax
        import jax.numpy as jnp
        from jax import lax
        from jax.flatten_util import ravel_pytree
    except Exception as e:  # no jax: the caller reports "no peer measured"
        print(json.dumps({"error": f"cannot import jax with {sys.executable}: {e}"}))
        return

    def conv(x, w, b):
        y = lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def init(key, c, side):
        s = ((side - 2) // 2 - 2) // 2 - 2
        shapes = {
            "c1": ((32, c, 3, 3), 32),
            "c2": ((64, 32, 3, 3), 64),
            "c3": ((64, 64, 3, 3), 64),
            "d1": ((64 * s * s, 64), 64),
            "d2": ((64, 10), 10),
        }
        params = {}
        for i, (name, (w, b)) in enumerate(shapes.items()):
            fan_in = 1
            for v in (w[1:] if len(w) == 4 else w[:1]):
                fan_in *= v
            params[name] = (
                jax.random.normal(jax.random.fold_in(key, i), w) / fan_in**0.5,
                jnp.zeros((b,)),
            )
        return params

    def forward(p, x):
        x = pool(jax.nn.relu(conv(x, *p["c1"])))
        x = pool(jax.nn.relu(conv(x, *p["c2"])))
        x = jax.nn.relu(conv(x, *p["c3"]))
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(x @ p["d1"][0] + p["d1"][1])
        return x @ p["d2"][0] + p["d2"][1]

    lr = 0.01
    key = jax.random.key(0)
    params = init(key, 3, 32)
    theta0, unravel = ravel_pytree(params)
    dim = int(theta0.shape[0])
    x = jax.random.normal(jax.random.fold_in(key, 99), (args.batch, 3, 32, 32))
    y = jnp.arange(args.batch) * 7 % 10

    def loss_fn(theta):
        logits = forward(unravel(theta), x)
        loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(args.batch), y])
        return loss, jnp.sum(jnp.argmax(logits, 1) == y)

    grad = jax.value_and_grad(loss_fn, has_aux=True)

    @jax.jit
    def sgd(theta):
        (loss, correct), g = grad(theta)
        return theta - lr * g, loss, correct

    @jax.jit
    def rbd(theta, step):
        (loss, correct), g = grad(theta)
        basis = jax.random.normal(jax.random.fold_in(key, step), (args.dims, dim)) / dim**0.5
        return theta - lr * (basis.T @ (basis @ g)), loss, correct

    def chunked(k):
        n = -(-args.dims // k)

        @jax.jit
        def step_fn(theta, step):
            (loss, correct), g = grad(theta)
            skey = jax.random.fold_in(key, step)

            def basis(i):
                return jax.random.normal(jax.random.fold_in(skey, i), (k, dim)) / dim**0.5

            # The last chunk is cut to d: its extra rows get zero coordinates.
            rows = jnp.arange(n * k).reshape(n, k) < args.dims
            coords = lax.map(lambda i: basis(i) @ g, jnp.arange(n)) * rows

            def add(u, i):
                return u + basis(i).T @ coords[i], None

            update, _ = lax.scan(add, jnp.zeros(dim), jnp.arange(n))
            return theta - lr * update, loss, correct

        return step_fn

    def measure(f):
        for i in range(args.warmup):
            f(i)
        out = []
        for i in range(max(1, args.repeats)):
            t = time.perf_counter()
            f(args.warmup + i)
            out.append(time.perf_counter() - t)
        return out

    state = {"theta": theta0}

    def run(fn, extra):
        def once(i):
            theta, loss, correct = fn(state["theta"], *extra(i))
            # Read back loss and accuracy, as rbd's trainer does every step.
            float(loss)
            int(correct)
            state["theta"] = theta

        return once

    report = {
        "peer": "jax",
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "executable": sys.executable,
        "batch": args.batch,
        "dims": args.dims,
        "parameters": dim,
    }
    report["sgd_step"] = timing(measure(run(sgd, lambda i: ())))
    report["rbd_materialised_step"] = timing(measure(run(rbd, lambda i: (i,))))
    runs = []
    for k in [int(c) for c in args.chunks.split(",") if c.strip()]:
        runs.append(dict(timing(measure(run(chunked(k), lambda i: (i,)))), chunk=k))
    if runs:
        report["rbd_chunked_step"] = min(runs, key=lambda t: t["median_ms"])
        report["rbd_chunked_all"] = runs
    print(json.dumps(report))


if __name__ == "__main__":
    main()
