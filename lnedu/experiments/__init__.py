"""The paper's experiments, small enough to run on a laptop: one module per experiment.

``python -m lnedu list`` shows them, ``python -m lnedu run NAME`` runs one (see :mod:`.runner` for what an
experiment module defines, and for checkpoints and resume), ``python -m lnedu report`` collects the claims
table and the plots into ``reports/``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from .runner import RunResult, Verdict, load_results, run, run_one

__all__ = [
    "EXPERIMENTS",
    "get",
    "names",
    "default_preset",
    "notebook_run",
    "run",
    "run_one",
    "load_results",
    "RunResult",
    "Verdict",
]

# name -> module, in the order of the paper's sections
EXPERIMENTS = {
    "order_embeddings": "lnedu.experiments.order_embeddings",  # LN §6.1
    "attentive_reader": "lnedu.experiments.attentive_reader",  # LN §6.2
    "skip_thoughts": "lnedu.experiments.skip_thoughts",  # LN §6.3
    "draw": "lnedu.experiments.draw",  # LN §6.4, Recurrent NormProp §5.2
    "handwriting": "lnedu.experiments.handwriting",  # LN §6.5
    "mnist": "lnedu.experiments.mnist_mlp",  # LN §6.6
    "convnet": "lnedu.experiments.convnet",  # LN §6.7
    "charlm": "lnedu.experiments.charlm",  # Recurrent NormProp §5.1
    "text8_grid": "lnedu.experiments.text8_grid",  # the text8 cells x LN x initializers study
}


def names() -> list[str]:
    """Names of the experiments whose module is present."""
    out = []
    for name, mod in EXPERIMENTS.items():
        if importlib.util.find_spec(mod) is not None:
            out.append(name)
    return out


def get(name: str):
    """The experiment module called ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"name: expected one of {names()}, got {name!r}")
    return importlib.import_module(EXPERIMENTS[name])


def default_preset() -> str:
    """The preset notebooks run: ``$LNEDU_PRESET`` if set (nbval in CI uses ``tiny``), else ``small``."""
    return os.environ.get("LNEDU_PRESET", "small").strip() or "small"


def notebook_run(name: str, *, jobs: int | None = None, **kwargs):
    """What an experiment notebook calls: run (or pick up the finished runs of) one experiment.

    The preset is :func:`default_preset`; results go to ``$LNEDU_RUNS/PRESET`` (default ``../runs/PRESET``,
    the repository's ``runs/`` folder seen from ``notebooks/``), and ``resume=True``, so a notebook executed
    after ``python -m lnedu run NAME`` shows those runs instead of training again.
    ``jobs``: for a grid experiment (``GRID = True``), run that many runs at once on local cores
    (:func:`lnedu.experiments.sweep.run_grid`); the results are the same as one after another.
    Returns ``(module, preset, results)``.
    """
    from pathlib import Path

    exp = get(name)
    preset = default_preset()
    out = Path(os.environ.get("LNEDU_RUNS", "../runs")) / preset
    kwargs.setdefault("resume", True)
    if jobs is not None and getattr(exp, "GRID", False):
        from .sweep import run_grid

        return exp, preset, run_grid(exp, preset, out=out, n_jobs=jobs, **kwargs)
    return exp, preset, run(exp, preset, out=out, **kwargs)
