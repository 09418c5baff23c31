"""Run the notebooks headless: re-execute them in place, or execute copies into an HTML report.

``python -m lnedu reproduce`` executes every notebook of ``notebooks/`` on the embedded defaults and writes
``reports/`` (one HTML page per notebook, ``summary.md`` and ``index.html`` with a table of what ran);
``python -m lnedu notebooks --execute-in-place`` refreshes the stored outputs after a library change.
Every file is written atomically (a temporary file, then a rename), so an interrupted run never leaves a
half-written notebook or page behind.
"""

from __future__ import annotations

import html
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ._io import atomic_write_text

__all__ = ["NotebookRun", "find_notebooks", "execute_notebook", "execute_in_place", "reproduce", "atomic_write_text"]

_NAME = re.compile(r"^(\d\d)-[\w-]+\.ipynb$")


def find_notebooks(folder) -> list[Path]:
    """The numbered notebooks (``NN-name.ipynb``) of ``folder``, in reading order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: expected a folder of notebooks, got {str(folder)!r}, which does not exist")
    return sorted(p for p in folder.glob("*.ipynb") if _NAME.match(p.name))


@dataclass
class NotebookRun:
    """What happened when one notebook ran."""

    path: Path
    title: str
    seconds: float
    ok: bool
    error: str = ""


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def execute_notebook(path, *, timeout: int = 900, env: dict | None = None):
    """Execute the notebook at ``path`` (in its own folder) and return ``(notebook, NotebookRun)``.

    An error inside the notebook does not raise: the run is marked failed and the partial notebook returned.
    ``env`` adds environment variables for the kernel.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    ok, error = True, ""
    try:
        client.execute(env={**os.environ, **(env or {})})
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:  # a timeout or a dead kernel, too
        ok, error = False, str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return nb, NotebookRun(path, _title(nb), time.perf_counter() - start, ok, error)


def execute_in_place(paths, *, timeout: int = 900, progress: bool = True) -> list[NotebookRun]:
    """Re-execute notebooks and store them with their new outputs (only those that ran without error)."""
    import nbformat
    from tqdm.auto import tqdm

    runs = []
    for path in tqdm(list(paths), desc="notebooks", disable=not progress):
        nb, run = execute_notebook(path, timeout=timeout)
        if run.ok:
            atomic_write_text(path, nbformat.writes(nb))
        runs.append(run)
    return runs


def _summary_markdown(runs, claims=()) -> str:
    lines = [
        "# lnedu reproduce: summary",
        "",
        "| notebook | title | status | seconds |",
        "|---|---|---|---|",
    ]
    for r in runs:
        status = "ok" if r.ok else f"FAILED: {r.error}"
        lines.append(f"| {r.path.name} | {r.title} | {status} | {r.seconds:.1f} |")
    total = sum(r.seconds for r in runs)
    lines += ["", f"{sum(r.ok for r in runs)} of {len(runs)} notebooks ran without error in {total:.1f} s."]
    if claims:
        lines += ["", "## Claims", "", "| experiment | paper | our figure | verdict |", "|---|---|---|---|"]
        verdict = {True: "held", False: "did not hold", None: "undecided"}
        lines += [f"| {c['title']} | {c['paper']} | {c['our_figure']} | {verdict[c['held']]} |" for c in claims]
    return "\n".join(lines) + "\n"


def _index_html(runs, claims=()) -> str:
    rows = "\n".join(
        f"<tr><td><a href='{html.escape(r.path.stem)}.html'>{html.escape(r.path.name)}</a></td>"
        f"<td>{html.escape(r.title)}</td><td class='{'ok' if r.ok else 'bad'}'>"
        f"{'ok' if r.ok else 'FAILED: ' + html.escape(r.error)}</td><td>{r.seconds:.1f}</td></tr>"
        for r in runs
    )
    claims_link = (
        f"<p><a href='claims.html'>The claims table</a>: {len(claims)} experiment(s), the paper's claim "
        "beside our small run's figure and verdict.</p>" if claims else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lnedu reproduce report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em}}.ok{{color:#070}}.bad{{color:#a00}}</style></head>
<body><h1>lnedu reproduce report</h1>
<p>Every notebook executed headless on the embedded defaults. Each page shows the notebook as it ran.</p>
<table id="notebooks"><thead><tr><th>notebook</th><th>title</th><th>status</th><th>seconds</th></tr></thead>
<tbody>
{rows}
</tbody></table>
{claims_link}
</body></html>
"""


def reproduce(notebooks="notebooks", out="reports", *, runs="runs", timeout: int = 900, progress: bool = True,
              only=None):
    """Execute copies of the notebooks and write ``out/NAME.html``, ``out/summary.md``, ``out/index.html``.

    Experiment notebooks train into ``runs/PRESET`` (resuming what is there); afterwards the claims table
    and the experiments' figures are written too (``out/claims.md``, ``out/claims.html``, ``out/NAME.png``).
    The stored notebooks are not modified. Returns the list of :class:`NotebookRun`.
    """
    from nbconvert import HTMLExporter
    from tqdm.auto import tqdm

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"out: expected a writable folder, got {str(out)!r} ({exc.strerror})") from exc
    paths = find_notebooks(notebooks)
    if only:
        paths = [p for p in paths if any(o in p.name for o in only)]
    from .experiments import default_preset
    from .experiments.report import write_report

    env = {"LNEDU_RUNS": str(Path(runs).resolve())}
    exporter = HTMLExporter()
    done = []
    for path in tqdm(paths, desc="reproduce", disable=not progress):
        nb, run = execute_notebook(path, timeout=timeout, env=env)
        body, _ = exporter.from_notebook_node(nb)
        atomic_write_text(out / f"{path.stem}.html", body)
        done.append(run)
    claims = write_report(Path(runs) / default_preset(), out)
    atomic_write_text(out / "summary.md", _summary_markdown(done, claims))
    atomic_write_text(out / "index.html", _index_html(done, claims))
    return done
