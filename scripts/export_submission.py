#!/usr/bin/env python3
"""Export the executed notebooks for hand-in: `submission/` (git-ignored) gets

    <notebook>.ipynb   the executed notebook, as saved
    <notebook>.html    a self-contained page of it (nbconvert's lab template): charts inline
                       (SVG as <svg> elements, PNG/JPEG as data: URIs), tables as HTML, styles
                       inlined, no script or file loaded from anywhere; math stays as TeX source
    index.html         the sections, each with its headline numbers and the mode they ran in

    bash scripts/notebooks.sh --export            every notebooks/*.ipynb
    python3 scripts/export_submission.py 01 03    only these sections (number, stem or file name)
    ... --mode full                               headline numbers of full mode (default: the
                                                  newest saved, quick or full)
    ... --out DIR --notebooks DIR --runs DIR      other folders (runs: default $DLKIT_RUNS or runs/)

Headline numbers come from `runs/<section>/<mode>/headline.json`, written by a notebook with
`dlkit::report::Headline` (section = the notebook's file name without .ipynb). A section
without one is listed as having none.

The export runs no notebook (run them first: `bash scripts/notebooks.sh`). It exits 1, after
writing everything, when a notebook has a code cell that never ran or an error output, naming
them; the index marks those sections too.
"""

import argparse
import datetime
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent

