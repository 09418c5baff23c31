"""The learning rate of each variant, chosen on validation data as the papers tuned their models.

Normalization changes the effective step size (LN §5.2: the weights' scale no longer moves the output, so a
fixed step is a smaller relative change for larger weights), so one learning rate for every variant partly
measures how well that rate suits each of them. A small sweep per variant removes that: every variant of an
experiment trains at a few rates over about a decade, with the preset's own budget, on seeds the verdict never
uses (100 and up), and is scored on validation data (never on the test set: the image experiments hold some
training images out, see :data:`SPECS`). The rate with the best validation figure is the variant's rate in
the preset (``Config.lr_by_variant``, read by :func:`lnedu.experiments.common.lr_for`).

* :func:`sweep` runs it (``python -m lnedu tune NAME [--preset P]``) and returns a :class:`TuneTable`;
* :func:`table` reads the stored table of a preset (``lnedu/experiments/tuned/NAME-PRESET.json``), so a notebook
  shows it without training anything; :func:`check_preset` says whether the preset still holds its choices.

The validation figure of a run is the mean of its last 3 evaluations of the spec's metric (the level the run
ends at, less noisy than the last evaluation alone).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_write_text, read_json
from .runner import check_seeds, resolve, run_one

__all__ = ["Spec", "SPECS", "TuneTable", "sweep", "table", "chosen", "check_preset", "figure", "tuned_path",
           "TUNED"]

TUNED = Path(__file__).parent / "tuned"  # the stored tables, one JSON per experiment and preset
LAST = 3  # evaluations averaged into a run's validation figure


@dataclass(frozen=True)
class Spec:
    """What the sweep of one experiment varies and reads.

    ``metric``: the evaluation record's key scored (on validation data); ``mode``: ``"min"`` or ``"max"``;
    ``rates``: the learning rates tried (3-4 over about a decade around the experiment's own); ``seeds``: the
    sweep's seeds (never the verdict's 0-2); ``overrides``: config fields set for the sweep (``holdout``: the
    training examples the image experiments evaluate on instead of the test set); ``split``: in words, what the
    metric is computed on."""

    metric: str
    mode: str
    rates: tuple
    seeds: tuple = (100,)
    overrides: dict = field(default_factory=dict)
    split: str = "the validation split"


# Every experiment whose claim is about training speed, plus the reader (whose BN arms did not learn at one rate).
# Three or four rates over about a decade around the experiment's own; where the best sat at the edge of the grid,
# one more rate beyond it (mnist, convnet, handwriting, the char-LM, the reader); three for the expensive DRAW.
SPECS = {
    "mnist": Spec("test_nll", "min", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2), (100, 101), {"holdout": 300},
                  "300 training images held out (the test set is not used)"),
    "convnet": Spec("test_nll", "min", (3e-4, 1e-3, 3e-3, 1e-2, 3e-2), (100, 101), {"holdout": 300},
                    "300 training images held out (the test set is not used)"),
    "draw": Spec("test_bound", "min", (1e-3, 3e-3, 1e-2), (100,), {"holdout": 300},
                 "300 training images held out (the test set is not used)"),
    "handwriting": Spec("test_nll", "min", (3e-4, 1e-3, 3e-3, 1e-2, 3e-2), (100,), {"holdout": 60},
                        "60 training lines held out (the test lines are not used)"),
    "charlm": Spec("valid_bpc", "min", (1e-3, 3e-3, 1e-2, 3e-2), (100,), {}, "the validation text"),
    "order_embeddings": Spec("val_img_rsum", "max", (1e-3, 2e-3, 5e-3, 1e-2), (100,), {},
                             "the validation (dev) images and captions"),
    "skip_thoughts": Spec("valid_loss", "min", (1e-3, 2e-3, 5e-3, 1e-2), (100,), {},
                          "the held-out documents"),
    "attentive_reader": Spec("valid_error", "min", (1e-3, 3e-3, 1e-2, 3e-2), (100,), {},
                             "the validation questions"),
}


def _exp(exp):
    if isinstance(exp, str):
        from . import get

        return get(exp)
    return exp


def _spec(exp) -> Spec:
    if exp.NAME not in SPECS:
        raise ValueError(f"name: expected an experiment with a learning-rate sweep ({', '.join(SPECS)}), "
                         f"got {exp.NAME!r}")
    return SPECS[exp.NAME]


def _rate_key(rate) -> str:
    return f"{float(rate):g}"


def figure(run, metric: str, last: int = LAST) -> float:
    """A run's validation figure: the mean of its last ``last`` evaluations of ``metric``."""
    vals = [r[metric] for r in run.eval if metric in r]
    if not vals:
        raise ValueError(f"metric: expected {metric!r} in the run's evaluation records, got none")
    return float(np.mean(vals[-last:]))


