"""One decision rule for every claim: per-seed figures, the noise between seeds, four verdict words.

A paper's claim is tested by comparing two *arms* (variants) on one *axis* (final test error, updates to a
target, ...). Each arm gives one figure per seed. The rule (:func:`compare`):

1. **Paired by seed.** Where the arms share the seed (data order, initial draws), the difference is taken seed
   by seed, ``d_s = b_s - a_s`` when lower is better (``a_s - b_s`` when higher is), so a positive ``d``
   favours the claim "``a`` beats ``b``". Unpaired arms compare means, with the standard error of a
   difference of two means.
2. **Noise.** The mean difference ``mean(d)`` and its standard error ``SE = sd(d) / sqrt(n)`` (sample sd,
   ``n - 1`` in the denominator).
3. **Words.**

   * **held**: ``mean(d) > 2 SE`` and at least ``n - 1`` of the ``n`` seeds favour the claim;
   * **did not hold**: the same test passes the other way (``mean(d) < -2 SE``, ``n - 1`` seeds against);
   * **undecided (within seed noise)**: neither; with one seed there is no noise estimate, so always this;
   * **not tested**: an arm did not learn (:func:`learned`: its mean curve never got ``margin`` better than
     its first evaluation), so a ranking would say nothing about the claim.

A claim with several parts (:func:`combine`) held when every part held, did not hold when any part did not,
was not tested when a part was not tested, and is undecided otherwise.

**Faster** (:func:`speed`) has one rule too: each arm's updates (and training wall-clock seconds, when its
records carry them: the runner's cumulative ``wall_seconds``) to first reach a *target* that every compared
arm's mean curve reaches: the worst arm's best level, moved back by ``1 - fraction`` (10%) of the smallest
improvement any arm made. A seed that never reaches it is **censored**: its time is only known to exceed the
run, it counts as the run's length, and a comparison it would flatter is not called (held needs the
claimed-faster arm uncensored on every seed; did not hold needs the same of the other arm).

Figures are written ``mean ± sd (n seeds)``, sd the sample standard deviation across seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .runner import Verdict as _RunnerVerdict

__all__ = [
    "HELD", "NOT_HELD", "UNDECIDED", "NOT_TESTED", "WORDS", "Z", "RULE",
    "Comparison", "Verdict", "compare", "combine", "learned", "not_tested", "speed", "Speed",
    "per_seed", "final", "mean_sd", "arm_figure", "word_of", "held_of", "describe_parts", "seeds_for",
    "DEFAULT_SEEDS",
]

HELD, NOT_HELD, UNDECIDED, NOT_TESTED = "held", "did not hold", "undecided (within seed noise)", "not tested"
WORDS = (HELD, NOT_HELD, UNDECIDED, NOT_TESTED)
Z = 2.0  # standard errors a mean difference must exceed
DEFAULT_SEEDS = (0, 1, 2)

RULE = ("**How a verdict is decided** (the same rule for every claim, `lnedu.experiments.verdicts`): each arm "
        "gives one figure per seed; the difference is taken seed by seed (the arms share each seed's data order); "
        "the claim **held** when the mean difference favours it by more than 2 standard errors and at least n-1 "
        "of the n seeds agree in sign, **did not hold** when the same test passes the other way, and is "
        "**undecided (within seed noise)** otherwise. It was **not tested** when an arm never improved on its "
        "first evaluation by a stated margin (it did not learn, so its rank says nothing). \"Faster\" is the "
        "updates (and seconds, where the runs log them) each arm needs to first reach a target every arm reaches: "
        "the worst arm's best level, moved back by 10% of the smallest improvement; a run that never reaches it "
        "is censored, not slow. Figures are mean ± sd (n seeds).")


# ---------------------------------------------------------------------------------------------------------
# per-seed figures


def per_seed(runs, fn) -> dict:
    """``{seed: fn(run)}`` over the runs of one arm (a list of :class:`~lnedu.experiments.runner.RunResult`)."""
    return {int(r.seed): float(fn(r)) for r in runs}


def final(key: str, scale: float = 1.0, last: int = 1):
    """A function of a run: its eval metric ``key`` (mean of the last ``last`` evaluations), times ``scale``."""
    def fn(run):
        vals = [e[key] for e in run.eval if key in e]
        if not vals:
            raise ValueError(f"key: expected an eval metric of the run, got {key!r}")
        return scale * float(np.mean(vals[-last:]))
    return fn


def mean_sd(values) -> tuple:
    """``(mean, sample sd, n)`` of per-seed values (a dict or a sequence); sd is 0 for one seed."""
    v = np.array(list(values.values()) if isinstance(values, dict) else list(values), dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def arm_figure(values, fmt: str = ".3f", unit: str = "") -> str:
    """``"1.23 ± 0.04 (3 seeds)"``: one arm's per-seed values as mean ± sd (n)."""
    m, s, n = mean_sd(values)
    return f"{m:{fmt}}{unit} ± {s:{fmt}}{unit} ({n} seed{'s' if n != 1 else ''})"


