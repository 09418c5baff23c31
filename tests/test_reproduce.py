"""lnedu.reproduce without a browser: pages that load nothing from the web, widgets as stills, the local MathJax
copy, and the one-screen summary. (tests/browser/test_browser_report.py opens the pages in Chromium.)"""

from __future__ import annotations

import re
from html import escape as html_escape
from pathlib import Path

import nbformat
import pytest

from lnedu import reproduce as R
from lnedu.notebooks import NotebookRun

pytest.importorskip("jupyter_server_mathjax")
REMOTE_LOAD = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=[\"']?(https?:)?//", re.I)


def _nb_with_a_widget():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01. T\n\n$x^2$"), nbformat.v4.new_code_cell("box")]
    ids = {k: k[0] * 32 for k in ("box", "row", "slider", "pick", "image", "html", "out")}
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {
        "application/vnd.jupyter.widget-view+json": {"model_id": ids["box"]}, "text/plain": "VBox(...)"},
        execution_count=1)]
    nb.cells[1].execution_count = 1
    ref = {k: f"IPY_MODEL_{v}" for k, v in ids.items()}
    state = {
        ids["box"]: {"model_name": "VBoxModel", "state": {"children": [ref["row"], ref["image"], ref["out"]]}},
        ids["row"]: {"model_name": "HBoxModel", "state": {"children": [ref["slider"], ref["pick"], ref["html"]]}},
        ids["slider"]: {"model_name": "FloatLogSliderModel", "state": {"description": "eps", "value": 1e-05,
                                                                        "readout_format": ".0e"}},
        ids["pick"]: {"model_name": "DropdownModel", "state": {"description": "cell", "index": 1,
                                                                "_options_labels": ["rnn", "lstm"]}},
        ids["html"]: {"model_name": "HTMLModel", "state": {"value": "<b>mean 0</b>"}},
        ids["image"]: {"model_name": "ImageModel", "state": {"format": "png"},
                       "buffers": [{"path": ["value"], "data": "iVBORw0KGgo=", "encoding": "base64"}]},
        ids["out"]: {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "stream", "name": "stdout", "text": "printed <inside>\n"}]}},
    }
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
    return nb


def test_a_widget_output_becomes_its_still_with_a_note():
    nb = _nb_with_a_widget()
    still = R.static_widgets(nb)
    assert "widgets" in nb.metadata, "the notebook given is not changed"
    assert "widgets" not in still.metadata
    data = still.cells[1].outputs[0].data
    assert "application/vnd.jupyter.widget-view+json" not in data
    page = data["text/html"]
    assert "<b>eps</b> 1e-05" in page and "<b>cell</b> lstm" in page and "<b>mean 0</b>" in page
    assert "<img src='data:image/png;base64,iVBORw0KGgo='" in page
    assert "printed &lt;inside&gt;" in page
    assert "interactive explorer" in page and "JupyterLab" in page
    assert page.index("eps") < page.index("data:image") < page.index("printed"), "children in their order"


def test_pages_load_nothing_from_the_web_and_mathjax_is_the_local_copy(tmp_path):
    url = R.copy_mathjax(tmp_path)
    assert url.startswith("mathjax/MathJax.js?config=") and (tmp_path / "mathjax" / "MathJax.js").is_file()
    body, _ = R.offline_exporter(url).from_notebook_node(R.static_widgets(_nb_with_a_widget()))
    body = R._offline_html(body)
    assert REMOTE_LOAD.search(body) is None, REMOTE_LOAD.search(body).group(0)
    assert f'<script src="{url}"></script>' in body
    assert "require.js" not in body and "mermaid" not in body.lower() and "unpkg" not in body
    assert re.search(r"https?://", body) is None, "no address at all in a page without links"
    for skipped in ("localization", "jax/output/SVG", "extensions/a11y/mathjax-sre.js", "extensions/HelpDialog.js"):
        assert not (tmp_path / "mathjax" / skipped).exists(), skipped
    assert (tmp_path / "mathjax" / "extensions" / "a11y" / "accessibility-menu.js").is_file()
    assert (tmp_path / "mathjax" / "fonts" / "HTML-CSS" / "STIX-Web").is_dir()


def test_the_mathjax_copy_is_made_once_and_redone_when_stale(tmp_path):
    R.copy_mathjax(tmp_path)
    main = tmp_path / "mathjax" / "MathJax.js"
    main.write_text("edited", encoding="utf-8")
    R.copy_mathjax(tmp_path)
    assert main.read_text(encoding="utf-8") == "edited", "an up-to-date copy is not copied again"
    (tmp_path / "mathjax" / "FROM").write_text("jupyter-server-mathjax 0.0.1\n", encoding="utf-8")
    R.copy_mathjax(tmp_path)
    assert main.read_text(encoding="utf-8") != "edited"
    assert [p.name for p in tmp_path.iterdir()] == ["mathjax"], "no temporary folder left behind"


