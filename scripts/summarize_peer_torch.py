#!/usr/bin/env python3
"""Set the PyTorch peer's runs (scripts/train_peer_torch.py) beside rbd's and the paper's.

    python3 scripts/summarize_peer_torch.py results/peer-torch results/table1 reproduce/table1.toml
    python3 scripts/summarize_peer_torch.py results/peer-torch-tuned results/table1-tuned reproduce/table1-tuned.toml

PEER holds CELL/seedN/ directories (config.json, metrics.jsonl, summary.json when finished;
a finished run may be sealed into run.json.gz by `rbd results migrate`, read alike);
CELL is a run id of the manifest (e.g. cnn-fmnist-sgd), whose paper value and rbd's runs
(TABLE/runs/CELL-seedN/metrics.jsonl) it is compared with. Writes PEER/README.md and prints
the same table. Unfinished peer runs are listed with their epoch but not averaged.
"""

import gzip
import json
import os
import statistics
import subprocess
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from welch import welch  # noqa: E402


def record(run_dir, name):
    """The text of a run's record `name`: from its sealed run.json.gz (rbd's
    src/train/record.rs) when there is one, else from the file; None when absent."""
    sealed = os.path.join(run_dir, "run.json.gz")
    if os.path.exists(sealed):
        with gzip.open(sealed, "rt", encoding="utf-8") as f:
            return json.load(f)["files"].get(name)
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def rows(run_dir):
    return [json.loads(line) for line in record(run_dir, "metrics.jsonl").splitlines() if line.strip()]


def cell(values):
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f} (1 seed)"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} ({len(values)} seeds)"


def git_head():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def gap(a, b, b_std=None):
    """Mean difference a − b and Welch's p; b_std stands for b's std when b is a published
    cell (mean repeated, its std given; the paper's cells are 3 seeds)."""
    if not a or not b:
        return "–"
    diff = f"{statistics.mean(a) - statistics.mean(b):+.2f}"
    sb = b_std if b_std is not None else (statistics.stdev(b) if len(b) > 1 else 0.0)
    if len(a) < 2 or len(b) < 2 or (statistics.stdev(a) == 0 and sb == 0):
        return f"{diff} (too few seeds for p)"
    _, _, p = welch(statistics.mean(a), statistics.stdev(a), len(a), statistics.mean(b), sb, len(b))
    return f"{diff}, p = {p:.3f}"


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    peer, table, manifest = argv
    with open(manifest, "rb") as f:
        runs = {r["id"]: r for r in tomllib.load(f)["run"]}
    artefact = os.path.basename(os.path.normpath(table))
    out = [
        f"# PyTorch peer of `{artefact}`'s SGD cells",
        "",
        "An independent implementation (`scripts/train_peer_torch.py`: torch.nn layers, Keras' Glorot-uniform",
        "initialisation, its own loader, split and augmentation, `torch.optim.SGD`) of the runs in",
        f"`{table}/`, at the same rate, batch, epochs and augmentation. It shares no code with",
        "rbd. Where it ends where rbd ends, a gap to the paper is not a bug of rbd's engine, data",
        f"pipeline or trainer. Written by `python3 scripts/summarize_peer_torch.py {' '.join(argv)}`.",
        "",
        f"Summarised at commit {git_head()}. Each run's `config.json` names its machine and (for runs",
        "started after the script learnt to record it) the commit of the script that trained it.",
        "",
        "Validation accuracy (%) after the last epoch; last-10 is the mean over the last 10 epochs.",
        "",
        f"| cell | rate | epochs | peer (PyTorch) | peer last-10 | rbd (`{artefact}`) | rbd last-10 | paper | peer − rbd, Welch p | peer − paper, Welch p | peer's machine, torch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes, curves = [], []
    for name in sorted(os.listdir(peer)):
        d = os.path.join(peer, name)
        if not os.path.isdir(d) or name not in runs:
            continue
        finals, tails, ours, our_tails, config = [], [], [], [], None
        peer_curves, our_curves = [], []
        for s in sorted(os.listdir(d)):
            sd = os.path.join(d, s)
            if record(sd, "metrics.jsonl") is None:
                continue
            config = json.loads(record(sd, "config.json"))
            m = rows(sd)
            peer_curves.append([r["val_accuracy"] for r in m])  # unfinished ones too
            if record(sd, "summary.json") is None:
                notes.append(f"- {name} {s}: unfinished, epoch {len(m)} of {config['epochs']}")
                continue
            finals.append(m[-1]["val_accuracy"])
            tails.append(statistics.mean(r["val_accuracy"] for r in m[-10:]))
        if config is None:
            continue
        # rbd's cell: every seed of the run that reached the same epoch (seeds are
        # independent samples; the two programs draw different splits anyway).
        runs_dir = os.path.join(table, "runs")
        for rd in sorted(os.listdir(runs_dir)):
            if not rd.startswith(f"{name}-seed"):
                continue
            o = rows(os.path.join(runs_dir, rd))
            if len(o) >= config["epochs"]:
                o = o[: config["epochs"]]
                our_curves.append([100 * r["val_accuracy"] for r in o])
                ours.append(100 * o[-1]["val_accuracy"])
                our_tails.append(100 * statistics.mean(r["val_accuracy"] for r in o[-10:]))
        curves.append((name, peer_curves, our_curves))
        r = runs[name]
        paper = f"{r['paper']} ± {r['paper_std']}"
        out.append(
            f"| {name} | 2^{config['lr_log2']} | {config['epochs']} | {cell(finals)} | {cell(tails)} | "
            f"{cell(ours)} | {cell(our_tails)} | {paper} | {gap(finals, ours)} | "
            f"{gap(finals, [r['paper']] * 3, r['paper_std'])} | {config['machine']}, {config['torch']} |"
        )
    out += [""] + notes
    # The trajectories, not only the end: mean validation accuracy over the finished seeds.
    for name, peer_c, our_c in curves:
        if not peer_c or not our_c:
            continue
        n = min(len(c) for c in peer_c + our_c)
        marks = [e for e in (1, 2, 5, 10, 20, 30, 50, 75, 100) if e <= n]
        mean_at = lambda cs, e: statistics.mean(c[e - 1] for c in cs)  # noqa: E731
        out += [
            "",
            f"{name}: mean validation accuracy (%) by epoch, peer over {len(peer_c)} seed(s)"
            f" (finished or not), rbd over {len(our_c)}",
            "",
            "| epoch | " + " | ".join(str(e) for e in marks) + " |",
            "| --- |" + " --- |" * len(marks),
            "| peer | " + " | ".join(f"{mean_at(peer_c, e):.2f}" for e in marks) + " |",
            "| rbd | " + " | ".join(f"{mean_at(our_c, e):.2f}" for e in marks) + " |",
        ]
    text = "\n".join(out) + "\n"
    with open(os.path.join(peer, "README.md"), "w") as f:
        f.write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