# ---------------------------------------------------------------------------------------------------------
# the rule


@dataclass
class Comparison:
    """One part of a claim: arm ``a`` beats arm ``b`` on ``axis``, decided by :func:`compare`."""

    claim: str  # "ln-bs4 below bn-bs4", in words
    axis: str  # "final test error (%)"
    a: str
    b: str
    values: dict  # {arm: {seed: value}}
    better: str  # "lower" or "higher"
    outcome: str  # one of WORDS
    diff: float = math.nan  # mean difference, positive favours the claim
    se: float = math.nan
    agree: int = 0  # seeds (pairs) whose difference favours the claim
    against: int = 0
    n: int = 0
    paired: bool = True
    why: str = ""
    fmt: str = ".3f"

    def figure(self) -> str:
        """``"a 1.1 ± 0.2 (3 seeds) vs b 3.3 ± 0.7 (3 seeds)"``."""
        return " vs ".join(f"{arm} {arm_figure(self.values[arm], self.fmt)}" for arm in (self.a, self.b))

    def seeds_line(self) -> str:
        """The per-seed values, ``"a: 1.0, 1.2, 1.1; b: 3.0, 3.9, 3.1 (seeds 0, 1, 2)"``."""
        seeds = sorted(set(self.values[self.a]) | set(self.values[self.b]))
        parts = [f"{arm}: " + ", ".join(f"{self.values[arm][s]:{self.fmt}}" if s in self.values[arm] else "-"
                                        for s in seeds) for arm in (self.a, self.b)]
        return "; ".join(parts) + f" (seeds {', '.join(map(str, seeds))})"

    def sentence(self) -> str:
        """The part as one line: claim, axis, word and why."""
        return f"{self.claim} ({self.axis}): {self.outcome}. {self.figure()}; {self.why}"


def _clean(values, name) -> dict:
    if isinstance(values, dict):
        out = {int(k): float(v) for k, v in values.items()}
    else:
        out = {i: float(v) for i, v in enumerate(values)}
    if not out:
        raise ValueError(f"{name}: expected at least one per-seed value, got none")
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name}: expected finite per-seed values, got {out[bad[0]]} for seed {bad[0]}")
    return out


