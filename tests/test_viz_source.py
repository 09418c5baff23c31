"""show_source: notebooks print the library's real code, without the docstring, naming its file."""

from __future__ import annotations

import inspect

import pytest

import lnedu.functional as F
from lnedu.viz.source import source_of


def test_source_names_the_file_and_drops_only_the_docstring():
    text = source_of(F.layer_norm)
    first, rest = text.split("\n", 1)
    assert first == "# lnedu/functional/norms.py::layer_norm"
    full = inspect.getsource(F.layer_norm)
    assert rest.startswith("def layer_norm(")
    assert F.layer_norm.__doc__.strip().splitlines()[0] not in rest  # the docstring is gone
    body = [line for line in full.splitlines() if line.strip() and not line.lstrip().startswith(("r\"\"\"", "\"\"\""))]
    assert body[-1].strip() in rest  # the last statement is still there


def test_with_docstring_keeps_it():
    text = source_of(F.layer_norm, docstring=True)
    assert F.layer_norm.__doc__.strip().splitlines()[0] in text


def test_a_method_and_a_class():
    from lnedu.nn import LSTM

    assert source_of(LSTM).split("\n", 1)[0].endswith("::LSTM")
    assert "def forward" in source_of(LSTM.forward)


def test_refuses_a_builtin_with_the_argument_named():
    with pytest.raises(TypeError, match="^obj: expected a Python function"):
        source_of(len)


def test_every_where_row_resolves_to_real_code():
    from lnedu.viz.source import WHERE, location, resolve

    assert len(WHERE) >= 30
    for concept, target, equation in WHERE:
        assert concept and equation
        resolve(target)  # raises LookupError naming the row's target if it moved
        loc = location(target)
        assert loc.startswith("lnedu/"), (concept, loc)


def test_a_moved_target_is_named():
    from lnedu.viz.source import resolve

    with pytest.raises(LookupError, match="layer_norm_gone"):
        resolve("lnedu.functional.layer_norm_gone")
    with pytest.raises(LookupError, match="nowhere.cuh"):
        resolve("lnedu/cuda/kernels/nowhere.cuh")


def test_readme_carries_the_current_where_table():
    from pathlib import Path

    from lnedu.viz.source import where_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = where_table()
    assert table in readme, "README's 'Where is ...?' table is out of date; paste this:\n" + table
