"""The reproduce report opened in headless Chromium with the network blocked: it renders, its formulas are typeset
by the local MathJax copy, its images (explorer stills included) load, the claims table has one row per
experiment that ran, and no file under the report names a remote address it would load.

The report is built small: two experiments on their tiny preset with one seed, and ``reproduce`` over a
temporary copy of the index notebook and of a made-up notebook with formulas, an explorer widget and a plot
(together about half a minute). Pages are opened from ``file://`` with every http(s) request refused, so what
is checked is what a reader without internet sees.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from lnedu import experiments
from lnedu.reproduce import reproduce

pytestmark = pytest.mark.browser

SOURCE = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = ("00-index.ipynb", "01-layer-norm-from-scratch.ipynb")  # the index, and a real page of formulas
MADE_UP = "99-formulas-and-an-explorer.ipynb"  # numbered last, as the index asks
INLINE, DISPLAY = r"\mu = \frac{1}{H}\sum_{i=1}^{H} a_i", r"\sigma = \sqrt{\frac{1}{H}\sum_{i=1}^{H}(a_i - \mu)^2}"
FORMULAS = 3  # in the made-up notebook's markdown: two inline, one display
EXPERIMENTS_RUN = ("mnist", "convnet")  # in the paper's order, as the table lists them
VERDICTS = {"held", "did not hold", "undecided (within seed noise)", "not tested"}  # verdicts.WORDS


@pytest.fixture(scope="module")
def report(browser, tmp_path_factory):
    """``(folder, runs)``: the report's folder and the :class:`NotebookRun` list of ``reproduce``."""
    base = tmp_path_factory.mktemp("report")
    (base / "notebooks").mkdir()
    for name in NOTEBOOKS:
        shutil.copy(SOURCE / name, base / "notebooks" / name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# 99. Formulas and an explorer\n\nThe mean ${INLINE}$, then $a_i - \\mu$, "
                                      f"and\n\n$${DISPLAY}$$\n\n[The paper](https://arxiv.org/abs/1607.06450) is a "
                                      "link, <https://arxiv.org> too."),
        nbformat.v4.new_code_cell("from lnedu.viz.layernorm import layer_norm_explorer\n\nlayer_norm_explorer(seed=0)"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\n\nplt.plot([1, 3, 2]);"),
    ]
    nbformat.write(nb, base / "notebooks" / MADE_UP)
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
    assert rows.count() == len(runs) == len(NOTEBOOKS) + 1
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


TYPESET = """() => { const s = [...document.querySelectorAll('script[type^="math/tex"]')];
    return s.length > 0 && s.every(e => document.getElementById(e.id + '-Frame')); }"""
RAW_TEX = re.compile(r"\$[^$\n]+\$|\\frac|\\sum|\\sqrt")


def test_formulas_are_typeset_offline_by_the_local_mathjax(offline, report, artifacts):
    page = offline
    out, _ = report
    asked = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto((out / MADE_UP.replace(".ipynb", ".html")).as_uri())
    page.wait_for_function(TYPESET, timeout=30_000)
    page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")  # after the page's typesetting
    scripts = page.locator('script[type^="math/tex"]')
    assert scripts.count() == FORMULAS
    assert page.locator('script[type="math/tex; mode=display"]').count() == 1
    assert page.locator(".MathJax_Display").count() == 1
    assert page.locator(".MathJax").count() >= FORMULAS
    for i in range(FORMULAS):  # each one drawn, not left as an empty box
        box = page.locator(f"#{scripts.nth(i).get_attribute('id')}-Frame").bounding_box()
        assert box and box["width"] > 5 and box["height"] > 5, box
    assert page.locator(".MathJax .merror, .MathJax .noError, #MathJax_Message:visible").count() == 0, "TeX errors"
    text = page.locator(".jp-MarkdownCell").inner_text()
    assert not RAW_TEX.search(text), f"raw TeX left on the page: {RAW_TEX.search(text).group(0)!r}"
    assert any("/mathjax/MathJax.js" in u for u in asked), "MathJax did not come from the report's copy"
    assert [u for u in asked if not u.startswith(("file:", "data:", "about:"))] == [], "requests left the machine"
    page.screenshot(path=artifacts / "report-formulas.png", full_page=True)


