"""The paper's experiments, small enough to run on a laptop: one module per experiment.

``python -m lnedu list`` shows them, ``python -m lnedu run NAME`` runs one (see :mod:`.runner` for checkpoints
and resume), ``python -m lnedu report`` collects the claims table and the plots into ``reports/``.

What an experiment module defines is a type, :class:`.contract.Experiment` (``NAME``, ``TITLE``, ``PAPER``,
``CLAIM``, ``Config`` and ``PRESETS``, ``VARIANTS``, ``build``, ``verdict``, ``plot``), and what its ``build``
returns is a :class:`.contract.Task`, which carries its own schedule (``steps``, ``eval_every``,
``checkpoint_every``). :func:`get` checks a module against the contract before handing it out and names what
is missing; :func:`register` adds one. :func:`load_task` gives back the task of a saved run (a trained model).

Every experiment module is laid out in one order, each part under a ``# ---- part`` banner when it has one:

1. the docstring: the paper's setting and claim, then our small run;
2. imports;
3. the contract's constants (``NAME``, ``TITLE``, ``PAPER``, ``CLAIM``, ``VARIANTS``, ``GRID``, the module's own
   constants) and ``__all__``;
4. ``Config`` and ``PRESETS``;
5. **model**: the network and ``build_model`` (or ``build_layer``);
6. **data**: loading and batching;
7. **task**: the class that trains one model;
8. **build**: ``build(config, variant, seed)``, then what uses a trained run (``load_trained``, generation);
9. **verdict**: summaries, tables and ``verdict(results)``;
10. **plot**: ``plot(results)`` and the module's other figures.

Pieces shared between experiments live beside them: :mod:`.common` (the checkpointed task, epoch batches, the
classifier task) and :mod:`.charlm_model` (the character-level language model of ``charlm`` and ``text8_grid``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from .contract import ContractError, Experiment, Task, check_experiment, check_task
from .runner import RunResult, Verdict, load_results, load_task, run, run_one

__all__ = [
    "EXPERIMENTS",
    "get",
    "register",
    "names",
    "default_preset",
    "notebook_run",
    "notebook_seeds",
    "run",
    "run_one",
    "load_results",
    "load_task",
    "RunResult",
    "Verdict",
    "Experiment",
    "Task",
    "ContractError",
    "check_experiment",
    "check_task",
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


def get(name: str) -> Experiment:
    """The experiment module called ``name``, checked against :class:`.contract.Experiment` (a module that does
    not fill it raises :class:`.contract.ContractError` naming what is missing)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"name: expected one of {names()}, got {name!r}")
    return check_experiment(importlib.import_module(EXPERIMENTS[name]), name)


def register(name: str, module: str) -> Experiment:
    """Add the experiment module ``module`` (its dotted path) under ``name``: imported and checked against
    :class:`.contract.Experiment` now, so a module that does not fill the contract is refused here. Returns it."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: expected an identifier such as 'mnist', got {name!r}")
    exp = check_experiment(importlib.import_module(module), name)
    EXPERIMENTS[name] = module
    return exp


def default_preset() -> str:
    """The preset notebooks run: ``$LNEDU_PRESET`` if set (nbval in CI uses ``tiny``), else ``small``."""
    return os.environ.get("LNEDU_PRESET", "small").strip() or "small"


def notebook_seeds(exp, preset: str) -> tuple:
    """The seeds an experiment notebook runs: ``$LNEDU_SEEDS`` (``"5 6 7"``) when set, else the experiment's own
    for the preset (:func:`lnedu.experiments.verdicts.seeds_for`: more where runs are cheap)."""
    from .verdicts import seeds_for

    env_seeds = os.environ.get("LNEDU_SEEDS", "").split()
    if not all(s.isdigit() for s in env_seeds):
        raise ValueError(f"LNEDU_SEEDS: expected non-negative integers separated by spaces, got "
                         f"{os.environ['LNEDU_SEEDS']!r}")
    return tuple(int(s) for s in env_seeds) if env_seeds else seeds_for(exp, preset)


def notebook_run(name: str, *, jobs: int | None = None, **kwargs):
    """What an experiment notebook calls: run (or pick up the finished runs of) one experiment.

    The preset is :func:`default_preset`; results go to ``$LNEDU_RUNS/PRESET`` (default ``../runs/PRESET``,
    the repository's ``runs/`` folder seen from ``notebooks/``), and ``resume=True``, so a notebook executed
    after ``python -m lnedu run NAME`` (or the training stage of ``make reproduce``) shows those runs instead of
    training again.
    ``jobs``: for a grid experiment (``GRID = True``), run that many runs at once on local cores
    (:func:`lnedu.experiments.sweep.run_grid`); the results are the same as one after another.
    The seeds are :func:`notebook_seeds` unless ``seeds`` is given.
    Returns ``(module, preset, results)``.
    """
    from pathlib import Path

    exp = get(name)
    preset = default_preset()
    out = Path(os.environ.get("LNEDU_RUNS", "../runs")) / preset
    kwargs.setdefault("resume", True)
    kwargs.setdefault("seeds", notebook_seeds(exp, preset))
    if jobs is not None and getattr(exp, "GRID", False):
        from .sweep import run_grid

        return exp, preset, run_grid(exp, preset, out=out, n_jobs=jobs, **kwargs)
    return exp, preset, run(exp, preset, out=out, **kwargs)
