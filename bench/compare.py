#!/usr/bin/env python3
"""Run dlkit's benchmarks and the PyTorch reference on this machine, one after the other, and
print one table with the ratio dlkit / PyTorch for every workload both measure.

    python3 bench/compare.py [--threads 2]      (run by hand; needs `pip install torch`)
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    print("dlkit (cargo run --release -p dlkit -- bench --json) ...", file=sys.stderr)
    dlkit = json.loads(subprocess.run(
        ["cargo", "run", "--release", "--quiet", "-p", "dlkit", "--", "bench", "--json"],
        cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout)
    print("PyTorch (bench/pytorch_reference.py) ...", file=sys.stderr)
    torch = json.loads(subprocess.run(
        [sys.executable, str(REPO / "bench" / "pytorch_reference.py"), "--threads", str(args.threads)],
        env=env, check=True, capture_output=True, text=True).stdout)
    # Match on the name before any parenthesised detail ("update: adam (4.1 M params, 28 B each)").
    key_of = lambda r: (r["workload"].split(" (")[0] if r["workload"].startswith("update") else r["workload"], r["batch"])
    reference = {key_of(r): r["rate"] for r in torch}
    rows = [("workload", "batch", "dlkit", "PyTorch", "dlkit / PyTorch")]
    for m in dlkit:
        key = key_of(m)
        if key not in reference:
            continue
        unit = "params/s" if m["batch"] == 0 else "samples/s"
        fmt = (lambda v: f"{v:.3e} {unit}") if m["batch"] == 0 else (lambda v: f"{v:,.1f}")
        rows.append((m["workload"], str(m["batch"] or "-"), fmt(m["rate"]), fmt(reference[key]),
                     f"{m['rate'] / reference[key]:.2f}x"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    print(f"{args.threads} threads, samples/s for training steps (Adam), parameters/s for updates")
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