def test_the_terminal_summary_fits_on_a_screen():
    runs = [NotebookRun(Path(f"{i:02d}-a-rather-long-notebook-name.ipynb"), "t", 12.5, i != 3,
                        "" if i != 3 else "AssertionError: " + "x" * 300) for i in range(16)]
    claims = [{"title": f"Experiment number {i} with a long title that goes on", "held": None,
               "verdict": "undecided (within seed noise)", "our_figure": "LN 0.93 vs BN 0.91 " * 10}
              for i in range(10)]
    text = R.terminal_summary(runs, claims, Path("reports"))
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 100, text
    assert lines[0] == "notebooks: 15 of 16 ran without error in 200 s"
    assert "FAILED 03-a-rather-long-notebook-name.ipynb: AssertionError" in text
    assert sum("undecided" in ln for ln in lines) == 10
    assert lines[-1].startswith(f"report: {Path('reports') / 'index.html'}")


def test_the_report_leaves_out_the_colab_install_cell():
    """The report's pages show no install cell (it names the repository's remote address, and there is nothing
    to install in a page); the notebook itself keeps it."""
    import nbformat

    from lnedu.colab import ensure_colab_cell
    from lnedu.reproduce import without_install_cell

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01. x"), nbformat.v4.new_code_cell("1")])
    ensure_colab_cell(nb)
    assert len(nb.cells) == 3
    shown = without_install_cell(nb)
    assert [c.source for c in shown.cells] == ["# 01. x", "1"] and len(nb.cells) == 3


# ---- the training stage and notebooks on more than one core ---------------------------------------------------

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_each_experiment_notebook_names_the_experiment_it_runs():
    from lnedu import experiments

    found = {p.name: R.experiments_of(p) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))}
    named = [n for names in found.values() for n in names]
    assert sorted(named) == sorted(experiments.names())  # each experiment trained once, by one notebook
    assert found["05-permutation-invariant-mnist.ipynb"] == ["mnist"]
    assert found["10-text8-cells-norms-initializers.ipynb"] == ["text8_grid"]  # with jobs=2
    assert found["01-layer-norm-from-scratch.ipynb"] == []


def test_a_call_with_other_arguments_is_left_to_its_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('a = experiments.notebook_run("draw", progress=False)\n'
                                          'b = experiments.notebook_run("mnist", seeds=(7,))\n'
                                          "c = experiments.notebook_run('charlm', jobs=2)")]
    nbformat.write(nb, tmp_path / "01-x.ipynb")
    assert R.experiments_of(tmp_path / "01-x.ipynb") == ["draw", "charlm"]  # seeds=(7,) trains other runs


def test_runs_trained_first_are_the_notebooks_runs(tmp_path, monkeypatch):
    from lnedu import experiments

    monkeypatch.setenv("LNEDU_SEEDS", "0 1")
    monkeypatch.setenv("LNEDU_PRESET", "tiny")
    monkeypatch.setenv("LNEDU_RUNS", str(tmp_path))
    times = {}
    assert R.train_runs(["convnet"], tmp_path, "tiny", jobs=2, progress=False, times=times) == []
    folder = tmp_path / "tiny" / "convnet"
    results = sorted(folder.glob("*/result.json"))
    exp = experiments.get("convnet")
    assert len(results) == 2 * len(exp.VARIANTS)
    assert list(times) == ["convnet"] and times["convnet"][0] == len(results) and times["convnet"][1] > 0
    stamps = {p: p.stat().st_mtime_ns for p in results}
    _, _, got = experiments.notebook_run("convnet")  # what the notebook calls: every run is found finished
    assert {p: p.stat().st_mtime_ns for p in results} == stamps
    assert sorted(got) == sorted(exp.VARIANTS) and all(len(runs) == 2 for runs in got.values())


def test_a_run_that_fails_in_the_training_stage_is_reported_not_raised(tmp_path, monkeypatch):
    from lnedu.experiments import sweep

    def broken(module, config, variant, seed, *args):
        raise RuntimeError("no memory")

    monkeypatch.setattr(sweep, "_one", broken)
    monkeypatch.setenv("LNEDU_SEEDS", "3")
    times = {}
    failed = R.train_runs(["draw"], tmp_path, "tiny", jobs=1, progress=False, times=times)
    assert failed and all(line.startswith("draw ") and "seed 3: RuntimeError: no memory" in line for line in failed)
    assert times["draw"][0] == len(failed)  # a failed run's seconds count too: the job spent them


def test_the_summary_says_where_the_training_time_went(tmp_path):
    """summary.md's training table, longest first, with its total, and the terminal's line; the next run reads
    only the notebooks' seconds from it (the experiments' rows are not notebooks)."""
    runs = [NotebookRun(tmp_path / "01-a.ipynb", "01. A", 4.0, True)]
    training = {"mnist": (30, 20.5), "text8_grid": (54, 60.25), "convnet": (15, 7.0)}
    text = R._summary_markdown(runs, (), "small", training)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "ipynb" not in line]
    assert rows[2:] == ["| text8_grid | 54 | 60.2 |", "| mnist | 30 | 20.5 |", "| convnet | 15 | 7.0 |"], rows
    assert "99 runs in 87.8 s." in text
    (tmp_path / "summary.md").write_text(text, encoding="utf-8")
    assert R._last_seconds(tmp_path) == {"01-a.ipynb": 4.0}
    screen = R.terminal_summary(runs, (), tmp_path, training=training)
    assert "training: 99 runs took 88 s (the most: text8_grid, 60 s)" in screen.splitlines()
    assert "## Training" not in R._summary_markdown(runs, (), "small", {})  # no experiment: no table
    assert "training:" not in R.terminal_summary(runs, (), tmp_path)


