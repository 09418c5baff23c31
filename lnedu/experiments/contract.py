"""The experiment contract as types: what an experiment module defines, and what the task it builds offers.

:class:`Experiment` is what every module in :data:`lnedu.experiments.EXPERIMENTS` fills (a module satisfies a
``Protocol`` the way an object does: its constants are the attributes, its functions the methods):

* ``NAME``, ``TITLE``, ``PAPER`` (where the claim is: paper, section, figure), ``CLAIM`` (in words);
* ``Config``, a dataclass with a ``data_path`` field (the real data set's file or folder, ``--data``), and
  ``PRESETS``, a ``Config`` for each of ``"tiny"`` (seconds: tests, nbval), ``"small"`` (the default: every
  variant x its seeds in minutes on 2 CPU cores), ``"medium"`` (the largest run that finishes in about half an
  hour on 2 cores) and ``"paper"`` (the paper's sizes, meant for a GPU, on the real data set only: without it
  the task refuses to build, :class:`lnedu.data.RealDataSet`);
* ``SETTINGS``: the settings table's rows (:mod:`.settings`), and ``standin(config)``: the config with its data
  replaced by generated data of the real set's shapes, what ``--plan`` measures on when the real set is absent;
* ``VARIANTS``: the names compared, such as ``("baseline", "bn", "ln")``;
* ``build(config, variant, seed) -> Task``, ``verdict(results) -> Verdict`` (whether the claim held in this run),
  ``plot(results) -> Figure`` (the paper's figure redrawn from this run);
* optionally ``GRID = True``: the runs share nothing and may run in parallel (:mod:`.sweep`).

:class:`Task` (the runner's, :class:`lnedu.experiments.runner.Task`) is what ``build`` returns: a step, an
evaluation, its whole state as arrays (so a resumed run continues exactly), and its **schedule**: ``steps``
(updates in the run), ``eval_every`` and ``checkpoint_every`` (in updates). The task sets its schedule from its
config (an experiment that counts epochs turns them into updates at its batch size), and the runner reads it
from the task.

:func:`check_experiment` and :func:`check_task` check an object against these and raise :class:`ContractError`
naming every member that is missing or wrong; the registry (:func:`lnedu.experiments.get`) checks each module
when it hands it out.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any, Protocol

from .runner import RunResult, Task, Verdict
from .settings import Setting

__all__ = ["Experiment", "Task", "ContractError", "PRESET_NAMES", "SCHEDULE", "check_experiment", "check_task"]

PRESET_NAMES = ("tiny", "small", "medium", "paper")
SCHEDULE = ("steps", "eval_every", "checkpoint_every")


class Experiment(Protocol):
    """One of the paper's experiments, as a module (see the module's docstring)."""

    NAME: str
    TITLE: str
    PAPER: str
    CLAIM: str
    Config: type
    PRESETS: Mapping[str, Any]
    VARIANTS: tuple[str, ...]
    SETTINGS: tuple  # of lnedu.experiments.settings.Setting: the settings table's rows

    def build(self, config: Any, variant: str, seed: int) -> Task:
        """The task that trains ``variant`` with ``config`` from ``seed``."""

    def verdict(self, results: dict[str, list[RunResult]]) -> Verdict:
        """Whether the claim held in these runs, and the figure to compare with the paper's."""

    def plot(self, results: dict[str, list[RunResult]]) -> Any:
        """The paper's figure redrawn from these runs (a matplotlib Figure)."""

    def standin(self, config: Any) -> Any:
        """``config`` with its data replaced by generated data of the real set's shapes (what ``--plan`` measures
        a paper-size update on when the real set is absent)."""


OPTIONAL = {"GRID": bool}  # members an experiment may define, with their type


class ContractError(TypeError):
    """An experiment module or a task that does not fill the contract; the message names what is wrong."""


