#!/usr/bin/env python3
"""Tests of scripts/export_submission.py, and a check of an existing export.

    python3 scripts/test_export.py                   the exporter on made-up notebooks (seconds)
    python3 scripts/test_export.py --check submission   every <notebook>.html in a real export:
                                                     charts and tables inline, nothing loaded
                                                     from a file or the network

The made-up notebooks hold what the course's notebooks produce (an SVG chart as evcxr sends
it, a PNG image grid, an HTML table, a markdown image) plus an SVG with ids, a notebook whose
cells never ran, and headline files in both modes.
"""

import argparse
import base64
import json
import re
import subprocess
import sys
import tempfile
import zlib
import struct
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

OUTPUT_DIV = re.compile(r'<div class="(jp-RenderedSVG|jp-RenderedImage)[^"]*"[^>]*>(.*?)</div>', re.S)


def self_contained_problems(text: str, folder: Path | None = None) -> list[str]:
    """What in an exported page would load from outside it: any src=, <link href=, CSS url()
    or @import that is not a data: URI, and <a href> links to relative files (except to files
    present in `folder`, the submission: the index links to the pages beside it)."""
    problems = []
    for m in re.finditer(r'<(\w+)[^>]*?\s(src|href)\s*=\s*["\']?([^"\' >]*)', text, re.I):
        tag, attr, url = m.group(1).lower(), m.group(2).lower(), m.group(3)
        if url.startswith("data:"):
            continue
        if tag == "a" and attr == "href":
            if url.startswith(("#", "http://", "https://", "mailto:")) or url == "":
                continue  # a link the reader may follow, not something the page loads
            if folder is not None and "/" not in url and (folder / url).is_file():
                continue  # a page or notebook of the same submission
            problems.append(f"a link to a relative file: <a href=\"{url}\">")
        else:
            problems.append(f"<{tag} {attr}=\"{url[:80]}\"> loads from outside the page")
    for m in re.finditer(r"url\(\s*['\"]?([^'\")]*)", text):
        if not m.group(1).startswith("data:") and not m.group(1).startswith("#"):
            problems.append(f"CSS url({m.group(1)[:80]}) loads from outside the page")
    if re.search(r"@import", text):
        problems.append("CSS @import")
    return problems


def chart_outputs(text: str) -> tuple[int, list[str]]:
    """(number of chart outputs, problems): each must hold an inline <svg> or a data: image."""
    found, problems = 0, []
    for m in OUTPUT_DIV.finditer(text):
        found += 1
        body = m.group(2)
        if not (re.search(r"<svg[\s>]", body) or re.search(r'src="data:image/(png|jpeg|svg\+xml);base64,', body)):
            problems.append(f"a {m.group(1)} output without an inline <svg> or data: image: {body[:120]!r}")
    return found, problems


def check_export(folder: Path) -> list[str]:
    """Each <name>.html beside <name>.ipynb holds at least the notebook's charts and tables,
    all inline, and loads nothing from outside itself."""
    sys.path.insert(0, str(HERE))
    from export_submission import output_counts

    problems = []
    pages = sorted(p for p in folder.glob("*.html") if p.name != "index.html")
    if not pages:
        return [f"no exported pages in {folder}"]
    if not (folder / "index.html").is_file():
        problems.append(f"{folder}/index.html is missing")
    else:
        problems += [f"index.html: {p}" for p in self_contained_problems((folder / "index.html").read_text(encoding="utf-8"), folder)]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        nb_path = page.with_suffix(".ipynb")
        if not nb_path.is_file():
            problems.append(f"{page.name}: no {nb_path.name} beside it")
            continue
        want_charts, want_tables = output_counts(nbformat.read(nb_path, as_version=4))
        charts, chart_problems = chart_outputs(text)
        tables = len(re.findall(r"<table[\s>]", text, re.I))
        problems += [f"{page.name}: {p}" for p in chart_problems + self_contained_problems(text, folder)]
        if charts < want_charts:
            problems.append(f"{page.name}: {charts} charts, the notebook has {want_charts}")
        if tables < want_tables:
            problems.append(f"{page.name}: {tables} tables, the notebook has {want_tables}")
        print(f"test_export: {page.name}: {charts} charts (notebook {want_charts}), {tables} tables (notebook {want_tables})")
    return problems