@dataclass
class TuneTable:
    """A sweep's outcome: ``results[variant][rate]`` holds the validation figure of each seed, ``chosen[variant]``
    the rate with the best mean. Shows itself as a table in a notebook (``_repr_html_``) and as text."""

    experiment: str
    preset: str
    metric: str
    mode: str
    split: str
    seeds: list
    rates: list
    steps: dict  # updates per run, per variant
    results: dict  # {variant: {"0.001": [figure per seed]}}
    chosen: dict  # {variant: rate}
    summary: str = f"mean of the last {LAST} evaluations"

    def mean(self, variant: str, rate) -> float:
        vals = self.results[variant].get(_rate_key(rate))
        return float(np.mean(vals)) if vals else math.nan

    def rows(self) -> list:
        """``[(variant, [mean figure per rate], chosen rate)]`` in the table's order."""
        return [(v, [self.mean(v, r) for r in self.rates], self.chosen[v]) for v in self.results]

    def to_markdown(self) -> str:
        head = "| variant | " + " | ".join(f"lr {_rate_key(r)}" for r in self.rates) + " | chosen |"
        better = "lower" if self.mode == "min" else "higher"
        lines = [f"{self.experiment} ({self.preset}): validation {self.metric} ({better} is better; {self.summary}; "
                 f"{self.split}; seeds {', '.join(map(str, self.seeds))})", "",
                 head, "|" + "---|" * (len(self.rates) + 2)]
        for v, vals, best in self.rows():
            cells = [("**%.4g**" if r == best else "%.4g") % x if math.isfinite(x) else "-"
                     for r, x in zip(self.rates, vals)]
            lines.append(f"| {v} | " + " | ".join(cells) + f" | {_rate_key(best)} |")
        return "\n".join(lines)

    __str__ = to_markdown

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, path) -> TuneTable:
        from .._io import DamagedFile

        data = read_json(path, "learning-rate table (JSON)")
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or not names - {"summary"} <= set(data):
            raise DamagedFile(Path(path), f"expected a learning-rate table with {sorted(names)}, got other JSON")
        return cls(**{k: v for k, v in data.items() if k in names})


def _choose(results: dict, rates, mode: str) -> dict:
    out = {}
    for v, by_rate in results.items():
        means = [(float(np.mean(by_rate[_rate_key(r)])), r) for r in rates if by_rate.get(_rate_key(r))]
        finite = [(m, r) for m, r in means if math.isfinite(m)]
        if not finite:
            raise ValueError(f"{v}: no rate gave a finite validation figure")
        out[v] = (min if mode == "min" else max)(finite, key=lambda mr: mr[0])[1]
    return out


def _one(name, config, variant, seed, out, backend_name):
    """One sweep run in a worker process: its validation figure (``nan`` when training diverged)."""
    from .. import backend
    from . import get
    from .runner import Diverged

    backend.use(backend_name)
    exp = get(name)
    try:
        run = run_one(exp, config, variant, seed, Path(out), resume=True, progress=False)
    except Diverged:  # a rate too large for a variant is a finding, not a crash
        return variant, seed, math.nan, 0
    except ValueError as exc:  # the optimizer refused non-finite gradients: the same finding
        if "expected finite gradients" not in str(exc):
            raise
        return variant, seed, math.nan, 0
    return variant, seed, figure(run, SPECS[name].metric), int(run.train[-1]["step"])


