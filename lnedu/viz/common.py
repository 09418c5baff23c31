"""Small helpers the notebooks share: the table of notebooks for the index, and figure scaffolding.

Nothing here needs Jupyter: notebooks are JSON files, read with the standard library, so the index can be
built (and tested) without nbformat.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

__all__ = ["NotebookEntry", "notebook_index", "new_figure"]

_NUMBER = re.compile(r"^(\d\d)-")
_TITLE_NUMBER = re.compile(r"^\d\d\.\s*")


class NotebookEntry(NamedTuple):
    """One notebook of the index: its two-digit number (``None`` when the name has none), name, title."""

    number: int | None
    name: str  # file name without .ipynb, e.g. "01-layer-norm-from-scratch"
    title: str  # the first markdown heading, without "# " and the "NN. " prefix


def _first_title(cells) -> str:
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        for line in text.splitlines():
            if line.startswith("# "):
                return _TITLE_NUMBER.sub("", line[2:].strip())
        return ""  # only the first markdown cell holds the title
    return ""


def notebook_index(folder) -> list[NotebookEntry]:
    """Every ``*.ipynb`` directly inside ``folder``, sorted by file name, with the title of each.

    The title is the first ``# `` heading of the notebook's first markdown cell (``""`` if it has none).
    Unnumbered notebooks are listed too (with ``number=None``), so that a caller can check the numbering.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: expected a folder of notebooks, got {str(folder)!r}, which is not one")
    rows = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"folder: expected notebooks (JSON), but {path.name} is not valid JSON ({exc})") from exc
        m = _NUMBER.match(path.name)
        rows.append(NotebookEntry(int(m.group(1)) if m else None, path.stem, _first_title(nb.get("cells", []))))
    return rows


def new_figure(ncols: int = 1, *, width: float = 4.0, height: float = 3.2, nrows: int = 1):
    """A matplotlib ``Figure`` and its axes (a flat list), made without pyplot.

    The figure belongs to no pyplot state: library code can draw into it, render it to PNG (the
    explorers do), or hand it to a notebook, which displays it once when it is a cell's last value.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, list(axes.ravel())