def test_a_real_notebooks_formulas_are_all_typeset(offline, report):
    page = offline
    out, _ = report
    page.goto((out / NOTEBOOKS[1].replace(".ipynb", ".html")).as_uri())
    page.wait_for_function(TYPESET, timeout=60_000)
    page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")
    assert page.locator('script[type^="math/tex"]').count() > 50, "notebook 01 derives layer norm in formulas"
    assert page.locator(".MathJax .merror, .MathJax .noError").count() == 0, "TeX errors"
    raw = [m.group(0) for text in page.locator(".jp-MarkdownCell").all_inner_texts() for m in RAW_TEX.finditer(text)]
    assert raw == [], f"raw TeX left on the page: {raw[:5]}"
    assert _images_loaded(page) == []


def test_an_explorer_is_shown_as_its_still_with_a_note(offline, report):
    page = offline
    out, _ = report
    page.goto((out / MADE_UP.replace(".ipynb", ".html")).as_uri())
    still = page.locator(".lnedu-widget-still")
    assert still.count() == 1
    assert "interactive explorer" in still.inner_text() and "JupyterLab" in still.inner_text()
    for name in ("shift", "scale", "eps", "gain g", "bias b"):  # each control with its value
        assert still.get_by_text(name, exact=True).count() == 1, name
    pictures = still.locator("img")
    assert pictures.count() == 1
    assert _images_loaded(page) == []
    w, h = pictures.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert w > 300 and h > 100, (w, h)
    assert page.locator("script[type*='widget']").count() == 0, "widget views need a widget manager from a CDN"


# a remote address in a file under the report is allowed only where it is never fetched: comments, links a
# reader may follow (<a href>), XML namespace names, MathJax's own About-box link and its licence file
_COMMENTS = re.compile(r"/\*.*?\*/|<!--.*?-->", re.S)
_LINKS = re.compile(r"<a\s[^>]*href=[\"']https?://[^\"']*[\"'][^>]*>.*?</a>", re.I | re.S)
_NAMESPACES = re.compile(r"http://www\.w3\.org/(1998/Math/MathML|2000/svg|1999/xlink|1999/xhtml|XML/1998/namespace)\b")
_MATHJAX_ABOUT = re.compile(r"href:\s*\"http://www\.mathjax\.org/?\"")
_URL = re.compile(r"https?://[^\s\"'<>)]+", re.I)
_LOADS = re.compile(r"\b(?:src|srcset|data|poster)\s*=\s*[\"']\s*(?:https?:)?//|<link\b[^>]*\bhref\s*=\s*[\"']\s*"
                    r"(?:https?:)?//|url\(\s*[\"']?\s*(?:https?:)?//|@import\s+[\"']?(?:https?:)?//", re.I)


def remote_addresses(folder: Path) -> list[str]:
    """``file: address`` for every remote address a file under ``folder`` names outside the allowed places."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() in (".png", ".woff", ".otf", ".eot", ".mp3", ".ogg") or \
                path.relative_to(folder).as_posix() == "mathjax/LICENSE":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+", "", text)
        for m in _LOADS.finditer(text):  # anything that would be fetched, whatever the rest says
            found.append(f"{path.relative_to(folder)}: loads {text[m.start(): m.end() + 40]!r}")
        text = _MATHJAX_ABOUT.sub("", _NAMESPACES.sub("", _LINKS.sub("", _COMMENTS.sub("", text))))
        found += [f"{path.relative_to(folder)}: {m.group(0)}" for m in _URL.finditer(text)]
    return found


def test_no_file_in_the_report_names_a_remote_address(report):
    out, _ = report
    assert (out / "mathjax" / "MathJax.js").is_file()
    assert remote_addresses(out) == []


@pytest.mark.parametrize("page, expected", [
    ('<script src="https://cdn.example.org/require.js"></script>', "loads"),
    ("<link rel='stylesheet' href='//fonts.example.com/a.css'>", "loads"),
    ("<style>@font-face{src:url(https://x.example.net/f.woff)}</style>", "loads"),
    ("<script>var u = 'https://unpkg.com/@jupyter-widgets/html-manager';</script>", "https://unpkg.com"),
    ('<a href="https://arxiv.org/abs/1607.06450">the paper</a> <svg xmlns="http://www.w3.org/2000/svg"></svg>', None),
    ("/* see https://example.org/why */ body{}", None),
])
def test_the_address_scan_catches_what_a_page_would_fetch(tmp_path, page, expected):
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    found = remote_addresses(tmp_path)
    if expected is None:
        assert found == []
    else:
        assert found and all(f.startswith("page.html: ") for f in found) and expected in found[0], found