def sweep(exp, preset: str = "small", *, rates=None, seeds=None, variants=None, out="runs", n_jobs: int = 1,
          store: bool = False) -> TuneTable:
    """Train every variant of ``exp`` (a module or its name) at every rate of its :data:`SPECS` entry (or
    ``rates``), on the sweep's seeds, with the preset's budget; returns the :class:`TuneTable`.

    Runs go to ``OUT/PRESET/tune/NAME/lrRATE/`` (finished ones are reused), the table to
    ``OUT/PRESET/tune/NAME/table.json``; ``store=True`` also writes it to ``lnedu/experiments/tuned/`` (what
    :func:`table` and the notebooks read). ``n_jobs`` runs go at once (joblib worker processes)."""
    from joblib import Parallel, delayed

    from .. import backend

    exp = _exp(exp)
    spec = _spec(exp)
    rates = [float(r) for r in (spec.rates if rates is None else rates)]
    if not rates or not all(r > 0 for r in rates):
        raise ValueError(f"rates: expected learning rates > 0, got {rates!r}")
    seeds = check_seeds(spec.seeds if seeds is None else seeds)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs: expected a positive number of worker processes, got {n_jobs!r}")
    base, variants = resolve(exp, preset, None, variants)
    folder = Path(out) / preset / "tune" / exp.NAME
    jobs = []
    for r in rates:
        config = dataclasses.replace(base, lr=r, **({"lr_by_variant": {}} if hasattr(base, "lr_by_variant") else {}),
                                     **spec.overrides)
        jobs += [(config, v, s, str(folder / f"lr{_rate_key(r)}"), r) for v in variants for s in seeds]
    if n_jobs == 1:
        done = [_one(exp.NAME, c, v, s, o, backend.current()) for c, v, s, o, _ in jobs]
    else:
        done = Parallel(n_jobs=n_jobs, backend="loky")(
            delayed(_one)(exp.NAME, c, v, s, o, backend.current()) for c, v, s, o, _ in jobs)
    results = {v: {_rate_key(r): [] for r in rates} for v in variants}
    steps = {}
    for (_, v, _, _, r), (_, _, fig, n) in zip(jobs, done):
        results[v][_rate_key(r)].append(fig)
        steps[v] = max(steps.get(v, 0), n)
    tab = TuneTable(exp.NAME, preset, spec.metric, spec.mode, spec.split, seeds, rates, steps, results,
                    _choose(results, rates, spec.mode))
    atomic_write_text(folder / "table.json", tab.to_json())
    if store:
        TUNED.mkdir(exist_ok=True)
        atomic_write_text(tuned_path(exp.NAME, preset), tab.to_json())
    return tab


def tuned_path(name: str, preset: str = "small") -> Path:
    """Where the stored table of an experiment's preset lives."""
    return TUNED / f"{name}-{preset}.json"


def table(name: str, preset: str = "small") -> TuneTable:
    """The stored learning-rate table of experiment ``name`` for ``preset`` (no training): what the sweep found
    and which rate each variant got. A preset never swept is a ``FileNotFoundError`` saying how to run it."""
    path = tuned_path(_exp(name).NAME, preset)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no learning-rate table for {name} ({preset}); run "
                                f"`python -m lnedu tune {name} --preset {preset} --store`")
    return TuneTable.from_json(path)


def chosen(name: str, preset: str = "small") -> dict:
    """``{variant: learning rate}`` the stored sweep chose for ``preset``."""
    return dict(table(name, preset).chosen)


def check_preset(name: str, preset: str = "small") -> list:
    """The variants whose rate in the preset (``lr_by_variant``) differs from the stored sweep's choice, as
    ``[(variant, in the preset, chosen)]``; empty when they agree."""
    exp = _exp(name)
    config = exp.PRESETS[preset]
    got = getattr(config, "lr_by_variant", None) or {}
    return [(v, got.get(v), r) for v, r in chosen(exp.NAME, preset).items() if got.get(v) != r]