def compare(claim: str, axis: str, a: str, a_values, b: str, b_values, *, better: str = "lower",
            paired: bool = True, z: float = Z, fmt: str = ".3f") -> Comparison:
    """Decide "arm ``a`` beats arm ``b`` on ``axis``" from per-seed values (``{seed: value}`` or a sequence).

    ``better``: ``"lower"`` (errors, losses, times) or ``"higher"`` (recalls, accuracies). ``paired``: take
    differences seed by seed (only seeds both arms have); else compare the two means. See the module docstring
    for the rule; the returned :class:`Comparison` carries the word, the numbers and a one-line why.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better: expected 'lower' or 'higher', got {better!r}")
    av, bv = _clean(a_values, "a_values"), _clean(b_values, "b_values")
    sign = 1.0 if better == "lower" else -1.0  # positive d favours a
    c = Comparison(claim, axis, a, b, {a: av, b: bv}, better, UNDECIDED, paired=paired, fmt=fmt)
    if paired:
        seeds = sorted(set(av) & set(bv))
        if not seeds:
            raise ValueError(f"a_values, b_values: expected seeds in common to pair, got {sorted(av)} and {sorted(bv)}")
        d = np.array([sign * (bv[s] - av[s]) for s in seeds])
        c.n = len(d)
        c.diff = float(d.mean())
        c.se = float(d.std(ddof=1) / math.sqrt(c.n)) if c.n > 1 else math.nan
        c.agree, c.against = int((d > 0).sum()), int((d < 0).sum())
    else:
        xa, xb = np.array(list(av.values())), np.array(list(bv.values()))
        c.n = min(xa.size, xb.size)
        c.diff = float(sign * (xb.mean() - xa.mean()))
        c.se = (float(math.sqrt(xa.var(ddof=1) / xa.size + xb.var(ddof=1) / xb.size))
                if xa.size > 1 and xb.size > 1 else math.nan)
        # sign agreement without pairs: each value against the other arm's mean
        fa = sign * (xb.mean() - xa)
        fb = sign * (xb - xa.mean())
        c.agree = min(int((fa > 0).sum()), int((fb > 0).sum()))
        c.against = min(int((fa < 0).sum()), int((fb < 0).sum()))
    need = max(c.n - 1, 1)
    noise = f"difference {c.diff:+{fmt}} (favouring the claim when positive), SE {c.se:{fmt}}, {c.agree} of {c.n} " \
            f"{'seeds' if paired else 'values'} favour it"
    if c.n < 2 or not math.isfinite(c.se):
        c.outcome, c.why = UNDECIDED, f"{c.n} seed: no estimate of the seed noise"
    elif c.diff > z * c.se and c.agree >= need:
        c.outcome, c.why = HELD, noise + f" (> {z:g} SE)"
    elif c.diff < -z * c.se and c.against >= need:
        c.outcome, c.why = NOT_HELD, noise + f" (< -{z:g} SE)"
    else:
        c.outcome, c.why = UNDECIDED, noise + f" (not beyond {z:g} SE with n-1 seeds agreeing)"
    return c


def learned(runs, key: str, *, better: str = "lower", margin: float) -> tuple:
    """``(ok, why)``: did an arm learn? Its curve of eval metric ``key`` averaged over the seeds must get at
    least ``margin`` better than its first evaluation at some later evaluation (the guard behind "not tested")."""
    curves = [[e[key] for e in r.eval if key in e] for r in runs]
    m = min(len(c) for c in curves)
    if m < 2:
        return False, f"fewer than two evaluations of {key}"
    mean = np.mean([c[:m] for c in curves], axis=0)
    gain = (mean[0] - mean[1:].min()) if better == "lower" else (mean[1:].max() - mean[0])
    ok = bool(gain >= margin)
    return ok, (f"{key} improved by {gain:.3g} on its first evaluation ({mean[0]:.3g})"
                + ("" if ok else f", less than the margin {margin:g}: it did not learn"))


def not_tested(claim: str, axis: str, a: str, b: str, values: dict, why: str, fmt: str = ".3f") -> Comparison:
    """A part that cannot be decided because an arm did not learn."""
    return Comparison(claim, axis, a, b, values, "lower", NOT_TESTED, why=why, fmt=fmt)


def combine(parts) -> str:
    """The word of a claim made of ``parts`` (Comparisons or words): did not hold if any part did not; not
    tested if any part was not tested; held if every part held; else undecided."""
    words = [p.outcome if isinstance(p, Comparison) else p for p in parts]
    if not words:
        return UNDECIDED
    if NOT_HELD in words:
        return NOT_HELD
    if NOT_TESTED in words:
        return NOT_TESTED
    if all(w == HELD for w in words):
        return HELD
    return UNDECIDED


def held_of(word: str):
    """The runner's ``held``: True, False, or None (undecided or not tested)."""
    return {HELD: True, NOT_HELD: False}.get(word)


def word_of(verdict) -> str:
    """The verdict word of a :class:`Verdict` (or of an older one that only has ``held``)."""
    w = getattr(verdict, "outcome", "")
    if w:
        return w
    return {True: HELD, False: NOT_HELD, None: UNDECIDED}[verdict.held]


