"""``python -m lnedu reproduce``: execute every notebook on the embedded defaults into an HTML report.

This sits above the experiments (it runs the notebooks, then writes the experiments' claims table), while the
headless notebook runner it uses, :mod:`lnedu.notebooks`, sits below them. With ``jobs`` > 1 it works on that
many cores: ``jobs`` processes take the work as they free up, each on one core: the runs the experiment notebooks
will ask for (one process per run, as ``python -m lnedu run --jobs`` does, with the same results as one after
another) and the notebooks themselves. An experiment notebook starts as soon as every run it asks for is trained
(and finds them finished), beside the training that is left; the notebooks that train nothing (the derivations)
fill the cores while the last runs finish, or start first where no earlier report says how long they take. An
experiment's figure for the report is drawn as soon as its runs are trained. It writes ``reports/``: one HTML
page per notebook, ``summary.md`` (with where the time went: each notebook's seconds, each experiment's runs and
theirs) and ``index.html`` with a table of what ran, and the claims table with the
experiments' figures. Every file is written atomically (:mod:`lnedu._io`), so an interrupted run never
leaves a half-written page behind; the stored notebooks are never modified.

The report needs no network: formulas are typeset by a copy of MathJax 2 that the ``jupyter-server-mathjax``
package ships (in the ``[lab]`` extra), copied into ``reports/mathjax/``; no page loads require.js, Mermaid or
the widget manager from a CDN; an explorer widget is shown as the still it was left in (its sliders' values and
its picture), with a line saying that it is interactive in JupyterLab. Links to papers stay links.
"""

from __future__ import annotations

import copy
import html
import importlib.util
import re
import shutil
import tempfile
import time
from pathlib import Path

from ._io import atomic_write_text
from .experiments import default_preset
from .experiments.report import claims_markdown, write_figure, write_report
from .notebooks import check_timeout, execute_notebook, find_notebooks, is_install_cell, require_lab

__all__ = ["reproduce", "copy_mathjax", "static_widgets", "offline_exporter", "terminal_summary", "experiments_of",
           "train_runs"]


# ---- MathJax, from a package, copied beside the pages ------------------------------------------------------

MATHJAX_FOLDER = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the configuration nbconvert's own pages ask for
# what the pages never load: other languages' menus, the SVG output's fonts (the pages use HTML-CSS), MathML 3,
# the help and font-warning dialogs, and the speech explorer (it would fetch its rules from a CDN when switched on
# in the menu, which the pages hide); the accessibility menu stays, as the configuration asks for it
_MATHJAX_SKIP = {"localization", "jax/output/SVG", "extensions/MathML/mml3.js", "extensions/HelpDialog.js",
                 "extensions/FontWarnings.js"}
_MATHJAX_KEEP_A11Y = {"accessibility-menu.js"}


def _mathjax_ignore(source: Path):
    def ignore(folder, names):
        rel = Path(folder).relative_to(source).as_posix()
        skip = [n for n in names if (f"{rel}/{n}" if rel != "." else n) in _MATHJAX_SKIP]
        if rel == "extensions/a11y":
            skip += [n for n in names if n not in _MATHJAX_KEEP_A11Y]
        return skip
    return ignore


def _mathjax_source() -> Path:
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.origin:
        raise RuntimeError("reproduce: needs the [lab] extra (jupyter_server_mathjax not installed: it ships the "
                           "MathJax the report uses offline); install it with `pip install \"lnedu[lab]\"`")
    return Path(spec.origin).parent / "static"


