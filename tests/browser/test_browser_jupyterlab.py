"""The notebooks in a real JupyterLab, driven through its UI by headless Chromium.

For the index and for notebook 01 (the one with the layer-norm explorer): open it, clear every output and
run all cells from the menus, wait for the kernel to finish, and find no error in the page or in the saved
file. Then move the explorer's ``shift`` slider from the keyboard and watch the picture and the statistics
it drives change. Screenshots are saved to ``tests/browser/artifacts/``.
"""

from __future__ import annotations

import re
import time

import nbformat
import pytest

pytestmark = pytest.mark.browser

RUN_ALL_MS = 180_000  # the slowest notebook here runs in seconds; this bounds a hung kernel
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
IDLE = '.jp-Notebook-ExecutionIndicator[data-status="idle"]'


def _menu(page, top: str, item: str) -> None:
    """Click the main menu ``top``, then its entry ``item`` (exact labels)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).click()


def _code_cells_with_source(path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())


def _input_mean(stats_text: str) -> float:
    """The input row's mean from the explorer's statistics table ('mean  <input a>  <output y>')."""
    m = re.search(r"mean\s+(\S+)", stats_text)
    assert m, f"no mean in the statistics: {stats_text!r}"
    return float(m.group(1))


def open_notebook(page, lab, name: str) -> None:
    """Open ``name`` in JupyterLab and wait for its kernel to be idle."""
    page.goto(lab.page_url(name))
    page.wait_for_selector(".jp-Notebook .jp-CodeCell")
    page.wait_for_selector(IDLE)
    page.locator("#jp-main-statusbar", has_text="Idle").wait_for()


def clear_and_run_all(page, lab, name: str) -> None:
    """Clear every output, run all cells from the Run menu, and wait until each code cell has run."""
    _menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function("() => !document.querySelector('.jp-Notebook .jp-OutputArea-output')")
    expected = _code_cells_with_source(lab.root / name)
    _menu(page, "Run", "Run All Cells")
    page.wait_for_function(
        """([expected, stderr]) => {
            const prompts = Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'));
            const done = prompts.filter(p => /^\\[\\d+\\]:$/.test(p.innerText.trim())).length;
            const busy = prompts.some(p => p.innerText.includes('*'));
            const idle = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]');
            // an error stops "Run All": the cells after it stay unnumbered, so stop waiting for them
            const failed = Array.from(document.querySelectorAll(stderr)).some(o => o.innerText.includes('Traceback'));
            return !busy && idle !== null && (done >= expected || failed);
        }""",
        arg=[expected, STDERR],
        timeout=RUN_ALL_MS,
    )


def assert_no_errors_in_page(page) -> None:
    tracebacks = [t for t in page.locator(STDERR).all_inner_texts() if "Traceback" in t or "Error" in t]
    assert not tracebacks, f"error output in the page:\n{tracebacks[0][:2000]}"
    broken = page.get_by_text("Error displaying widget").count() + page.get_by_text("Error rendering").count()
    assert broken == 0, "a widget or an output failed to render"


def save_and_check_file(page, lab, name: str) -> None:
    """Save through the File menu, then read the saved notebook: every cell ran, in order, without error."""
    before = lab.api(f"contents/{name}?content=0")["last_modified"]
    _menu(page, "File", "Save Notebook")
    page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").wait_for(state="detached")
    deadline = time.monotonic() + 30
    while lab.api(f"contents/{name}?content=0")["last_modified"] == before:
        assert time.monotonic() < deadline, "JupyterLab did not save the notebook within 30 s"
        time.sleep(0.1)
    nb = nbformat.read(lab.root / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert None not in counts and counts == sorted(counts), f"saved execution counts: {counts}"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"saved error output: {errors[0].get('ename')}: {errors[0].get('evalue')}"


def test_index_runs_in_jupyterlab(page, jupyterlab, artifacts):
    name = "00-index.ipynb"
    open_notebook(page, jupyterlab, name)
    clear_and_run_all(page, jupyterlab, name)
    assert_no_errors_in_page(page)
    # the map links every numbered notebook of the folder
    links = page.locator(".jp-RenderedMarkdown a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    for other in sorted(p.name for p in jupyterlab.root.glob("[0-9][0-9]-*.ipynb") if p.name != name):
        assert any(other in (h or "") for h in links), f"the index does not link {other}"
    save_and_check_file(page, jupyterlab, name)
    page.screenshot(path=artifacts / "00-index.png")


def test_explorer_slider_drives_its_output(page, jupyterlab, artifacts):
    name = "01-layer-norm-from-scratch.ipynb"
    open_notebook(page, jupyterlab, name)
    clear_and_run_all(page, jupyterlab, name)
    assert_no_errors_in_page(page)
    save_and_check_file(page, jupyterlab, name)

    explorer = page.locator(".jp-OutputArea-output .widget-vbox").filter(has=page.locator(".noUi-handle")).first
    explorer.scroll_into_view_if_needed()
    assert explorer.locator(".widget-slider").count() == 5, "the explorer should show five sliders"
    shift = explorer.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text="shift"))
    readout = shift.locator(".widget-readout")
    image = explorer.locator(".widget-image").first
    stats = explorer.locator(".widget-html-content").first
    image.wait_for()
    before = {"readout": readout.inner_text(), "image": image.get_attribute("src"), "stats": stats.inner_text()}

    shift.locator(".noUi-handle").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    moved = float(readout.inner_text()) - float(before["readout"])
    assert moved > 0, f"three presses of ArrowRight left shift at {readout.inner_text()}"
    # the kernel recomputes: shifting the row by s moves its mean by s (the table's 'input a' column)
    expected_mean = _input_mean(before["stats"]) + moved
    deadline = time.monotonic() + 20
    while abs(_input_mean(stats.inner_text()) - expected_mean) > 1e-3 * max(1.0, abs(expected_mean)):
        assert time.monotonic() < deadline, f"input mean {stats.inner_text()!r}, expected {expected_mean:.4g}"
        time.sleep(0.1)
    assert image.get_attribute("src") != before["image"], "the picture did not follow the slider"
    # the picture is a real image, not a broken one
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    assert_no_errors_in_page(page)

    page.screenshot(path=artifacts / "01-explorer.png")