@dataclass
class Verdict(_RunnerVerdict):
    """A :class:`lnedu.experiments.runner.Verdict` with the rule's word, its parts and the axis it was
    decided on (``held`` stays True/False/None for older readers)."""

    outcome: str = ""  # one of WORDS
    axis: str = ""  # what the word was decided on ("final test error; updates to target")
    parts: list = field(default_factory=list)  # Comparisons
    arms: dict = field(default_factory=dict)  # {label: {seed: value}}: the per-seed figures behind it
    why: str = ""

    @classmethod
    def of(cls, parts, our_figure: str, note: str, *, axis: str = "", arms=None, why: str = "") -> Verdict:
        word = combine(parts)
        if not why:
            why = "; ".join(f"{p.claim}: {p.outcome}" for p in parts if isinstance(p, Comparison))
        return cls(held_of(word), our_figure, note, outcome=word, axis=axis, parts=list(parts),
                   arms=dict(arms or {}), why=why)

    def to_json(self) -> dict:
        """What a summary stores: the word, the axis, the why and each part's per-seed values."""
        return {"verdict": self.outcome or word_of(self), "axis": self.axis, "why": self.why,
                "parts": [{"claim": p.claim, "axis": p.axis, "a": p.a, "b": p.b, "better": p.better,
                           "outcome": p.outcome, "diff": _num(p.diff), "se": _num(p.se), "n": p.n,
                           "why": p.why, "values": {k: {str(s): x for s, x in v.items()} for k, v in p.values.items()}}
                          for p in self.parts if isinstance(p, Comparison)]}


def _num(x):
    return None if x is None or not math.isfinite(x) else float(x)