def copy_mathjax(out) -> str:
    """Copy MathJax (from the ``jupyter-server-mathjax`` package) into ``out/mathjax/``; return the relative
    address a page in ``out`` loads it from. The copy is made once per package version, atomically."""
    from importlib.metadata import version

    source, target = _mathjax_source(), Path(out) / MATHJAX_FOLDER
    stamp = f"jupyter-server-mathjax {version('jupyter-server-mathjax')}\n"
    marker = target / "FROM"
    if not (marker.is_file() and marker.read_text(encoding="utf-8") == stamp):
        tmp = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=out))
        try:
            shutil.copytree(source, tmp / "m", ignore=_mathjax_ignore(source))
            (tmp / "m" / "FROM").write_text(stamp, encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            (tmp / "m").rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return f"{MATHJAX_FOLDER}/MathJax.js?config={MATHJAX_CONFIG}"


# ---- nbconvert without the CDN --------------------------------------------------------------------------------

# JupyterLab's page, less what it would fetch from the web: require.js (only widgets and old JavaScript outputs
# need it), the widget manager (widgets are drawn as stills, below) and Mermaid (no notebook draws diagrams);
# MathJax configured as nbconvert does, with the one web font jupyter-server-mathjax ships (STIX-Web)
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  tex2jax: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
            processEscapes: true, processEnvironments: true},
  "HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web", webFont: "STIX-Web", imageFont: null,
               linebreaks: {automatic: true}},
  displayAlign: "center", messageStyle: "none", showMathMenu: false
});
</script>
<script src="{{ resources.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
"""
# the inlined JupyterLab style sheets name their sources' web pages in comments
_CSS_COMMENT_WITH_URL = re.compile(r"/\*(?:(?!\*/).)*?https?://(?:(?!\*/).)*?\*/", re.S)


def offline_exporter(mathjax_url: str):
    """nbconvert's ``HTMLExporter`` (lab template) loading nothing from the network; MathJax from ``mathjax_url``."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", template_file="lnedu-offline.html.j2", mathjax_url=mathjax_url,
                        extra_loaders=[DictLoader({"lnedu-offline.html.j2": _OFFLINE_TEMPLATE})])


def _offline_html(body: str) -> str:
    return _CSS_COMMENT_WITH_URL.sub("/* */", body)


# ---- widgets as stills -----------------------------------------------------------------------------------------

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STILL_NOTE = ("A still of an interactive explorer: its controls move in JupyterLab (<code>make lab</code>), on "
              "Binder or on Colab.")


