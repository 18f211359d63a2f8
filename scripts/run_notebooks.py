#!/usr/bin/env python3
"""Run the course notebooks headless on the evcxr `rust` kernel and save their outputs.

    python3 scripts/run_notebooks.py            # every notebooks/*.ipynb, quick mode
    python3 scripts/run_notebooks.py 03 04      # only notebooks whose name starts with 03_ / 04_
    python3 scripts/run_notebooks.py --full 02_optimizers.ipynb

Each notebook runs with its folder (notebooks/) as working directory, DLKIT_MODE=quick in the
kernel's environment (DLKIT_MODE=full with --full), and DLKIT_DATA passed through as an absolute path
(default: the repository's data/ folder). The executed notebook is written back in place
(through a temporary file, so a notebook is never left half-written), also when a cell
fails, so that the error can be read in the notebook. The script exits non-zero when any
cell fails or any saved output is an error, naming the notebook and the cell.

evcxr does not mark a cell as failed when its code panics or returns an error through `?`;
it prints the message on stderr and runs the next cell. So a cell that prints anything on
stderr fails here, except progress lines (redrawn with a carriage return) and lines that
start with "warning" (--allow-stderr relaxes this to panics only).
"""

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"

# evcxr's compile cache (~/.cache/evcxr) counts hits in a file that it rewrites without a lock:
# when two kernels compile at the same moment, one may read it empty and fail with this message.
# The cache itself is intact, so the notebook is simply run once more.
EVCXR_CACHE_RACE = "Failed to wrap rustc: cannot parse integer from empty string"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def select(names: list[str]) -> list[Path]:
    """The notebooks to run: all of them (sorted), or those matching the given names/prefixes."""
    every = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        base = Path(name).name
        hits = [
            p for p in every
            if p.name == base or p.stem == base or p.name.startswith(base + "_")
            or (base.isdigit() and p.name.startswith(base))
        ]
        if not hits:
            sys.exit(f"run_notebooks: no notebook in {NOTEBOOKS} matches {name!r}")
        chosen += [p for p in hits if p not in chosen]
    return chosen


def cell_summary(cell) -> str:
    """The first non-empty line of a cell, shortened, to say which cell is running."""
    for line in cell.source.splitlines():
        if line.strip():
            return line.strip()[:70]
    return "(empty)"


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def readable(text: str, limit: int = 3000) -> str:
    """An error text without cargo's progress lines and JSON messages, keeping its end."""
    lines = [
        l for l in text.splitlines()
        if l.strip() and not l.lstrip().startswith(("Compiling ", '{"reason"'))
    ]
    text = "\n".join(lines)
    return text if len(text) <= limit else "..." + text[-limit:]


def stderr_problems(text: str) -> list[str]:
    """The lines of a cell's stderr that say something went wrong.

    evcxr reports neither a panic nor an error returned by `?` as a failed cell: it prints them
    on stderr and carries on with the next cell. So any stderr line counts as a failure except
    blank lines, progress lines (redrawn with a carriage return) and lines starting "warning".
    """
    bad = []
    for line in text.split("\n"):
        if "\r" in line:
            continue
        line = line.strip()
        if line and not line.lower().startswith("warning"):
            bad.append(line)
    return bad


def error_outputs(nb, allow_stderr: bool = False) -> list[str]:
    """'cell N (first line): what went wrong' for every failed cell saved in the notebook."""
    found = []
    for i, cell in enumerate(nb.cells):
        where = f"cell {i} ({cell_summary(cell)})"
        stderr = ""
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                # evcxr's traceback is the compiler's message with the code it points at.
                trace = ANSI.sub("", "\n".join(out.get("traceback", [])))
                text = trace if trace.strip() else f"{out.get('ename', '')}: {out.get('evalue', '')}"
                found.append(f"{where}:\n" + readable(text))
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                stderr += out.get("text", "")
        bad = stderr_problems(stderr)
        if any("panicked at" in line for line in bad):
            found.append(f"{where}: panic: " + " | ".join(bad[:3]))
        elif bad and not allow_stderr:
            found.append(f"{where}: error printed on stderr (a `?` error or a failed display): " + " | ".join(bad[:5]))
    return found


