"""lnedu.reproduce without a browser: pages that load nothing from the web, widgets as stills, the local MathJax
copy, and the one-screen summary. (tests/browser/test_browser_report.py opens the pages in Chromium.)"""

from __future__ import annotations

import re
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
