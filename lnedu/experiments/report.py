"""``python -m lnedu report``: the claims table and the plots of every finished experiment.

Reads ``RUNS/NAME/summary.json`` and the per-run metrics that :func:`lnedu.experiments.run` wrote, draws each
experiment's figure with its own ``plot(results)``, and writes ``OUT/claims.md``, ``OUT/claims.html`` and
``OUT/NAME.png`` (all atomically).

Per claim the table gives the paper's own numbers where the paper has them (``PAPER_NUMBERS`` of the module,
cited), ours as mean ± sd (n seeds) per arm, each part's per-seed values, the verdict word of the one rule
(:mod:`lnedu.experiments.verdicts`) with the axis it was decided on, and a short why.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

from .._io import atomic_write_bytes, atomic_write_text, read_json
from . import EXPERIMENTS, get, load_results

__all__ = ["collect", "write_report", "verdict_word", "claims_markdown", "per_seed_lines"]

COLUMNS = ("experiment", "paper", "claim", "our figure (preset, seeds)", "verdict", "decided on", "why",
           "per seed", "the paper's numbers", "note")


def collect(runs="runs") -> list[dict]:
    """The summaries of the finished experiments under ``runs``, in the paper's order."""
    rows = []
    for name in EXPERIMENTS:
        p = Path(runs) / name / "summary.json"
        if p.exists():
            rows.append(read_json(p, "experiment summary (JSON)"))
    return rows


def verdict_word(row: dict) -> str:
    """The verdict word of a summary: the rule's (``verdict``), else from ``held`` (older summaries)."""
    return row.get("verdict") or {True: "held", False: "did not hold", None: "undecided (within seed noise)"}[
        row["held"]]


_held = verdict_word  # the old private name


def per_seed_lines(row: dict) -> list[str]:
    """One line per part of the claim: its word and every seed's value of both arms."""
    out = []
    for part in row.get("parts", []):
        seeds = sorted({int(s) for v in part["values"].values() for s in v})
        arms = "; ".join(f"{arm}: " + ", ".join(f"{vals[str(s)]:.4g}" if str(s) in vals else "-" for s in seeds)
                         for arm, vals in part["values"].items())
        out.append(f"{part['claim']} ({part['axis']}): {part['outcome']}. {arms} (seeds {', '.join(map(str, seeds))})")
    return out


def _cells(r: dict) -> list[str]:
    ours = f"{r['our_figure']} ({r['preset']}, seeds {', '.join(map(str, r['seeds']))})"
    return [r["title"], r["paper"], r["claim"], ours, verdict_word(r), r.get("axis", ""), r.get("why", ""),
            "\n".join(per_seed_lines(r)), r.get("paper_numbers", ""), r["note"]]


def claims_markdown(rows, title: str = "# Claims: the paper's and our small runs'") -> str:
    """The claims table as Markdown (``summary.md`` of ``reproduce`` uses it too)."""
    def md(text):
        return str(text).replace("|", "\\|").replace("\n", "<br>")
    lines = [title, "", "Verdicts: one rule for every claim (`lnedu.experiments.verdicts`): held when the per-seed "
             "difference favours the claim by more than 2 standard errors with n-1 seeds agreeing, did not hold when "
             "the same test passes the other way, undecided (within seed noise) otherwise, not tested when an arm "
             "never improved on its first evaluation.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(md(c) for c in _cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _save_png_atomic(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def write_figure(runs, name: str, out) -> str:
    """Draw experiment ``name``'s figure from its runs under ``runs`` into ``out/NAME.png`` (atomically); returns
    ``name``. :func:`write_report` calls it for each finished experiment; ``reproduce --jobs`` calls it in a worker
    as soon as an experiment's runs are trained, so that the figures are not all drawn at the end."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig = get(name).plot(load_results(runs, name))
    _save_png_atomic(fig, out / f"{name}.png")
    plt.close(fig)
    return name


def write_report(runs="runs", out="reports", *, drawn=()) -> list[dict]:
    """Write the claims table and one figure per finished experiment; returns the table rows. ``drawn``: the
    experiments whose figures :func:`write_figure` already drew into ``out`` from these runs (not drawn again)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(runs)
    trs = []
    for r in rows:
        if r["name"] not in drawn:
            write_figure(runs, r["name"], out)
        cells = _cells(r)
        word = verdict_word(r)
        trs.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells[:4])
            + f"<td class='{word.split(' (')[0].replace(' ', '-')}'>{html.escape(word)}</td>"
            + "".join(f"<td>{html.escape(str(c)).replace(chr(10), '<br>')}</td>" for c in cells[5:]) + "</tr>"
            + f"<tr><td colspan='{len(COLUMNS)}'><img src='{html.escape(r['name'])}.png' "
            f"alt='{html.escape(r['title'])}'></td></tr>"
        )
    atomic_write_text(out / "claims.md", claims_markdown(rows))
    atomic_write_text(
        out / "claims.html",
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>lnedu claims</title>"
        "<style>body{font-family:sans-serif;max-width:90em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}.held{color:#070}"
        ".did-not-hold{color:#a00}.undecided,.not-tested{color:#666}img{max-width:100%}</style></head><body>"
        "<h1>Claims</h1><p>One rule for every claim (<code>lnedu.experiments.verdicts</code>): held when the per-seed "
        "difference favours the claim by more than 2 standard errors with n-1 seeds agreeing, did not hold when the "
        "same test passes the other way, undecided (within seed noise) otherwise, not tested when an arm never "
        "improved on its first evaluation.</p>"
        "<table id='claims'><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        + "</tr></thead><tbody>" + "".join(trs) + "</tbody></table></body></html>\n",
    )
    return rows