# ---------------------------------------------------------------------------------------------
# the exporter on made-up notebooks

def png_bytes(width: int, height: int, rgb=(200, 30, 30)) -> bytes:
    """A tiny valid PNG (8-bit RGB, no filter), written by hand."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


SVG = ('<svg width="200" height="100" viewBox="0 0 200 100" xmlns="http://www.w3.org/2000/svg">'
       '<rect x="0" y="0" width="200" height="100" fill="#FFFFFF"/><text x="10" y="50">loss per epoch</text></svg>')
SVG_WITH_IDS = ('<svg width="50" height="50" xmlns="http://www.w3.org/2000/svg"><defs><clipPath id="c0">'
                '<rect width="10" height="10"/></clipPath></defs><rect clip-path="url(#c0)" width="50" height="50"/></svg>')
TABLE = "<table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody><tr><td>test accuracy</td><td>0.4312</td></tr></tbody></table>"


def made_up(folder: Path) -> None:
    png64 = base64.b64encode(png_bytes(4, 3)).decode()
    (folder / "picture.png").write_bytes(png_bytes(2, 2, (0, 0, 255)))
    code = lambda n, src, outputs: nbformat.v4.new_code_cell(src, execution_count=n, outputs=outputs)
    good = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 01 · Optimizers\nA figure from a file: ![figure](picture.png)\n\nMath $x^2$."),
        code(1, ":dep dlkit", [nbformat.v4.new_output("execute_result", data={"text/plain": "ok"}, execution_count=1)]),
        code(2, "chart", [nbformat.v4.new_output("execute_result", data={"image/svg+xml": SVG}, execution_count=2)]),
        code(3, "grid", [nbformat.v4.new_output("display_data", data={"image/png": png64})]),
        code(4, "table", [nbformat.v4.new_output("execute_result", data={"text/html": TABLE}, execution_count=4)]),
        code(5, "clipped", [nbformat.v4.new_output("display_data", data={"image/svg+xml": SVG_WITH_IDS})]),
        code(6, "print", [nbformat.v4.new_output("stream", name="stdout", text="epoch 1/1 done\n")]),
    ])
    good.metadata["kernelspec"] = {"name": "rust", "display_name": "Rust", "language": "rust"}
    nbformat.write(good, folder / "01_optimizers.ipynb")
    never_run = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 02 · Never run"),
        nbformat.v4.new_code_cell("let x = 1;"),
    ])
    nbformat.write(never_run, folder / "02_never_run.ipynb")


def headline(runs: Path, section: str, mode: str, written: int, numbers: list) -> None:
    path = runs / section / mode / "headline.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"section": section, "mode": mode, "written_unix": written,
                                "numbers": [{"name": n, "value": v} for n, v in numbers]}))


def test_exporter() -> list[str]:
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nbs, runs, out = tmp / "notebooks", tmp / "runs", tmp / "submission"
        nbs.mkdir()
        made_up(nbs)
        headline(runs, "01_optimizers", "quick", 2_000_000_000, [("test accuracy (Adam)", 0.43121), ("epochs", 5.0), ("diverged", "NaN")])
        headline(runs, "01_optimizers", "full", 1_900_000_000, [("test accuracy (Adam)", 0.61)])
        run = subprocess.run([sys.executable, str(HERE / "export_submission.py"), "--notebooks", str(nbs),
                              "--runs", str(runs), "--out", str(out)], capture_output=True, text=True)
        expect = lambda ok, what: problems.append(what) if not ok else None
        expect(run.returncode == 1, f"exit status {run.returncode}, expected 1 (a notebook never ran): {run.stderr}")
        expect("02_never_run" in run.stderr and "cell 1 was not executed" in run.stderr,
               f"the unexecuted notebook is not named: {run.stderr}")
        for name in ["01_optimizers.ipynb", "01_optimizers.html", "02_never_run.html", "index.html"]:
            expect((out / name).is_file(), f"{name} was not written")
        if problems:
            return problems

        page = (out / "01_optimizers.html").read_text()
        charts, chart_problems = chart_outputs(page)
        problems += chart_problems + self_contained_problems(page)
        expect(charts == 3, f"{charts} chart outputs in the page, expected 3 (SVG, PNG, SVG with ids)")
        # nbconvert re-serialises the page (attributes lower-cased, <rect/> as <rect></rect>),
        # so look for the chart's text inside an inline <svg> element.
        inline = re.compile(r'<svg[^>]*>(?:(?!</svg>).)*<text x="10" y="50">loss per epoch</text>.*?</svg>', re.S)
        expect(inline.search(page) is not None, "the SVG chart is not in the page as an inline <svg> element")
        expect('id="c0"' not in page and "data:image/svg+xml;base64," in page,
               "an SVG with ids must be embedded as a data: image, not inline")
        expect("data:image/png;base64," + base64.b64encode(png_bytes(4, 3)).decode() in page, "the PNG output is not inline")
        expect("data:image/png;base64," + base64.b64encode(png_bytes(2, 2, (0, 0, 255))).decode() in page,
               "the markdown cell's picture.png is not embedded")
        expect("<td>0.4312</td>" in page, "the HTML table is missing")
        expect("<script src" not in page and "mathjax" not in page.lower(), "the page still loads a script")
        expect("$x^2$" in page, "math should stay as TeX source")

        index = (out / "index.html").read_text()
        row = index.split('href="01_optimizers.html"')[1].split("</tr></tbody>")[0] if 'href="01_optimizers.html"' in index else ""
        expect(row != "", "the index does not link 01_optimizers.html")
        expect("quick" in row.split("<td>")[1] if "<td>" in row else False, "the newest headline (quick) is not the one shown")
        expect("also saved: full" in row, "the older full-mode headline is not mentioned")
        expect("0.4312" in row and ">5<" in row and "NaN" in row, f"headline numbers missing or misformatted: {row[:600]}")
        expect("0.61" not in row, "the full-mode numbers are shown although the quick ones are newer")
        never = index.split('href="02_never_run.html"')[1] if 'href="02_never_run.html"' in index else ""
        expect("no headline numbers saved" in never and "cell 1 was not executed" in never,
               "the index does not say that 02 has no headline and never ran")
        problems += self_contained_problems(index, out)

        # --mode full picks the older full-mode numbers.
        subprocess.run([sys.executable, str(HERE / "export_submission.py"), "01", "--notebooks", str(nbs),
                        "--runs", str(runs), "--out", str(tmp / "full"), "--mode", "full"], capture_output=True, check=True)
        full_index = (tmp / "full" / "index.html").read_text()
        expect("0.61" in full_index and "0.4312" not in full_index, "--mode full does not show the full-mode numbers")

        # The checker itself must catch what it looks for.
        bad = inline.sub('<img src="chart.svg">', page) + '<script src="https://cdn.example/x.js"></script>'
        found = self_contained_problems(bad) + chart_outputs(bad)[1]
        expect(any("chart.svg" in p for p in found) and any("cdn.example" in p for p in found),
               f"the self-containment check missed a file and a network load: {found}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", metavar="DIR", help="check an existing export instead of testing the exporter")
    args = parser.parse_args()
    problems = check_export(Path(args.check)) if args.check else test_exporter()
    for p in problems:
        print(f"test_export: FAILED: {p}")
    print(f"test_export: {'passed' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