def members(protocol) -> list[str]:
    """The members a protocol asks for, in the order it declares them: annotated attributes, then methods."""
    names = list(getattr(protocol, "__annotations__", {}))
    names += [k for k, v in vars(protocol).items() if not k.startswith("_") and callable(v) and k not in names]
    return names


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _experiment_problems(module) -> list[str]:
    problems = [f"{k} (missing)" for k in members(Experiment) if not hasattr(module, k)]
    get = lambda k: getattr(module, k, None)  # noqa: E731
    for k in ("NAME", "TITLE", "PAPER", "CLAIM"):
        if hasattr(module, k) and not _text(get(k)):
            problems.append(f"{k} (expected a non-empty string, got {get(k)!r})")
    config = get("Config")
    if hasattr(module, "Config") and not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        problems.append(f"Config (expected a dataclass, got {config!r})")
    presets = get("PRESETS")
    if hasattr(module, "PRESETS"):
        if not isinstance(presets, Mapping):
            problems.append(f"PRESETS (expected a dict of configs, got {type(presets).__name__})")
        else:
            lacking = [p for p in PRESET_NAMES if p not in presets]
            if lacking:
                problems.append(f"PRESETS (expected the presets {list(PRESET_NAMES)}, lacks {lacking})")
            if isinstance(config, type):
                wrong = [p for p, c in presets.items() if not isinstance(c, config)]
                if wrong:
                    problems.append(f"PRESETS (expected Config instances, got other objects for {wrong})")
    variants = get("VARIANTS")
    if hasattr(module, "VARIANTS") and not (isinstance(variants, tuple) and variants
                                            and all(_text(v) for v in variants)
                                            and len(set(variants)) == len(variants)):
        problems.append(f"VARIANTS (expected a non-empty tuple of distinct names, got {variants!r})")
    if isinstance(config, type) and dataclasses.is_dataclass(config) and "data_path" not in {
            f.name for f in dataclasses.fields(config)}:
        problems.append("Config (expected a data_path field: the real data set's path, --data)")
    rows = get("SETTINGS")
    if hasattr(module, "SETTINGS") and not (isinstance(rows, tuple) and rows
                                            and all(isinstance(r, Setting) for r in rows)):
        problems.append(f"SETTINGS (expected a non-empty tuple of Setting rows, got {type(rows).__name__})")
    for k, n_args in (("build", 3), ("verdict", 1), ("plot", 1), ("standin", 1)):
        if not hasattr(module, k):
            continue
        f = get(k)
        if not callable(f):
            problems.append(f"{k} (expected a function, got {type(f).__name__})")
            continue
        try:
            inspect.signature(f).bind(*range(n_args))
        except TypeError:
            problems.append(f"{k} (expected a function of {n_args} positional argument{'s' * (n_args > 1)}, "
                            f"got {k}{inspect.signature(f)})")
        except ValueError:  # a builtin without a signature: trust it
            pass
    for k, kind in OPTIONAL.items():
        if hasattr(module, k) and not isinstance(get(k), kind):
            problems.append(f"{k} (expected a {kind.__name__}, got {get(k)!r})")
    return problems


def check_experiment(module, name: str | None = None):
    """Check that ``module`` fills :class:`Experiment` (and, with ``name``, that its ``NAME`` is ``name``);
    return it. Raises :class:`ContractError` naming every member that is missing or wrong."""
    problems = _experiment_problems(module)
    if name is not None and hasattr(module, "NAME") and module.NAME != name:
        problems.append(f"NAME (expected {name!r}, the name it is registered under, got {module.NAME!r})")
    if problems:
        what = getattr(module, "__name__", type(module).__name__)
        raise ContractError(f"{what}: does not fill the experiment contract (lnedu.experiments.contract.Experiment): "
                            + "; ".join(problems))
    return module


def check_task(task, config=None):
    """Check that ``task`` fills :class:`Task`: its methods, and a schedule of positive integers; with ``config``,
    that every schedule field the config has (``steps``, ``eval_every``, ``checkpoint_every``) is the task's,
    so no setting in a config is silently ignored. Return the task; raise :class:`ContractError` otherwise."""
    problems = []
    for k in dict.fromkeys([*SCHEDULE, *members(Task)]):
        if not hasattr(task, k):
            problems.append(f"{k} (missing)")
        elif k in SCHEDULE:
            v = getattr(task, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                problems.append(f"{k} (expected a positive integer, got {v!r})")
            elif config is not None and hasattr(config, k) and getattr(config, k) != v:
                problems.append(f"{k} (expected the config's {getattr(config, k)!r}, got {v!r})")
        elif not callable(getattr(task, k)):
            problems.append(f"{k} (expected a method, got {type(getattr(task, k)).__name__})")
    if problems:
        raise ContractError(f"{type(task).__name__}: does not fill the task contract "
                            "(lnedu.experiments.runner.Task): " + "; ".join(problems))
    return task