def _widget_html(model_id: str, state: dict, depth: int = 0) -> str:
    """One widget model (and its children) as plain HTML, as the kernel left it."""
    model = state.get(model_id)
    if model is None or depth > 50:
        return ""
    name, st = model.get("model_name", ""), model.get("state", {})
    children = [c.removeprefix("IPY_MODEL_") for c in st.get("children", [])]
    if name in ("VBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel", "StackModel"):
        inner = "".join(_widget_html(c, state, depth + 1) for c in children)
        return f"<div style='display:flex;flex-direction:column;gap:.3em'>{inner}</div>"
    if name == "HBoxModel":
        inner = "".join(_widget_html(c, state, depth + 1) for c in children)
        return f"<div style='display:flex;flex-direction:row;gap:1.5em;align-items:flex-start'>{inner}</div>"
    if name == "ImageModel":
        data = next((b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"]), "")
        fmt = html.escape(st.get("format", "png"))
        return f"<img src='data:image/{fmt};base64,{data}' alt='the explorer as it was drawn'>" if data else ""
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div>{st.get('value', '')}</div>"
    if name == "LabelModel":
        return f"<div>{html.escape(str(st.get('value', '')))}</div>"
    if name == "OutputModel":
        return "".join(_output_html(o) for o in st.get("outputs", []))
    if name == "ButtonModel":
        return f"<button disabled>{html.escape(st.get('description', ''))}</button>"
    value = st.get("value")
    if "_options_labels" in st and st.get("index") is not None:
        value = st["_options_labels"][st["index"]]
    elif isinstance(value, float) and st.get("readout_format"):
        try:
            value = format(value, st["readout_format"])
        except ValueError:
            pass
    label = html.escape(str(st.get("description", "")))
    return f"<div><b>{label}</b> {html.escape(str(value))}</div>" if value is not None else ""


def _output_html(out: dict) -> str:
    data = out.get("data", {})
    if "image/png" in data:
        return f"<img src='data:image/png;base64,{data['image/png']}' alt='output'>"
    if "text/html" in data:
        return str(data["text/html"])
    text = data.get("text/plain", out.get("text", ""))
    return f"<pre>{html.escape(str(text))}</pre>" if text else ""


def without_install_cell(nb):
    """``nb`` without its Colab install cell: a reader of the report has nothing to install (and the cell names
    the repository's remote address, which nothing under ``reports/`` should)."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if not is_install_cell(c)]
    return nb


def static_widgets(nb):
    """``nb`` with each widget output replaced by its still (HTML) and a line saying it is interactive elsewhere;
    the stored widget state is dropped (nothing on the page would read it)."""
    import nbformat

    nb = nbformat.from_dict(nb)
    state = nb.metadata.pop("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                still = _widget_html(view.get("model_id", ""), state)
                out.data = {"text/html": f"<div class='lnedu-widget-still'>{still}<p><em>{STILL_NOTE}</em></p></div>",
                            "text/plain": out.data.get("text/plain", "")}
    return nb


# ---- the training stage: every run the notebooks will ask for, on every core --------------------------------

# an experiment notebook's call, ``experiments.notebook_run("NAME")`` with at most ``jobs=`` and ``progress=``
# (other arguments would change what it runs: such a notebook trains its own runs)
_NOTEBOOK_RUN = re.compile(r"""notebook_run\(\s*["'](\w+)["']\s*((?:,\s*(?:jobs|progress)\s*=\s*[\w.]+\s*)*),?\s*\)""")


def experiments_of(path) -> list[str]:
    """The experiments that notebook ``path`` runs with ``experiments.notebook_run("NAME")``, in order."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    names = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            names += [m.group(1) for m in _NOTEBOOK_RUN.finditer(cell.source) if m.group(1) not in names]
    return names


def _train(module: str, config, variant: str, seed: int, out: str, array_backend: str) -> tuple[str, float]:
    """One run of the training stage, in a worker; returns ``("", seconds)`` or ``(what went wrong, seconds)``
    (the notebook that asks for the run then trains it again and shows the error where a reader looks), with
    the wall-clock seconds the run took in its worker (next to nothing for a run found finished)."""
    from .experiments.sweep import _one

    start = time.perf_counter()
    try:
        _one(module, config, variant, seed, out, True, array_backend)
    except Exception as exc:  # noqa: BLE001 (reported, and met again in the notebook)
        why = f"{module.rsplit('.', 1)[-1]} {variant} seed {seed}: {type(exc).__name__}: {exc}"
        return why, time.perf_counter() - start
    return "", time.perf_counter() - start


def _train_named(name: str, *task) -> tuple[str, str, float]:
    """:func:`_train` with the experiment's name in front of its result (results come back in any order)."""
    return (name, *_train(*task))


def _add_time(times: dict, name: str, seconds: float) -> None:
    """Count one run of ``name`` that took ``seconds`` into ``times`` (``{name: (runs, seconds)}``)."""
    runs, total = times.get(name, (0, 0.0))
    times[name] = (runs + 1, total + seconds)


def _run_tasks(name: str, preset: str) -> list[tuple]:
    """``(module, config, variant, seed)`` of every run ``experiments.notebook_run(name)`` asks for at ``preset``."""
    from . import experiments
    from .experiments.runner import resolve

    exp = experiments.get(name)
    config, variants = resolve(exp, preset)
    return [(exp.__name__, config, v, s) for v in variants for s in experiments.notebook_seeds(exp, preset)]


def train_runs(names, runs, preset: str, *, jobs: int = 1, progress: bool = True,
               times: dict | None = None) -> list[str]:
    """Train (or resume, or find finished) every run that ``experiments.notebook_run(name)`` asks for at ``preset``,
    for each of ``names``, into ``runs/preset``; ``jobs`` runs at a time in worker processes. Returns the runs that
    failed, one line each. The configuration, variants and seeds are the notebook's own
    (:func:`lnedu.experiments.notebook_seeds`), so the notebooks then find every run finished. ``times``: a dict
    that receives ``{name: (runs, seconds)}``, each experiment's runs and the seconds they took in their workers."""
    from tqdm.auto import tqdm

    from . import backend

    tasks = [(name, t) for name in names for t in _run_tasks(name, preset)]
    out, array_backend = str(Path(runs) / preset), backend.current()
    failed, times = [], {} if times is None else times
    with tqdm(total=len(tasks), desc="training", unit="run", disable=not progress or not tasks) as bar:
        if jobs == 1 or len(tasks) < 2:
            outcomes = (_train_named(name, *t, out, array_backend) for name, t in tasks)
        else:
            from joblib import Parallel, delayed

            # one task per run, handed out as workers free up; results in any order (each names its experiment)
            outcomes = Parallel(n_jobs=jobs, backend="loky", batch_size=1, return_as="generator_unordered")(
                delayed(_train_named)(name, *t, out, array_backend) for name, t in tasks)
        for name, why, seconds in outcomes:
            if why:
                failed.append(why)
            _add_time(times, name, seconds)
            bar.update()
    return failed


def _pipeline(paths, needs, runs, preset, jobs, page, last, progress, *, timeout, env, report):
    """:func:`reproduce` on ``jobs`` processes: ``({path: NotebookRun}, failed runs, experiments whose figure is
    drawn into ``report``, {experiment: (runs, seconds)})``.

    One pool of ``jobs`` processes (spawned: a worker shares no ZeroMQ state with this one) takes the work as it
    frees up, in this order: an experiment notebook whose runs are all trained (``needs[path]``: the experiments it
    asks for), so that it executes beside the training instead of after it; else the next run to train (the
    experiments of the longest notebooks first, by the last report's times ``last``, so that the last to finish
    has a short notebook); else, once nothing is left to train, a notebook that trains nothing (the derivations),
    the longest first: they fill the cores while the last runs finish. A derivation the last report does not time
    (there is none in a fresh clone) starts first instead, before any run: its length is unknown, and a long one
    left for the end would run there alone (notebook 15, the longest, came last in reading order and ended a
    fresh clone's run on one core for ~16 s). Each run and each notebook's kernel has one core, as with one job
    at a time. As soon as an experiment's runs are all trained, its figure for the report is drawn (before the next
    run starts; a notebook whose runs are ready goes first): drawn at the end, the nine figures kept one core busy
    for 3-3.5 s after the last notebook (the claims table itself takes milliseconds). An experiment that lost a run
    in training is drawn at the end, after its notebook trained the run again.
    """
    import multiprocessing
    from collections import Counter
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm.auto import tqdm

    from . import backend

    longest = {}  # each experiment: the longest time of a notebook that asks for it
    for path in paths:
        for name in needs[path]:
            longest[name] = max(longest.get(name, 0.0), last.get(path.name, 0.0))
    names = sorted(longest, key=lambda n: -longest[n])  # stable: reading order among equals
    queue = [(name, task) for name in names for task in _run_tasks(name, preset)]
    untrained = Counter(name for name, _ in queue)  # each experiment's runs not yet trained
    waiting = sorted(paths, key=lambda p: -last.get(p.name, 0.0))
    out, array_backend = str(Path(runs) / preset), backend.current()
    done, failed, running, times = {}, [], {}, {}
    figures, drawn, spoilt = [], [], set()  # experiments whose figure is due, is drawn, lost a run in training
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool, \
            tqdm(total=len(queue), desc="training", unit="run", disable=not progress or not queue) as runs_bar, \
            tqdm(total=len(paths), desc="notebooks", unit="nb", disable=not progress) as nb_bar:

        def startable(path):  # its runs are trained; a derivation of known length once nothing is left to train
            return (needs[path] or not queue or path.name not in last) and not any(untrained[n] for n in needs[path])

        def fill():
            while len(running) < jobs:
                ready = next((p for p in waiting if startable(p)), None)
                if ready is not None:
                    waiting.remove(ready)
                    running[pool.submit(execute_notebook, ready, timeout=timeout, env=env)] = ready
                elif figures:
                    name = figures.pop(0)
                    running[pool.submit(write_figure, out, name, report)] = ("figure", name)
                elif queue:
                    name, task = queue.pop(0)
                    running[pool.submit(_train, *task, out, array_backend)] = name
                else:
                    return

        fill()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                what = running.pop(future)
                if isinstance(what, str):  # a run
                    why, seconds = future.result()
                    _add_time(times, what, seconds)
                    if why:
                        failed.append(why)
                        spoilt.add(what)
                    untrained[what] -= 1
                    if not untrained[what] and what not in spoilt:  # its figure, now, not in the report at the end
                        figures.append(what)
                    runs_bar.update()
                elif isinstance(what, tuple):  # a figure
                    drawn.append(future.result())
                else:
                    nb_bar.set_postfix_str(what.name)
                    done[what] = page(what, *future.result())
                    nb_bar.update()
            fill()
    return done, failed, drawn, times


# ---- the terminal ----------------------------------------------------------------------------------------------

def terminal_summary(runs, claims, out, width: int = 100, training=None) -> str:
    """What ``make reproduce`` prints at the end, on one screen: the notebooks that failed (or that all ran),
    the training stage's runs and seconds (``training``: ``{experiment: (runs, seconds)}``), one line per claim
    (experiment, verdict, our figure), and where the report is."""
    from .experiments.report import verdict_word

    def cut(text, n):
        text = " ".join(str(text).split())
        return text if len(text) <= n else text[: n - 1] + "…"

    ok = sum(r.ok for r in runs)
    lines = [f"notebooks: {ok} of {len(runs)} ran without error in {sum(r.seconds for r in runs):.0f} s"]
    lines += [f"  FAILED {r.path.name}: {cut(r.error, width - 12 - len(r.path.name))}" for r in runs if not r.ok]
    if training:
        top, (_, most) = max(training.items(), key=lambda item: item[1][1])
        n_runs, seconds = _totals(training)
        lines.append(f"training: {n_runs} runs took {seconds:.0f} s (the most: {top}, {most:.0f} s)")
    if claims:
        w_title = min(38, max(len(c["title"]) for c in claims))
        words = [verdict_word(c) for c in claims]
        w_word = min(30, max(len(w) for w in words))
        lines += ["", f"{'claim':<{w_title}}  {'verdict':<{w_word}}  our figure"]
        for c, word in zip(claims, words):
            lines.append(f"{cut(c['title'], w_title):<{w_title}}  {cut(word, w_word):<{w_word}}  "
                         + cut(c["our_figure"], max(20, width - w_title - w_word - 4)))
    lines += ["", f"report: {Path(out) / 'index.html'}  (details: {Path(out) / 'summary.md'}, "
              f"{Path(out) / 'claims.html'})"]
    return "\n".join(lines)


def _by_seconds(training: dict) -> list:
    """``training``'s items, the experiment whose runs took longest first."""
    return sorted(training.items(), key=lambda item: -item[1][1])


def _totals(training: dict) -> tuple[int, float]:
    """``(runs, seconds)`` of all of ``training``'s experiments together."""
    return sum(n for n, _ in training.values()), sum(s for _, s in training.values())


def _summary_markdown(runs, claims=(), preset: str = "small", training=None) -> str:
    lines = [
        "# lnedu reproduce: summary",
        "",
        f"Experiments at the `{preset}` preset.",
        "",
        "| notebook | title | status | seconds |",
        "|---|---|---|---|",
    ]
    for r in runs:
        status = "ok" if r.ok else f"FAILED: {r.error}"
        lines.append(f"| {r.path.name} | {r.title} | {status} | {r.seconds:.1f} |")
    total = sum(r.seconds for r in runs)
    lines += ["", f"{sum(r.ok for r in runs)} of {len(runs)} notebooks ran without error in {total:.1f} s."]
    if training:  # where the job's time went, besides the notebooks
        lines += ["", "## Training", "",
                  "The runs the experiment notebooks ask for: one after another before the notebooks (one job), or "
                  "each in a worker process beside them. Each experiment's runs and the seconds they took, summed "
                  "(wall clock; a run found finished takes next to nothing).", "",
                  "| experiment | runs | seconds |", "|---|---|---|"]
        lines += [f"| {name} | {n} | {seconds:.1f} |" for name, (n, seconds) in _by_seconds(training)]
        n_runs, seconds = _totals(training)
        lines += ["", f"{n_runs} runs in {seconds:.1f} s."]
    text = "\n".join(lines) + "\n"
    if claims:  # the claims table of claims.md: paper's numbers, per-seed values, verdict with axis, why, note
        text += "\n" + claims_markdown(claims, title="## Claims")
    return text


_SUMMARY_ROW = re.compile(r"^\| (\d\d-[\w-]+\.ipynb) \|.*\| ([\d.]+) \|$", re.M)


def _last_seconds(out) -> dict:
    """``{notebook: seconds}`` from the ``summary.md`` a previous run left in ``out`` (empty when there is none)."""
    try:
        text = (Path(out) / "summary.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return {name: float(sec) for name, sec in _SUMMARY_ROW.findall(text)}


def _index_html(runs, claims=()) -> str:
    rows = "\n".join(
        f"<tr><td><a href='{html.escape(r.path.stem)}.html'>{html.escape(r.path.name)}</a></td>"
        f"<td>{html.escape(r.title)}</td><td class='{'ok' if r.ok else 'bad'}'>"
        f"{'ok' if r.ok else 'FAILED: ' + html.escape(r.error)}</td><td>{r.seconds:.1f}</td></tr>"
        for r in runs
    )
    claims_link = (
        f"<p><a href='claims.html'>The claims table</a>: {len(claims)} experiment(s), the paper's claim "
        "beside our small run's figure and verdict.</p>" if claims else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lnedu reproduce report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em}}.ok{{color:#070}}.bad{{color:#a00}}</style></head>
<body><h1>lnedu reproduce report</h1>
<p>Every notebook executed headless on the embedded defaults. Each page shows the notebook as it ran.</p>
<table id="notebooks"><thead><tr><th>notebook</th><th>title</th><th>status</th><th>seconds</th></tr></thead>
<tbody>
{rows}
</tbody></table>
{claims_link}
</body></html>
"""


def reproduce(notebooks="notebooks", out="reports", *, runs="runs", timeout: int = 900, progress: bool = True,
              only=None, preset: str | None = None, jobs: int = 1):
    """Execute copies of the notebooks and write ``out/NAME.html``, ``out/summary.md``, ``out/index.html``.

    Experiment notebooks train into ``runs/PRESET`` (resuming what is there); afterwards the claims table
    and the experiments' figures are written too (``out/claims.md``, ``out/claims.html``, ``out/NAME.png``).
    ``preset``: the experiments' preset (``"medium"``: the half-hour runs; default :func:`default_preset`, i.e.
    ``$LNEDU_PRESET`` or ``"small"``), passed to every kernel as ``$LNEDU_PRESET``.
    ``jobs``: how many processes work at once (one core each). With one, the experiments' runs are trained first
    (:func:`train_runs`), then the notebooks execute; with more, the runs and the notebooks share the processes,
    each notebook starting once its runs are trained (:func:`_pipeline`). The pages are the same either way.
    The stored notebooks are not modified. Returns the list of :class:`NotebookRun`, in reading order. With
    ``progress``, progress bars show the training and the notebooks, and a one-screen summary
    (:func:`terminal_summary`) ends the run.
    """
    check_timeout(timeout)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected a positive number of processes, got {jobs!r}")
    preset = default_preset() if preset is None else preset
    if not isinstance(preset, str) or not preset.isidentifier():
        raise ValueError(f"preset: expected a preset name such as 'small' or 'medium', got {preset!r}")
    require_lab("reproduce", "nbconvert", "nbclient", "nbformat", "jupyter_server_mathjax")
    from tqdm.auto import tqdm

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"out: expected a writable folder, got {str(out)!r} ({exc.strerror})") from exc
    paths = find_notebooks(notebooks)
    if only:
        paths = [p for p in paths if any(o in p.name for o in only)]
    env = {"LNEDU_RUNS": str(Path(runs).resolve()), "LNEDU_PRESET": preset}
    exporter = offline_exporter(copy_mathjax(out))
    needs = {path: experiments_of(path) for path in paths}

    def page(path, nb, run):
        body, _ = exporter.from_notebook_node(static_widgets(without_install_cell(nb)))
        atomic_write_text(out / f"{path.stem}.html", _offline_html(body))
        return run

    times = {}  # {experiment: (runs, seconds)} of the training stage
    if jobs == 1:
        failed = train_runs(list(dict.fromkeys(n for path in paths for n in needs[path])), runs, preset,
                            progress=progress, times=times)
        done, drawn = {}, ()  # the figures: all drawn with the claims table, below
        with tqdm(total=len(paths), desc="notebooks", unit="nb", disable=not progress) as bar:
            for path in paths:
                bar.set_postfix_str(path.name)
                done[path] = page(path, *execute_notebook(path, timeout=timeout, env=env))
                bar.update()
    else:
        done, failed, drawn, times = _pipeline(paths, needs, runs, preset, jobs, page, _last_seconds(out), progress,
                                               timeout=timeout, env=env, report=out)
    if failed and progress:
        print(f"training: {len(failed)} run(s) failed; their notebooks trained them again and show the error:\n  "
              + "\n  ".join(failed))
    done = [done[path] for path in paths]
    claims = write_report(Path(runs) / preset, out, drawn=drawn)
    atomic_write_text(out / "summary.md", _summary_markdown(done, claims, preset, times))
    atomic_write_text(out / "index.html", _index_html(done, claims))
    if progress:
        print(terminal_summary(done, claims, out, training=times))
    return done
