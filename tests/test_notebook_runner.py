"""The headless notebook runner (lnedu.notebooks) and the report above it (lnedu.reproduce), behind
`make notebooks` and `make reproduce`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lnedu.notebooks import execute_in_place, execute_notebook, find_notebooks
from lnedu.reproduce import reproduce


def _write(folder, name, code, title="Tiny"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}"), nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / name
    nbformat.write(nb, path)
    return path


def test_reproduce_writes_pages_summary_and_index(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _write(nbs, "01-good.ipynb", "import os\nprint(6 * 7, os.environ['LNEDU_RUNS'].endswith('runs'))", title="01. Good")
    _write(nbs, "02-bad.ipynb", "raise ValueError('boom')", title="02. Bad")
    _write(nbs, "scratch.ipynb", "print('not numbered: ignored')")
    out = tmp_path / "out"
    runs = reproduce(nbs, out, runs=tmp_path / "runs", progress=False)
    assert [r.path.name for r in runs] == ["01-good.ipynb", "02-bad.ipynb"]
    assert [r.ok for r in runs] == [True, False]
    assert "boom" in runs[1].error
    page = (out / "01-good.html").read_text(encoding="utf-8")
    assert "42 True" in page
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| 01-good.ipynb | 01. Good | ok |" in summary
    assert "FAILED" in summary and "1 of 2 notebooks ran without error" in summary
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.count("<tr><td><a href=") == 2
    assert not list(out.glob(".tmp-*")), "temporary files must not remain"
    # the stored notebooks were not touched
    assert nbformat.read(nbs / "01-good.ipynb", as_version=4).cells[1].outputs == []


def test_reproduce_runs_the_experiments_at_the_preset_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("LNEDU_PRESET", "tiny")  # what `--preset` overrides
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _write(nbs, "01-preset.ipynb", "import os\nprint('preset=' + os.environ['LNEDU_PRESET'])")
    reproduce(nbs, tmp_path / "out", runs=tmp_path / "runs", progress=False, preset="medium")
    assert "preset=medium" in (tmp_path / "out" / "01-preset.html").read_text(encoding="utf-8")
    assert "Experiments at the `medium` preset." in (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="preset: expected a preset name"):
        reproduce(nbs, tmp_path / "out", progress=False, preset="../x")


def test_execute_in_place_stores_outputs_only_for_notebooks_that_ran(tmp_path):
    good = _write(tmp_path, "01-good.ipynb", "print('fresh output')")
    bad = _write(tmp_path, "02-bad.ipynb", "1 / 0")
    before_bad = bad.read_text(encoding="utf-8")
    runs = execute_in_place([good, bad], progress=False)
    assert [r.ok for r in runs] == [True, False]
    outputs = nbformat.read(good, as_version=4).cells[1].outputs
    assert outputs and "fresh output" in outputs[0]["text"]
    assert bad.read_text(encoding="utf-8") == before_bad


def test_find_notebooks_orders_and_rejects_missing_folder(tmp_path):
    for name in ("10-b.ipynb", "02-a.ipynb", "x.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in find_notebooks(tmp_path)] == ["02-a.ipynb", "10-b.ipynb"]
    with pytest.raises(FileNotFoundError, match="folder: expected a folder of notebooks"):
        find_notebooks(tmp_path / "nope")


def test_timeout_is_checked_before_anything_runs(tmp_path):
    path = _write(tmp_path, "01-a.ipynb", "print(1)")
    for bad in (-5, 0, 2.5, True):
        with pytest.raises(ValueError, match="timeout: expected a positive number of seconds"):
            execute_notebook(path, timeout=bad)
        with pytest.raises(ValueError, match="timeout: expected a positive number of seconds"):
            reproduce(tmp_path, tmp_path / "out", timeout=bad, progress=False)
    assert not (tmp_path / "out").exists()


def test_the_runner_sits_below_the_experiments_and_reproduce_above():
    """No import circle notebooks.py <-> experiments: experiments write through lnedu._io and never name the
    notebook runner or the report; the runner names no experiment (its one lazy import is the old
    ``lnedu.notebooks.reproduce`` alias)."""
    pkg = Path(__file__).resolve().parents[1] / "lnedu"

    def imported(path):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                yield node.lineno, (node.module or "") + " " + " ".join(a.name for a in node.names)
            elif isinstance(node, ast.Import):
                yield node.lineno, " ".join(a.name for a in node.names)

    for path in sorted((pkg / "experiments").glob("*.py")):
        for line, names in imported(path):
            assert "notebooks" not in names and "reproduce" not in names, f"{path.name}:{line} imports {names}"
    for line, names in imported(pkg / "notebooks.py"):
        assert "experiments" not in names, f"notebooks.py:{line} imports {names}"
    code = ("import sys, lnedu.experiments, lnedu.experiments.report, lnedu.experiments.sweep; "
            "print('lnedu.notebooks' in sys.modules, 'lnedu.reproduce' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False"]


# ---- clean, quiet re-execution (issue 15 items 4, 5) --------------------------------------------------------


def test_clean_notebook_drops_timestamps_and_numbers_widgets_in_order():
    from lnedu.notebooks import WIDGET_STATE, clean_notebook

    a, b, c = "c" * 32, "a" * 32, "b" * 32  # c: the box shown; b: its child; a: a model no output shows
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("box", execution_count=1, metadata={"execution": {"iopub.status.busy": "x"},
                                                                         "tags": ["keep"]})
    cell.outputs = [nbformat.v4.new_output("execute_result", {"application/vnd.jupyter.widget-view+json":
                                                              {"model_id": a, "version_major": 2}}, execution_count=1)]
    nb.cells = [cell]
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": {
        b: {"model_name": "LayoutModel", "state": {}},
        c: {"model_name": "FloatSliderModel", "state": {"layout": f"IPY_MODEL_{b}"}},
        a: {"model_name": "VBoxModel", "state": {"children": [f"IPY_MODEL_{c}"]}}}, "version_major": 2}}
    clean = clean_notebook(nb)
    assert "execution" in nb.cells[0].metadata, "the notebook given is not changed"
    assert clean.cells[0].metadata == {"tags": ["keep"]}
    state = clean.metadata["widgets"][WIDGET_STATE]["state"]
    one, two = f"{1:032x}", f"{2:032x}"
    assert clean.cells[0].outputs[0].data["application/vnd.jupyter.widget-view+json"]["model_id"] == one
    assert state[one]["state"]["children"] == [f"IPY_MODEL_{two}"] and state[two]["model_name"] == "FloatSliderModel"
    assert state[f"{3:032x}"]["model_name"] == "LayoutModel"
    assert nbformat.writes(clean_notebook(clean)) == nbformat.writes(clean), "cleaning twice changes nothing"


@pytest.mark.slow
def test_executing_an_unchanged_notebook_again_writes_the_same_bytes_quietly(tmp_path):
    """Through the CLI, as `make notebooks` does: a plot, an explorer widget and text; run twice -> same bytes,
    no execution timestamps, counts 1..n, no kernel warning about TCP, one progress bar naming the notebook."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01. Twice"),
                nbformat.v4.new_code_cell("from lnedu.viz.layernorm import layer_norm_explorer\nlayer_norm_explorer()"),
                nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\n\nplt.plot([1, 3, 2]);"),
                nbformat.v4.new_code_cell("print(sum(range(10)))")]
    path = tmp_path / "01-twice.ipynb"
    nbformat.write(nb, path)
    stored = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-m", "lnedu", "notebooks", "--execute-in-place", str(path)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert "without encryption" not in res.stderr and "WARNING" not in res.stderr, res.stderr
        assert "01-twice.ipynb" in res.stderr, "the progress bar names the notebook"
        stored.append(path.read_bytes())
    assert stored[0] == stored[1], "re-executing an unchanged notebook changed its file"
    ran = nbformat.reads(stored[1].decode(), as_version=4)
    assert [c.execution_count for c in ran.cells if c.cell_type == "code"] == [1, 2, 3]
    assert not any("execution" in c.metadata for c in ran.cells)
    assert ran.metadata["widgets"], "the explorer's state is stored (its still is what the report shows)"


def test_clean_notebook_joins_the_pieces_of_one_stream():
    from lnedu.notebooks import clean_notebook

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1); print(2)")
    out = nbformat.v4.new_output
    cell.outputs = [out("stream", name="stdout", text="a\n"), out("stream", name="stdout", text=["b\n", "c\n"]),
                    out("stream", name="stderr", text="warn\n"), out("stream", name="stdout", text="d\n"),
                    out("execute_result", {"text/plain": "7"}, execution_count=1),
                    out("stream", name="stdout", text="e\n")]
    nb.cells = [cell]
    got = [(o.output_type, o.get("name"), o.get("text")) for o in clean_notebook(nb).cells[0].outputs]
    assert got == [("stream", "stdout", "a\nb\nc\n"), ("stream", "stderr", "warn\n"), ("stream", "stdout", "d\n"),
                   ("execute_result", None, None), ("stream", "stdout", "e\n")]
    assert [o.get("text") for o in cell.outputs][:2] == ["a\n", ["b\n", "c\n"]]  # the input is left as it was
