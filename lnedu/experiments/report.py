"""``python -m lnedu report``: the claims table and the plots of every finished experiment.

Reads ``RUNS/NAME/summary.json`` and the per-run metrics that :func:`lnedu.experiments.run` wrote, draws each
experiment's figure with its own ``plot(results)``, and writes ``OUT/claims.md``, ``OUT/claims.html`` and
``OUT/NAME.png`` (all atomically).
"""

from __future__ import annotations

import html
import io
from pathlib import Path

from .._io import atomic_write_bytes, atomic_write_text, read_json
from . import EXPERIMENTS, get, load_results

__all__ = ["collect", "write_report"]


def collect(runs="runs") -> list[dict]:
    """The summaries of the finished experiments under ``runs``, in the paper's order."""
    rows = []
    for name in EXPERIMENTS:
        p = Path(runs) / name / "summary.json"
        if p.exists():
            rows.append(read_json(p, "experiment summary (JSON)"))
    return rows


def _held(v) -> str:
    return {True: "held", False: "did not hold", None: "undecided"}[v]


def _save_png_atomic(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def write_report(runs="runs", out="reports") -> list[dict]:
    """Write the claims table and one figure per finished experiment; returns the table rows."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(runs)
    md = [
        "# Claims: the paper's and our small runs'",
        "",
        "| experiment | paper | claim | our figure (preset, seeds) | verdict | note |",
        "|---|---|---|---|---|---|",
    ]
    trs = []
    for r in rows:
        exp = get(r["name"])
        fig = exp.plot(load_results(runs, r["name"]))
        _save_png_atomic(fig, out / f"{r['name']}.png")
        plt.close(fig)
        ours = f"{r['our_figure']} ({r['preset']}, seeds {', '.join(map(str, r['seeds']))})"
        md.append(f"| {r['title']} | {r['paper']} | {r['claim']} | {ours} | {_held(r['held'])} | {r['note']} |")
        trs.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (r["title"], r["paper"], r["claim"], ours))
            + f"<td class='{_held(r['held']).replace(' ', '-')}'>{_held(r['held'])}</td>"
            + f"<td>{html.escape(r['note'])}</td></tr>"
            + f"<tr><td colspan='6'><img src='{html.escape(r['name'])}.png' alt='{html.escape(r['title'])}'></td></tr>"
        )
    atomic_write_text(out / "claims.md", "\n".join(md) + "\n")
    atomic_write_text(
        out / "claims.html",
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>lnedu claims</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}.held{color:#070}"
        ".did-not-hold{color:#a00}img{max-width:100%}</style></head><body><h1>Claims</h1>"
        "<table id='claims'><thead><tr><th>experiment</th><th>paper</th><th>claim</th><th>our figure</th>"
        "<th>verdict</th><th>note</th></tr></thead><tbody>" + "".join(trs) + "</tbody></table></body></html>\n",
    )
    return rows