def hit_cache_race(nb) -> bool:
    """Whether an error output is evcxr's compile-cache race (see EVCXR_CACHE_RACE)."""
    return any(
        EVCXR_CACHE_RACE in out.get("evalue", "")
        for cell in nb.cells for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    )


def collapse_carriage_returns(nb) -> None:
    """Keep, of each line of a stream output, what a terminal would show: the text after its
    last carriage return (progress lines are redrawn in place with `\r`; JupyterLab shows only
    the last drawing, and the saved notebook keeps only that too)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and "\r" in out.get("text", ""):
                lines = out["text"].split("\n")
                out["text"] = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)


def write_atomically(nb, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_one(path: Path, kernel: str, timeout: int, allow_stderr: bool) -> tuple[bool, float, list[str], bool]:
    """Execute one notebook in place; returns (passed, seconds, problems, hit the cache race)."""
    nb = nbformat.read(path, as_version=4)
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code")
    done = {"n": 0}

    def on_cell_execute(cell, cell_index, **_):
        done["n"] += 1
        log(f"  [{path.name}] cell {cell_index} ({done['n']}/{code_cells}): {cell_summary(cell)}")

    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=timeout,
        startup_timeout=300,
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_execute=on_cell_execute,
    )
    start = time.monotonic()
    problems = []
    try:
        client.execute()
    except CellTimeoutError as e:
        problems.append(f"a cell ran past the {timeout} s timeout: {str(e).splitlines()[0] if str(e) else e!r}")
    except DeadKernelError as e:
        problems.append(f"the kernel died: {e}")
    except CellExecutionError:
        pass  # the error output is in the notebook; error_outputs() reports it with its cell
    except Exception as e:  # kernel failed to start, bad notebook, ...
        problems.append(f"{type(e).__name__}: {e}")
    seconds = time.monotonic() - start
    problems = error_outputs(nb, allow_stderr) + problems
    collapse_carriage_returns(nb)
    write_atomically(nb, path)
    return not problems, seconds, problems, hit_cache_race(nb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook file names, stems or number prefixes (default: all)")
    parser.add_argument("--full", action="store_true", help="full configuration instead of quick mode (DLKIT_MODE=full)")
    parser.add_argument("--kernel", default="rust", help="Jupyter kernel name (default: rust, from `evcxr_jupyter --install`)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one cell may run (default 1800)")
    parser.add_argument("--allow-stderr", action="store_true",
                        help="accept cells that print on stderr (panics still fail)")
    args = parser.parse_args()

    notebooks = select(args.names)
    if not notebooks:
        log(f"run_notebooks: no notebooks in {NOTEBOOKS}")
        return 0

    # The kernel inherits this process's environment.
    os.environ.pop("DLKIT_QUICK", None)
    os.environ["DLKIT_MODE"] = "full" if args.full else "quick"
    data = os.environ.get("DLKIT_DATA") or str(REPO / "data")
    os.environ["DLKIT_DATA"] = os.path.abspath(data)  # notebooks run in notebooks/, not here
    mode = "full" if args.full else "quick"
    log(f"run_notebooks: {len(notebooks)} notebook(s), {mode} mode, DLKIT_DATA={os.environ['DLKIT_DATA']}")

    passed, failed = [], []
    total = time.monotonic()
    for path in notebooks:
        log(f"== {path.name}")
        ok, seconds, problems, race = run_one(path, args.kernel, args.timeout, args.allow_stderr)
        if race:
            log(f"  [{path.name}] evcxr's compile cache was in use by another kernel; running it again")
            ok, seconds, problems, _ = run_one(path, args.kernel, args.timeout, args.allow_stderr)
        print(f"{path.name}: {'ok' if ok else 'FAILED'} in {seconds:.1f} s", flush=True)
        for p in problems:
            print(f"  {path.name}: " + p.replace("\n", "\n      "), flush=True)
        (passed if ok else failed).append(path.name)
    print(f"all notebooks: {time.monotonic() - total:.1f} s", flush=True)
    if failed:
        print(f"failed notebooks: {', '.join(failed)}", flush=True)
    print(f"notebooks: {len(passed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