# The lab template with everything that would load from the network taken out (require.js,
# MathJax, mermaid) and SVG outputs written into the page as they are, so that the page is one
# file that renders offline. An SVG that declares ids is embedded as a data: URI image instead:
# ids of several inline SVGs would collide in one document.
TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block data_svg scoped -%}
<div class="jp-RenderedSVG jp-OutputArea-output {{ extra_class }}" data-mime-type="image/svg+xml">
{%- set svg = output.data['image/svg+xml'] -%}
{%- if ' id=' in svg %}
<img src="data:image/svg+xml;base64,{{ svg | text_base64 | escape_html }}">
{%- else %}
{{ svg }}
{%- endif %}
</div>
{%- endblock data_svg %}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def select(folder: Path, names: list[str]) -> list[Path]:
    """All notebooks in `folder` (sorted), or those named by number prefix, stem or file name."""
    every = sorted(folder.glob("*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        base = Path(name).name
        hits = [p for p in every if p.name == base or p.stem == base or p.name.startswith(base + "_")
                or (base.isdigit() and p.name.startswith(base))]
        if not hits:
            sys.exit(f"export_submission: no notebook in {folder} matches {name!r}")
        chosen += [p for p in hits if p not in chosen]
    return chosen


def title_of(nb) -> str:
    """The notebook's first markdown heading, else ''."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def problems_of(nb) -> list[str]:
    """Code cells that never ran, and error outputs (evcxr also reports panics on stderr)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.get("execution_count") is None:
            found.append(f"cell {i} was not executed")
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i} has an error output ({out.get('ename', '')}: {out.get('evalue', '')[:120]})")
            elif out.get("output_type") == "stream" and out.get("name") == "stderr" and "panicked at" in out.get("text", ""):
                found.append(f"cell {i} panicked")
    return found


def output_counts(nb) -> tuple[int, int]:
    """(charts, tables) among the saved outputs, each output counted by its richest type."""
    charts = tables = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/html" in data:
                tables += len(re.findall(r"<table[\s>]", data["text/html"], re.I))
            elif any(k in data for k in ("image/svg+xml", "image/png", "image/jpeg")):
                charts += 1
    return charts, tables


def read_headline(runs: Path, section: str, mode: str | None) -> tuple[dict | None, list[str]]:
    """The headline to show (the asked mode's, else the newest) and the other modes saved."""
    found = {}
    for m in ("quick", "full"):
        path = runs / section / m / "headline.json"
        if path.is_file():
            try:
                found[m] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                sys.exit(f"export_submission: {path}: not a headline file: {e}")
            if found[m].get("section") != section or found[m].get("mode") != m:
                sys.exit(f"export_submission: {path} holds the headline of {found[m].get('section')!r} "
                         f"in mode {found[m].get('mode')!r}, not {section!r} in {m!r}")
    if mode is not None:
        chosen = found.get(mode)
    else:
        chosen = max(found.values(), key=lambda h: h.get("written_unix", 0), default=None)
    others = [m for m in found if chosen is None or m != chosen["mode"]]
    return chosen, others


def number(value) -> str:
    """A headline value for the page: integers as they are, else 4 significant digits."""
    if isinstance(value, str):  # "NaN", "Infinity", "-Infinity" from dlkit's JSON
        return value
    if isinstance(value, float) and math.isfinite(value) and value != int(value):
        return f"{value:.4g}"
    return str(int(value)) if isinstance(value, float) and math.isfinite(value) else str(value)


def export_html(nb, name: str, folder: Path) -> str:
    """The notebook as one HTML page; `folder` is where its markdown's relative images are."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"submission.html.j2": TEMPLATE})],
        template_file="submission.html.j2",
        embed_images=True,  # images in markdown cells as data: URIs
        exclude_anchor_links=True,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name, "path": str(folder)}})
    return body


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


INDEX_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ccc; padding: 0.4em 0.6em; text-align: left; vertical-align: top; }
td.num { font-variant-numeric: tabular-nums; text-align: right; }
.bad { color: #a00; } .none { color: #777; font-style: italic; }
table.numbers td, table.numbers th { border: none; padding: 0.1em 0.6em 0.1em 0; }
"""


def index_page(rows: list[dict], commit: str) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>Submission</title>", f"<style>{INDEX_STYLE}</style></head><body>",
        "<h1>Submission</h1>",
        f"<p>Exported {e(datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'))} "
        f"from commit {e(commit)}. Each section links to its notebook as a page and as the "
        "executed <code>.ipynb</code>.</p>",
        "<table><thead><tr><th>section</th><th>mode</th><th>headline numbers</th>"
        "<th>charts</th><th>tables</th><th>status</th></tr></thead><tbody>",
    ]
    for r in rows:
        h = r["headline"]
        if h is None:
            numbers = '<span class="none">no headline numbers saved (runs/{}/&lt;mode&gt;/headline.json)</span>'.format(e(r["stem"]))
            mode = '<span class="none">unknown</span>'
        else:
            items = "".join(f"<tr><th>{e(n['name'])}</th><td class=\"num\">{e(number(n['value']))}</td></tr>"
                            for n in h.get("numbers", []))
            numbers = f'<table class="numbers">{items}</table>'
            written = datetime.datetime.fromtimestamp(h.get("written_unix", 0)).strftime("%Y-%m-%d %H:%M")
            mode = f"{e(h['mode'])}<br><small>saved {e(written)}</small>"
            if r["other_modes"]:
                mode += f"<br><small>also saved: {e(', '.join(r['other_modes']))}</small>"
        status = ("ok" if not r["problems"]
                  else '<span class="bad">' + "<br>".join(e(p) for p in r["problems"][:5]) + "</span>")
        out.append(
            f"<tr><td><a href=\"{e(r['stem'])}.html\">{e(r['stem'])}</a><br><small>{e(r['title'])}</small>"
            f"<br><small><a href=\"{e(r['stem'])}.ipynb\">{e(r['stem'])}.ipynb</a></small></td>"
            f"<td>{mode}</td><td>{numbers}</td><td class=\"num\">{r['charts']}</td>"
            f"<td class=\"num\">{r['tables']}</td><td>{status}</td></tr>"
        )
    out += ["</tbody></table>", "</body></html>", ""]
    return "\n".join(out)


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebooks by number, stem or file name (default: all)")
    parser.add_argument("--out", default=str(REPO / "submission"), help="output folder (default: submission/)")
    parser.add_argument("--notebooks", default=str(REPO / "notebooks"), help="where the notebooks are")
    parser.add_argument("--runs", default=os.environ.get("DLKIT_RUNS") or str(REPO / "runs"),
                        help="runs folder with <section>/<mode>/headline.json (default: $DLKIT_RUNS or runs/)")
    parser.add_argument("--mode", choices=["quick", "full"], help="show this mode's headline numbers (default: newest)")
    args = parser.parse_args()

    notebooks = select(Path(args.notebooks), args.names)
    if not notebooks:
        sys.exit(f"export_submission: no notebooks in {args.notebooks}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        problems = problems_of(nb)
        charts, tables = output_counts(nb)
        headline, others = read_headline(Path(args.runs), path.stem, args.mode)
        shutil.copyfile(path, out / path.name)
        write_text(out / f"{path.stem}.html", export_html(nb, path.stem, path.parent))
        rows.append({"stem": path.stem, "title": title_of(nb), "problems": problems, "charts": charts,
                     "tables": tables, "headline": headline, "other_modes": others})
        log(f"export_submission: {path.stem}: {charts} charts, {tables} tables, "
            f"headline: {headline['mode'] + ' mode' if headline else 'none'}"
            + (f"; PROBLEMS: {'; '.join(problems)}" if problems else ""))
    write_text(out / "index.html", index_page(rows, git_commit()))
    log(f"export_submission: wrote {out}/index.html and {len(rows)} notebook(s)")
    bad = [r["stem"] for r in rows if r["problems"]]
    if bad:
        log(f"export_submission: not ready to hand in (cells not run or failed): {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
