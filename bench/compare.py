#!/usr/bin/env python3
"""Run dlkit's benchmarks and the PyTorch reference on this machine, one after the other, at each
thread count, and print one table: the rate of each side, the ratio dlkit / PyTorch (above 1:
dlkit is faster), each side's parallel efficiency (rate at N threads / (N x rate at 1 thread)),
and for training steps each side's peak resident memory (each workload in a process of its own).

    python3 bench/compare.py [--threads 1,2] [--suite steps,eval,updates,epochs]
    (run by hand; needs `pip install torch`)

Whole epochs ("epoch: ...") are compared by time per epoch, reported as images/s so that the
ratio reads the same way. The epoch-drift workload (dlkit only) runs once, at the most threads.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = ["steps", "eval", "updates", "epochs"]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_ticks():
    """(steal, total) clock ticks of all CPUs from /proc/stat, or None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    return (fields[7], sum(fields[:8])) if len(fields) >= 8 else None


# Share of the CPU a hypervisor took from this virtual machine while each command ran.
STEAL = []


def run_json(cmd, env, label):
    print("  $ " + " ".join(cmd), file=sys.stderr)
    before = cpu_ticks()
    out = subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    after = cpu_ticks()
    if before and after and after[1] > before[1]:
        STEAL.append((label, (after[0] - before[0]) / (after[1] - before[1])))
    return json.loads(out)


def key_of(r):
    # Match on the name before any parenthesised detail ("update: adam (4.1 M params, 28 B each)",
    # "epoch: section 1, MLP + Adam (9000 random pixels images, ...)").
    name = r["workload"]
    if name.startswith("update") or name.startswith("epoch:"):
        name = name.split(" (")[0]
    return name, r["batch"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--suite", default=",".join(SHARED), help="comma-separated: " + ", ".join(SHARED))
    parser.add_argument("--no-drift", action="store_true", help="skip dlkit's epoch-drift workload")
    parser.add_argument("--metric", choices=["wall", "cpu"], default="wall",
                        help="rates from wall-clock time (default) or from CPU time (items per CPU second: "
                             "steadier on a machine shared with other work, fair at 1 thread; at more threads "
                             "it also counts time workers spend spinning while they wait)")
    args = parser.parse_args()
    threads = sorted({int(t) for t in args.threads.split(",")})
    suites = args.suite
    print("building dlkit (cargo build --release -p dlkit) ...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "dlkit"], cwd=REPO, check=True)
    exe = str(REPO / "target" / "release" / "dlkit")
    ours, theirs = {}, {}
    for t in threads:
        env = dict(os.environ, RAYON_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t))
        print(f"{t} thread(s): dlkit ...", file=sys.stderr)
        ours[t] = {key_of(r): r for r in run_json([exe, "bench", "--json", "--isolate", "--threads", str(t), "--suite", suites], env, f"dlkit {t}t")}
        print(f"{t} thread(s): PyTorch ...", file=sys.stderr)
        theirs[t] = {key_of(r): r for r in run_json(
            [sys.executable, str(REPO / "bench" / "pytorch_reference.py"), "--isolate", "--threads", str(t), "--suite", suites], env, f"PyTorch {t}t")}
    drift = []
    if not args.no_drift:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads[-1]))
        drift = run_json([exe, "bench", "--json", "--threads", str(threads[-1]), "--suite", "drift"], env, "drift")

    top, low = threads[-1], threads[0]
    header = ["workload", "batch", f"dlkit {top}t", f"PyTorch {top}t", f"ratio {top}t"]
    if len(threads) > 1:
        header += [f"dlkit {low}t", f"PyTorch {low}t", f"ratio {low}t", "dlkit eff.", "PyTorch eff."]
    header += ["dlkit peak MiB", "PyTorch peak MiB"]
    rows = [header]
    fmt = lambda v, batch: "-" if v is None else (f"{v:.3e}" if batch == 0 else f"{v:,.1f}")
    for key, m in ours[top].items():
        if key not in theirs[top]:
            continue
        batch = m["batch"]
        def rate(side, t):
            r = side.get(t, {}).get(key, {})
            if args.metric == "cpu":
                return r["rate"] * r["seconds"] / r["cpu_seconds"] if r.get("cpu_seconds") and r.get("seconds") else None
            return r.get("rate")
        row = [m["workload"].split(" (")[0] if key[0].startswith("epoch:") else m["workload"], str(batch or "-"),
               fmt(rate(ours, top), batch), fmt(rate(theirs, top), batch),
               f"{rate(ours, top) / rate(theirs, top):.2f}x" if rate(ours, top) and rate(theirs, top) else "-"]
        if len(threads) > 1:
            o1, p1 = rate(ours, low), rate(theirs, low)
            eff = lambda side: (f"{rate(side, top) / (rate(side, low) * top / low):.0%}"
                                if rate(side, low) and rate(side, top) else "-")
            row += [fmt(o1, batch), fmt(p1, batch), f"{o1 / p1:.2f}x" if o1 and p1 else "-", eff(ours), eff(theirs)]
        peak = lambda side: side[top][key].get("peak_rss_mib")
        base = lambda side: side[top][key].get("base_rss_mib")
        mem = lambda side: "-" if peak(side) is None else (
            f"{peak(side):.0f} ({peak(side) - base(side):+.0f})" if base(side) is not None else f"{peak(side):.0f}")
        row += [mem(ours), mem(theirs)]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; rates in samples/s (training steps, evaluation, epochs) "
          f"or parameters/s (updates), from {'CPU' if args.metric == 'cpu' else 'wall-clock'} time; peak MiB = VmHWM of a process running that one workload "
          f"(in brackets: above the resident memory before the model was built)")
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    if STEAL:
        print("\nsteal time (CPU taken by the hypervisor while each part ran): "
              + ", ".join(f"{label} {share:.1%}" for label, share in STEAL))
        if max(share for _, share in STEAL) > 0.02:
            print("WARNING: more than 2 % steal time: another virtual machine shared these CPUs, so the rates, "
                  "ratios and efficiencies above are not reliable; run again on a quiet machine")
    if drift:
        print(f"\nepoch time as training goes on (dlkit, {top} threads; goal: last / first <= 1.1)")
        for m in drift:
            print(f"  {m['workload']}: last epoch {m['seconds']:.2f} s, last / first {m['last_over_first']:.2f}")


if __name__ == "__main__":
    main()