def test_notebooks_on_two_processes_give_the_pages_of_one(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    for i in range(2):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# 0{i}. N{i}"), nbformat.v4.new_code_cell(f"print({i} * 7)")]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nbs / f"0{i}-n.ipynb")
    pages = {}
    for jobs in (1, 2):
        runs = R.reproduce(nbs, tmp_path / f"out{jobs}", runs=tmp_path / "runs", progress=False, jobs=jobs)
        assert [r.path.name for r in runs] == ["00-n.ipynb", "01-n.ipynb"] and all(r.ok for r in runs)
        pages[jobs] = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / f"out{jobs}").glob("0*.html")}
    assert pages[1] == pages[2] and f"{1 * 7}" in pages[2]["01-n.html"]
    # a second run hands out the longest notebooks first, by the times the last summary.md recorded
    assert set(R._last_seconds(tmp_path / "out2")) == {"00-n.ipynb", "01-n.ipynb"}
    assert R._last_seconds(tmp_path / "nowhere") == {}
    with pytest.raises(ValueError, match="jobs: expected a positive number of processes, got 0"):
        R.reproduce(nbs, tmp_path / "out", progress=False, jobs=0)


def test_with_two_jobs_an_experiment_notebook_starts_when_its_runs_are_trained(tmp_path, monkeypatch):
    """The pipeline (jobs > 1): the notebook finds every run of its experiment finished when it starts (the
    modification times it prints are those the runs keep afterwards: it trained nothing), and the derivation
    notebook, which trains nothing, runs too: first when no earlier report says how long it takes, after the
    last run otherwise (then it fills the cores at the end)."""
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.setenv("LNEDU_SEEDS", "0")  # the workers and the kernels inherit it
    submitted, submit = [], ProcessPoolExecutor.submit

    def spy(self, fn, *args, **kwargs):
        submitted.append(Path(args[0]).stem if fn is R.execute_notebook else fn.__name__)
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", spy)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    cells = {"00-derivation": "print(6 * 7)",
             "01-experiment": ("import pathlib, os\n"
                               "from lnedu import experiments\n"
                               "folder = pathlib.Path(os.environ['LNEDU_RUNS']) / 'tiny' / 'convnet'\n"
                               "seen = {p.parent.name: p.stat().st_mtime_ns for p in folder.glob('*/result.json')}\n"
                               "_, _, got = experiments.notebook_run('convnet')\n"
                               "print(sorted(seen.items()))")}
    for stem, source in cells.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), nbformat.v4.new_code_cell(source)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, nbs / f"{stem}.ipynb")
    runs = tmp_path / "runs"
    done = R.reproduce(nbs, tmp_path / "out", runs=runs, progress=False, jobs=2, preset="tiny")
    assert [r.path.name for r in done] == ["00-derivation.ipynb", "01-experiment.ipynb"] and all(r.ok for r in done)
    from lnedu import experiments

    after = sorted((p.parent.name, p.stat().st_mtime_ns) for p in (runs / "tiny" / "convnet").glob("*/result.json"))
    assert len(after) == len(experiments.get("convnet").VARIANTS)
    page = (tmp_path / "out" / "01-experiment.html").read_text(encoding="utf-8")
    assert html_escape(str(after), quote=False) in page  # the times the notebook saw are the final ones
    assert "42" in (tmp_path / "out" / "00-derivation.html").read_text(encoding="utf-8")
    n = len(after)
    # no report: the derivation (of unknown length) first; the experiment's figure as soon as its runs are trained
    assert submitted == ["00-derivation"] + ["_train"] * n + ["01-experiment", "write_figure"], submitted
    from lnedu.experiments.report import write_report

    serial = write_report(runs / "tiny", tmp_path / "serial")  # the figure drawn at the end, as with one job
    assert [r["name"] for r in serial] == ["convnet"]
    assert (tmp_path / "out" / "convnet.png").read_bytes() == (tmp_path / "serial" / "convnet.png").read_bytes()
    assert "convnet.png" in (tmp_path / "out" / "claims.html").read_text(encoding="utf-8")
    submitted.clear()
    R.reproduce(nbs, tmp_path / "out", runs=runs, progress=False, jobs=2, preset="tiny")  # its report times both
    assert submitted[:n] == ["_train"] * n, submitted
    assert sorted(submitted[n:]) == ["00-derivation", "01-experiment", "write_figure"], submitted
