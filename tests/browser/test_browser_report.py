"""The reproduce report opened in headless Chromium: it renders, its images load, and the claims table has
one row per experiment that ran.

The report is built small: two experiments on their tiny preset with one seed, and ``reproduce`` over a
temporary copy of the index notebook (both take seconds). Pages are opened from ``file://`` with every
network request refused, so what is checked is what a reader without internet sees.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from lnedu import experiments
from lnedu.reproduce import reproduce

pytestmark = pytest.mark.browser

SOURCE = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = ("00-index.ipynb",)
EXPERIMENTS_RUN = ("mnist", "convnet")  # in the paper's order, as the table lists them
VERDICTS = {"held", "did not hold", "undecided (within seed noise)", "not tested"}  # verdicts.WORDS


@pytest.fixture(scope="module")
def report(browser, tmp_path_factory):
    """``(folder, runs)``: the report's folder and the :class:`NotebookRun` list of ``reproduce``."""
    base = tmp_path_factory.mktemp("report")
    (base / "notebooks").mkdir()
    for name in NOTEBOOKS:
        shutil.copy(SOURCE / name, base / "notebooks" / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LNEDU_PRESET", "tiny")
        for name in EXPERIMENTS_RUN:
            experiments.run(experiments.get(name), "tiny", seeds=[0], out=base / "runs" / "tiny", progress=False)
        runs = reproduce(base / "notebooks", base / "out", runs=base / "runs", progress=False)
    return base / "out", runs


@pytest.fixture
def offline(page):
    """The page, with every http(s) request refused (the report must not need the network)."""
    page.route(re.compile(r"^https?://"), lambda route: route.abort())
    return page


def _images_loaded(page) -> list[str]:
    """The ``src`` of every image on the page that did not load (empty when all did)."""
    return page.locator("img").evaluate_all(
        "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))"
    )


def test_index_lists_every_notebook_and_each_page_renders(offline, report):
    page = offline
    out, runs = report
    page.goto((out / "index.html").as_uri())
    assert page.title() == "lnedu reproduce report"
    rows = page.locator("#notebooks tbody tr")
    assert rows.count() == len(runs) == len(NOTEBOOKS)
    assert rows.locator("td.ok").count() == len(runs), rows.all_inner_texts()
    assert _images_loaded(page) == []
    for i, run in enumerate(runs):
        rows.nth(i).locator("a").click()
        page.wait_for_load_state()
        assert page.url.endswith(f"{run.path.stem}.html")
        assert page.locator(".jp-Cell").count() > 1, "the notebook page shows no cells"
        assert page.get_by_text(run.title.split(". ", 1)[-1]).count() > 0, "the notebook's title is missing"
        assert page.locator(".jp-OutputArea-output").count() > 0, "the executed notebook has no output"
        assert _images_loaded(page) == []
        page.go_back()


def test_claims_table_has_a_row_per_experiment_and_its_figures_load(offline, report, artifacts):
    page = offline
    out, _ = report
    page.goto((out / "index.html").as_uri())
    page.get_by_role("link", name="The claims table").click()
    page.wait_for_load_state()
    table = page.locator("table#claims")
    assert table.is_visible()
    # a row per experiment, then a full-width row with its figure
    rows = table.locator("tbody tr").filter(has_not=page.locator("td[colspan]"))
    titles = rows.locator("td:first-child").all_inner_texts()
    assert titles == [experiments.get(n).TITLE for n in EXPERIMENTS_RUN]
    assert set(rows.locator("td:nth-child(5)").all_inner_texts()) <= VERDICTS
    for cell in rows.locator("td:nth-child(4)").all_inner_texts():
        assert "(tiny, seeds 0)" in cell, cell
    images = table.locator("img")
    assert images.count() == len(EXPERIMENTS_RUN)
    assert _images_loaded(page) == []
    sizes = images.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert all(w > 100 and h > 100 for w, h in sizes), f"figures too small to be plots: {sizes}"
    page.screenshot(path=artifacts / "report-claims.png", full_page=True)
