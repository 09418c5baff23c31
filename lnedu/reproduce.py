"""``python -m lnedu reproduce``: execute every notebook on the embedded defaults into an HTML report.

This sits above the experiments (it runs the notebooks, then writes the experiments' claims table), while the
headless notebook runner it uses, :mod:`lnedu.notebooks`, sits below them. It writes ``reports/``: one HTML
page per notebook, ``summary.md`` and ``index.html`` with a table of what ran, and the claims table with the
experiments' figures. Every file is written atomically (:mod:`lnedu._io`), so an interrupted run never
leaves a half-written page behind; the stored notebooks are never modified.
"""

from __future__ import annotations

import html
from pathlib import Path

from ._io import atomic_write_text
from .experiments import default_preset
from .experiments.report import claims_markdown, write_report
from .notebooks import check_timeout, execute_notebook, find_notebooks, require_lab

__all__ = ["reproduce"]


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
    text = "\n".join(lines) + "\n"
    if claims:  # the claims table of claims.md: paper's numbers, per-seed values, verdict with axis, why, note
        text += "\n" + claims_markdown(claims, title="## Claims")
    return text


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
    check_timeout(timeout)
    require_lab("reproduce", "nbconvert", "nbclient", "nbformat")
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
