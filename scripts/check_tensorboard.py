#!/usr/bin/env python3
"""Read TensorBoard event files with TensorBoard's own reader, print their scalars and,
given a JSON file of expected values, check them.

    python3 scripts/check_tensorboard.py LOGDIR [EXPECTED.json]

Every folder under LOGDIR that holds event files is a run, named by its path relative to
LOGDIR ("train", "validation" in Keras's layout; "." for LOGDIR itself). Each run is loaded
with tensorboard.backend.event_processing.event_accumulator.EventAccumulator, the reader
behind TensorBoard's Python data path, which checks both CRCs of every record.

EXPECTED.json maps run -> tag -> [[step, value], ...]:

    {"train": {"epoch_loss": [[0, 2.3], [1, 1.9]]}, "validation": {"epoch_loss": [[0, 2.1]]}}

The check passes when the runs, each run's scalar tags and each tag's steps are exactly the
expected ones, and each value equals the expected value rounded to float32 (event files
store scalars as float32). Exit status: 0 pass, 1 differences (listed), 2 usage error or
TensorBoard missing.
"""

import json
import math
import os
import struct
import sys


def float32(x):
    """x rounded to the nearest float32, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def same_value(actual, expected):
    expected = float32(expected)
    if math.isnan(expected):
        return math.isnan(actual)
    return actual == expected


def load_runs(logdir):
    """{run: {tag: [(step, value, wall_time), ...]}} for every folder with event files."""
    from tensorboard.backend.event_processing import event_accumulator

    runs = {}
    for folder, _, files in sorted(os.walk(logdir)):
        if not any("tfevents" in name for name in files):
            continue
        accumulator = event_accumulator.EventAccumulator(
            folder, size_guidance={event_accumulator.SCALARS: 0}  # 0: keep every point
        )
        accumulator.Reload()
        run = os.path.relpath(folder, logdir)
        runs[run] = {
            tag: [(e.step, e.value, e.wall_time) for e in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]
        }
        if accumulator.file_version != 2:
            print(f"{run}: file_version {accumulator.file_version!r}, expected 2")
            runs[run]["<file_version>"] = None
    return runs


def differences(runs, expected):
    found = []
    if set(runs) != set(expected):
        found.append(f"runs {sorted(runs)}, expected {sorted(expected)}")
    for run in sorted(set(runs) & set(expected)):
        tags, want_tags = runs[run], expected[run]
        if set(tags) != set(want_tags):
            found.append(f"{run}: tags {sorted(tags)}, expected {sorted(want_tags)}")
        for tag in sorted(set(tags) & set(want_tags)):
            got = [(step, value) for step, value, _ in tags[tag]]
            want = [(int(step), value) for step, value in want_tags[tag]]
            if [s for s, _ in got] != [s for s, _ in want]:
                found.append(f"{run}/{tag}: steps {[s for s, _ in got]}, expected {[s for s, _ in want]}")
                continue
            for (step, value), (_, wanted) in zip(got, want):
                if not same_value(value, wanted):
                    found.append(
                        f"{run}/{tag} step {step}: {value!r}, expected {float32(wanted)!r} (float32 of {wanted!r})"
                    )
    return found


def main(argv):
    if len(argv) not in (2, 3) or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    logdir = argv[1]
    if not os.path.isdir(logdir):
        print(f"{logdir}: not a folder", file=sys.stderr)
        return 2
    try:
        import tensorboard
    except ImportError as e:
        print(f"TensorBoard is not installed ({e}); pip install tensorboard", file=sys.stderr)
        return 2
    runs = load_runs(logdir)
    print(f"TensorBoard {tensorboard.__version__} read {len(runs)} run(s) under {logdir}")
    for run, tags in sorted(runs.items()):
        for tag, points in sorted(tags.items()):
            if points is None:
                continue
            shown = ", ".join(f"{step}: {value:.7g}" for step, value, _ in points)
            print(f"  {run}/{tag}  {shown}")
    if len(argv) == 2:
        return 0
    with open(argv[2]) as f:
        expected = json.load(f)
    found = differences(runs, expected)
    for line in found:
        print(f"MISMATCH {line}")
    print("FAIL" if found else "OK: runs, tags, steps and float32 values as expected")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
