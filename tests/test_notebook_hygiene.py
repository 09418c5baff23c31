"""Every stored notebook is one a student can trust: titled, ordered, executed, clean.

nbval (run by `make test` over notebooks/) checks that the stored outputs reproduce; these checks cover
what nbval does not: structure, stored errors, machine paths, and that the index lists every notebook.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from lnedu.notebooks import find_notebooks

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = find_notebooks(NOTEBOOKS) if NOTEBOOKS.is_dir() else []
ABSOLUTE = re.compile(r"(/home/|/root/|/work/|/tmp/|/Users/|[A-Z]:\\\\)")


def _read(path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks_and_an_index():
    names = [p.name for p in PATHS]
    assert names and names[0] == "00-index.ipynb"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_title_and_what_you_will_learn(path):
    nb = _read(path)
    md = [c for c in nb.cells if c.cell_type == "markdown"]
    assert md, "no markdown cell"
    number = path.name[:2]
    assert md[0].source.startswith(f"# {number}."), f"first cell should be the title '# {number}. ...'"
    if number != "00":
        assert any("what you will learn" in c.source.lower() for c in md[:3]), "no 'What you will learn' cell"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_stored_executed_without_errors(path):
    nb = _read(path)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code, "no code cell"
    assert all(c.execution_count is not None for c in code), "stored unexecuted: run `make notebooks`"
    counts = [c.execution_count for c in code]
    assert counts == sorted(counts), "cells were executed out of order"
    for c in code:
        for out in c.outputs:
            assert out.output_type != "error", f"stored error output: {out.get('ename')}"
            assert not (out.output_type == "stream" and out.name == "stderr" and "Traceback" in out.text)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_no_machine_paths(path):
    text = path.read_text(encoding="utf-8")
    # images are base64 and cannot hold paths; strip them before searching
    text = re.sub(r'"image/png": "[^"]*"', "", text)
    m = ABSOLUTE.search(text)
    assert m is None, f"machine path near: {text[max(0, m.start() - 60): m.end() + 60]!r}"


def test_index_lists_every_notebook_in_order():
    index = (NOTEBOOKS / "00-index.ipynb").read_text(encoding="utf-8")
    positions = []
    for p in PATHS[1:]:
        stem = p.stem
        assert stem in index, f"00-index does not mention {stem}"
        positions.append(index.index(stem))
    assert positions == sorted(positions), "00-index lists the notebooks out of order"


_LISTING = re.compile(r"^# (lnedu/[\w/]+\.py)::([\w.]+)$", re.M)


def _listed(text):
    """The ``show_source`` listings in one cell's stored output: ``[(file, qualname, text), ...]``."""
    heads = list(_LISTING.finditer(text))
    return [(m.group(1), m.group(2), text[m.start(): heads[k + 1].start() if k + 1 < len(heads) else len(text)])
            for k, m in enumerate(heads)]


def _stale_listings(cells) -> list[str]:
    """``file::qualname`` of every stored ``show_source`` listing that differs from the current source."""
    import importlib

    from lnedu.viz.source import source_of

    stale = []
    for cell in cells:
        if cell.cell_type != "code" or "show_source(" not in cell.source:
            continue
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        listings = _listed(text)
        if not listings:
            stale.append(f"(no listing stored for: {cell.source.strip()})")
        for file, qualname, stored in listings:
            obj = importlib.import_module(file[:-3].replace("/", "."))
            for part in qualname.split("."):
                obj = getattr(obj, part)
            if stored not in (source_of(obj), source_of(obj, docstring=True)):
                stale.append(f"{file}::{qualname}")
    return stale


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_stored_source_listings_are_the_current_source(path):
    """A stored ``show_source(...)`` output equals the code that runs today (else: re-execute the notebook)."""
    stale = _stale_listings(_read(path).cells)
    assert not stale, f"{path.name}: stale listings of {stale}: run `make notebooks`"


def test_a_stale_listing_is_caught():
    from lnedu.functional import layer_norm
    from lnedu.viz.source import source_of

    fresh = source_of(layer_norm)
    cell = nbformat.v4.new_code_cell("show_source(F.layer_norm)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=fresh)]
    assert _stale_listings([cell]) == []
    cell.outputs[0].text = fresh.replace("eps", "epsilon", 1)
    assert _stale_listings([cell]) == ["lnedu/functional/norms.py::layer_norm"]
    cell.outputs = []
    assert len(_stale_listings([cell])) == 1


# ---- clean files (issue 15 item 4): nothing stored that changes from one execution to the next ----------------


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_no_volatile_metadata(path):
    """No execution timestamps, widget ids numbered in order: the stored file is what `make notebooks` writes."""
    from lnedu.notebooks import VOLATILE_CELL_METADATA, clean_notebook

    nb = _read(path)
    stamped = [i for i, c in enumerate(nb.cells) if any(k in c.metadata for k in VOLATILE_CELL_METADATA)]
    assert not stamped, f"cells {stamped} store execution timestamps: run `make notebooks`"
    assert nbformat.writes(clean_notebook(nb)) == nbformat.writes(nb), "volatile metadata stored: run `make notebooks`"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_execution_counts_are_exactly_one_to_n(path):
    counts = [c.execution_count for c in _read(path).cells if c.cell_type == "code" and c.source.strip()]
    assert counts == list(range(1, len(counts) + 1)), f"execution counts {counts}: run `make notebooks`"