def describe_parts(verdict, paper: str = "") -> str:
    """Markdown: the verdict word with its axis, then one bullet per part with the figures and per-seed values,
    then the paper's own numbers (``paper``, with its citation) and the scale note."""
    lines = [f"**Verdict: {word_of(verdict)}**" + (f" (on {verdict.axis})" if getattr(verdict, "axis", "") else "")
             + "."]
    for p in getattr(verdict, "parts", []):
        if isinstance(p, Comparison):
            lines.append(f"- *{p.claim}* ({p.axis}): **{p.outcome}**. {p.figure()}. Per seed: {p.seeds_line()}. "
                         f"{p.why}.")
    if paper:
        lines.append(f"\nThe paper's numbers: {paper}.")
    if verdict.note:
        lines.append(f"\nScale: {verdict.note}.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# "faster": one rule


CUMULATIVE_TIME = "wall_seconds"  # the runner's training wall clock so far, on every record
TIME_KEYS = ("wall", "seconds")  # else: per-update wall seconds in each train record (first one present)


def _time_at(run, steps) -> np.ndarray | None:
    """Training seconds (wall clock, evaluations excluded) at each of ``steps``: the runner's cumulative
    ``wall_seconds`` on the eval records, else the sum of the train records' per-update time; None if neither."""
    ev = {e["step"]: e[CUMULATIVE_TIME] for e in run.eval if CUMULATIVE_TIME in e}
    if ev and all(s in ev for s in steps):
        return np.array([ev[s] for s in steps], dtype=float)
    key = next((k for k in TIME_KEYS if run.train and all(k in r for r in run.train)), None)
    if key is None:
        return None
    st = np.array([r["step"] for r in run.train])
    cum = np.cumsum([r[key] for r in run.train])
    idx = np.searchsorted(st, steps, side="right") - 1
    return np.where(idx >= 0, cum[np.clip(idx, 0, None)], 0.0)


@dataclass
class Speed:
    """Updates (and seconds) of each arm's seeds to first reach ``target`` on ``key``; ``None``: censored."""

    key: str
    better: str
    target: float
    updates: dict  # {arm: {seed: first eval step at the target, or None}}
    seconds: dict | None  # same in training seconds, or None when the records carry no time
    last: dict  # {arm: {seed: (last eval step, seconds at it or None)}}
    fraction: float

    def censored(self, arm) -> list:
        return [s for s, t in self.updates[arm].items() if t is None]

    def filled(self, arm, axis="updates") -> dict:
        """Per-seed times with a censored seed counted as its run's length (a lower bound)."""
        src = self.updates if axis == "updates" else self.seconds
        k = 0 if axis == "updates" else 1
        return {s: (t if t is not None else self.last[arm][s][k]) for s, t in src[arm].items()}

    def target_text(self) -> str:
        return (f"{self.key} {'≤' if self.better == 'lower' else '≥'} {self.target:.4g} (the worst arm's best, moved "
                f"back by {1 - self.fraction:.0%} of the smallest improvement)")


def _curve(run, key):
    ev = [e for e in run.eval if key in e]
    return np.array([e["step"] for e in ev], dtype=float), np.array([e[key] for e in ev], dtype=float)


def speed(results, arms, key: str, *, better: str = "lower", fraction: float = 0.9) -> Speed:
    """Each arm's updates and seconds to first reach one target on eval metric ``key`` (see the module
    docstring): every arm's mean curve reaches it; a seed that does not is censored (``None``)."""
    sign = 1.0 if better == "lower" else -1.0
    firsts, bests = {}, {}
    for a in arms:
        curves = [_curve(r, key)[1] for r in results[a]]
        m = min(len(c) for c in curves)
        mean = sign * np.mean([c[:m] for c in curves], axis=0)  # lower is better in this frame
        firsts[a], bests[a] = float(mean[0]), float(mean.min())
    worst_best = max(bests.values())
    smallest = min(firsts[a] - bests[a] for a in arms)
    target = worst_best + (1 - fraction) * max(smallest, 0.0)
    updates, seconds, last = {}, {}, {}
    has_time = True
    for a in arms:
        updates[a], seconds[a], last[a] = {}, {}, {}
        for r in results[a]:
            steps, vals = _curve(r, key)
            hit = np.flatnonzero(sign * vals <= target)
            tm = _time_at(r, steps)
            has_time = has_time and tm is not None
            updates[a][int(r.seed)] = float(steps[hit[0]]) if hit.size else None
            seconds[a][int(r.seed)] = (float(tm[hit[0]]) if hit.size else None) if tm is not None else None
            last[a][int(r.seed)] = (float(steps[-1]), float(tm[-1]) if tm is not None else None)
    return Speed(key, better, sign * target, updates, seconds if has_time else None, last, fraction)


def speed_parts(sp: Speed, fast: str, slow: str, claim: str, *, fmt: str = ".0f") -> list:
    """Comparisons "``fast`` reaches the target in fewer updates (and seconds) than ``slow``", with censoring:
    held needs ``fast`` uncensored on every seed, did not hold needs ``slow`` uncensored.

    A time to the target is only known to the evaluation grid: a seed on which both arms first reach the target
    at the same evaluation step is a tie on both axes (the grid cannot order them; its seconds would only compare
    the cost of the updates before that evaluation), whatever the seconds logged at that step."""
    out = []
    axes = [("updates", "updates to the target")]
    if sp.seconds is not None:
        axes.append(("seconds", "training seconds to the target"))
    tied = [s for s, t in sp.updates[fast].items() if t is not None and sp.updates[slow].get(s) == t]
    for axis, label in axes:
        a_vals, b_vals = sp.filled(fast, axis), sp.filled(slow, axis)
        c = compare(claim, label, fast, {s: (b_vals[s] if s in tied and s in b_vals else v) for s, v in a_vals.items()},
                    slow, b_vals, better="lower", fmt=fmt if axis == "updates" else ".2f")
        c.values = {fast: a_vals, slow: b_vals}
        if tied:
            c.why += (f"; seed{'s' if len(tied) > 1 else ''} {', '.join(map(str, tied))}: both first at the same "
                      "evaluation, a tie (the evaluation grid cannot order them)")
        cf, cs = sp.censored(fast), sp.censored(slow)
        if cf or cs:
            c.why += "; censored (never reached the target; counted as the run's length): " + ", ".join(
                f"{arm} seed{'s' if len(ss) > 1 else ''} {', '.join(map(str, ss))}"
                for arm, ss in ((fast, cf), (slow, cs)) if ss)
        if c.outcome == HELD and cf:
            c.outcome, c.why = UNDECIDED, c.why + "; held would rest on a censored time of " + fast
        if c.outcome == NOT_HELD and cs:
            c.outcome, c.why = UNDECIDED, c.why + "; did not hold would rest on a censored time of " + slow
        out.append(c)
    if sp.seconds is None:
        out[0].why += "; updates only (these runs log no time per update)"
    return out


# ---------------------------------------------------------------------------------------------------------
# seeds


def seeds_for(exp, preset: str) -> tuple:
    """The seeds a run of ``exp`` at ``preset`` uses by default: the module's ``SEEDS[preset]`` when it has one
    (more seeds where runs are cheap, so the noise can be resolved), else (0, 1, 2)."""
    return tuple(getattr(exp, "SEEDS", {}).get(preset, DEFAULT_SEEDS))
