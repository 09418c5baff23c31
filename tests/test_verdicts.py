"""The one decision rule (lnedu.experiments.verdicts) on made-up per-seed numbers, and every experiment's
verdict() on made-up per-seed runs fixing each branch: held, did not hold, undecided, not tested."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lnedu.experiments import (
    attentive_reader,
    charlm,
    convnet,
    draw,
    handwriting,
    mnist_mlp,
    order_embeddings,
    skip_thoughts,
    text8_grid,
)
from lnedu.experiments import verdicts as V
from lnedu.experiments.runner import RunResult

SEEDS = (0, 1, 2)

# ---- the rule ------------------------------------------------------------------------------------------------


def test_clear_gap_holds_and_the_opposite_does_not():
    a, b = {0: 1.0, 1: 1.2, 2: 1.1}, {0: 2.0, 1: 2.3, 2: 2.1}
    c = V.compare("a below b", "error", "a", a, "b", b)
    assert c.outcome == V.HELD and c.n == 3 and c.agree == 3
    assert c.diff == pytest.approx(np.mean([1.0, 1.1, 1.0]))
    assert c.se == pytest.approx(np.std([1.0, 1.1, 1.0], ddof=1) / math.sqrt(3))
    assert V.compare("b below a", "error", "b", b, "a", a).outcome == V.NOT_HELD
    # "higher is better" flips the sign
    assert V.compare("a above b", "recall", "a", a, "b", b, better="higher").outcome == V.NOT_HELD
    assert V.compare("b above a", "recall", "b", b, "a", a, better="higher").outcome == V.HELD


def test_overlapping_arms_are_undecided():
    a, b = {0: 1.0, 1: 2.0, 2: 1.4}, {0: 1.3, 1: 1.6, 2: 1.5}
    c = V.compare("a below b", "error", "a", a, "b", b)
    assert c.outcome == V.UNDECIDED and "not beyond 2 SE" in c.why


def test_two_standard_errors_is_the_line():
    # differences 1, 1 + h, 1 - h: mean 1, SE = h / sqrt(3); held iff 1 > 2 h / sqrt(3)
    for h, word in ((0.8, V.HELD), (0.9, V.UNDECIDED)):
        a = {0: 0.0, 1: 0.0, 2: 0.0}
        b = {0: 1.0, 1: 1.0 + h, 2: 1.0 - h}
        assert V.compare("a below b", "x", "a", a, "b", b).outcome == word, h


def test_n_minus_one_seeds_must_agree():
    # a big mean and a small SE, but only 3 of 5 seeds favour the claim: undecided; 4 of 5: held
    a = {s: 0.0 for s in range(5)}
    three = {0: 10.0, 1: 10.0, 2: 10.0, 3: -0.1, 4: -0.1}
    four = {0: 10.0, 1: 10.0, 2: 10.0, 3: 10.0, 4: -0.1}
    c3, c4 = (V.compare("a below b", "x", "a", a, "b", b) for b in (three, four))
    assert c3.diff > 2 * c3.se and c3.outcome == V.UNDECIDED
    assert c4.outcome == V.HELD


def test_one_seed_is_always_undecided():
    c = V.compare("a below b", "x", "a", {0: 1.0}, "b", {0: 5.0})
    assert c.outcome == V.UNDECIDED and "no estimate" in c.why


def test_pairs_only_common_seeds_and_refuses_bad_input():
    c = V.compare("a below b", "x", "a", {0: 1.0, 1: 1.1, 7: 9.0}, "b", {0: 2.0, 1: 2.2, 3: 0.0})
    assert c.n == 2
    with pytest.raises(ValueError, match="b_values: expected finite"):
        V.compare("c", "x", "a", {0: 1.0}, "b", {0: float("nan")})
    with pytest.raises(ValueError, match="expected seeds in common"):
        V.compare("c", "x", "a", {0: 1.0}, "b", {1: 1.0})
    with pytest.raises(ValueError, match="better: expected"):
        V.compare("c", "x", "a", {0: 1.0}, "b", {0: 1.0}, better="smaller")


def test_unpaired_comparison_uses_both_arms_spread():
    a, b = [1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9]
    c = V.compare("a below b", "x", "a", a, "b", b, paired=False)
    assert c.outcome == V.HELD and not c.paired
    assert c.se == pytest.approx(math.sqrt(np.var(a, ddof=1) / 4 + np.var(b, ddof=1) / 3))
    assert V.compare("a below b", "x", "a", [1.0, 3.0, 2.0], "b", [1.5, 2.5, 2.0], paired=False).outcome == V.UNDECIDED


def test_combine_precedence():
    assert V.combine([V.HELD, V.HELD]) == V.HELD
    assert V.combine([V.HELD, V.UNDECIDED]) == V.UNDECIDED
    assert V.combine([V.NOT_TESTED, V.HELD]) == V.NOT_TESTED
    assert V.combine([V.NOT_TESTED, V.NOT_HELD, V.HELD]) == V.NOT_HELD
    assert V.combine([]) == V.UNDECIDED
    assert [V.held_of(w) for w in V.WORDS] == [True, False, None, None]


def _run(variant, seed, steps=None, train=None, **curves):
    n = len(next(iter(curves.values())))
    steps = np.arange(n) * 10 if steps is None else steps
    ev = [{"step": int(s), "split": "eval", **{k: float(v[i]) for k, v in curves.items()}} for i, s in enumerate(steps)]
    return RunResult(variant, seed, train or [], ev)


def _decay(start, end, tau, n=21):
    t = np.arange(n)
    return end + (start - end) * np.exp(-t / tau)


def test_a_flat_arm_did_not_learn():
    flat = [_run("x", s, err=np.full(21, 0.68) + 0.001 * s) for s in SEEDS]
    ok, why = V.learned(flat, "err", margin=0.02)
    assert not ok and "did not learn" in why
    ok, _ = V.learned([_run("x", s, err=_decay(0.68, 0.3, 3)) for s in SEEDS], "err", margin=0.02)
    assert ok
    ok, _ = V.learned([_run("x", s, acc=_decay(10, 40, 3)) for s in SEEDS], "acc", better="higher", margin=5)
    assert ok


def test_speed_rule_target_censoring_and_seconds():
    fast = [_run("fast", s, loss=_decay(3.0, 1.0, 2 + 0.1 * s)) for s in SEEDS]
    slow = [_run("slow", s, loss=_decay(3.0, 1.2, 6 + 0.1 * s)) for s in SEEDS]
    sp = V.speed({"fast": fast, "slow": slow}, ("fast", "slow"), "loss")
    # the worst arm's best (slow's mean curve minimum), moved back by 10% of the smallest improvement
    best_slow = np.mean([r.series("loss")[1].min() for r in slow])
    assert sp.target == pytest.approx(best_slow + 0.1 * (3.0 - best_slow))
    assert sp.seconds is None and all(t is not None for t in sp.updates["fast"].values())
    parts = V.speed_parts(sp, "fast", "slow", "fast is faster")
    assert [p.outcome for p in parts] == [V.HELD] and "updates only" in parts[0].why
    # a seed of the claimed-faster arm that never reaches the target: censored, so "held" is not called
    stuck = fast[:2] + [_run("fast", 2, loss=np.full(21, 3.0))]
    sp2 = V.speed({"fast": stuck, "slow": slow}, ("fast", "slow"), "loss")
    assert sp2.censored("fast") == [2] and sp2.filled("fast")[2] == 200
    # with train records carrying per-update seconds, the seconds axis is decided too
    def timed(runs, per):
        return [RunResult(r.variant, r.seed, [{"step": i, "split": "train", "wall": per} for i in range(1, 201)],
                          r.eval) for r in runs]
    sp3 = V.speed({"fast": timed(fast, 3.0), "slow": timed(slow, 0.1)}, ("fast", "slow"), "loss")
    up, sec = V.speed_parts(sp3, "fast", "slow", "fast is faster")
    assert up.outcome == V.HELD and sec.outcome == V.NOT_HELD  # fewer updates, but each costs 30x
    assert sec.values["fast"][0] == pytest.approx(3.0 * sp3.updates["fast"][0])


def test_speed_reads_the_runners_cumulative_wall_clock():
    def clocked(variant, seed, per):
        r = _run(variant, seed, loss=_decay(3.0, 1.0, 2 if variant == "fast" else 6))
        for e in r.eval:
            e["wall_seconds"] = per * e["step"]
        return r
    res = {"fast": [clocked("fast", s, 5.0) for s in SEEDS], "slow": [clocked("slow", s, 1.0) for s in SEEDS]}
    sp = V.speed(res, ("fast", "slow"), "loss")
    assert sp.seconds["fast"][0] == 5.0 * sp.updates["fast"][0]
    up, sec = V.speed_parts(sp, "fast", "slow", "fast is faster")
    assert (up.outcome, sec.outcome) == (V.HELD, V.NOT_HELD) and sec.axis == "training seconds to the target"


def test_reaching_the_target_at_the_same_evaluation_is_a_tie_on_both_axes():
    # both arms first under the target at the first evaluation after step 0; LN's updates cost twice as much
    def clocked(variant, seed, per):
        r = _run(variant, seed, loss=np.r_[3.0, np.full(4, 1.0 + 0.01 * seed)])
        for e in r.eval:
            e["wall_seconds"] = per * e["step"]
        return r
    res = {"ln": [clocked("ln", s, 2.0) for s in SEEDS], "bn": [clocked("bn", s, 1.0) for s in SEEDS]}
    up, sec = V.speed_parts(V.speed(res, ("ln", "bn"), "loss"), "ln", "bn", "LN faster")
    assert up.outcome == sec.outcome == V.UNDECIDED and "a tie" in sec.why
    assert sec.values["ln"] == {0: 20.0, 1: 20.0, 2: 20.0} and sec.values["bn"] == {0: 10.0, 1: 10.0, 2: 10.0}


def test_censored_slow_arm_cannot_make_did_not_hold():
    fast = [_run("a", s, loss=np.r_[_decay(3.0, 1.0, 8)[:20], 1.0]) for s in SEEDS]
    slow = [_run("b", s, loss=_decay(3.0, 1.0, 1)) for s in SEEDS]
    slow[0] = _run("b", 0, loss=np.full(21, 3.0))
    sp = V.speed({"a": fast, "b": slow}, ("a", "b"), "loss")
    parts = V.speed_parts(sp, "a", "b", "a faster")
    assert parts[0].outcome in (V.UNDECIDED,) and "censored" in parts[0].why


def test_describe_parts_prints_word_axis_and_seeds():
    c = V.compare("a below b", "error", "a", {0: 1.0, 1: 1.2, 2: 1.1}, "b", {0: 2.0, 1: 2.3, 2: 2.1})
    v = V.Verdict.of([c], "fig", "scale note", axis="final error")
    text = V.describe_parts(v)
    assert "**Verdict: held** (on final error)" in text and "a: 1.000, 1.200, 1.100" in text
    assert "The paper's numbers: 82.1 nats (§6.4)." in V.describe_parts(v, paper="82.1 nats (§6.4)")
    assert v.held is True and V.word_of(v) == V.HELD and v.to_json()["parts"][0]["values"]["b"]["1"] == 2.3


# ---- every experiment's verdict: one made-up scenario per branch ---------------------------------------------

OFFSETS = {"held": None, "undecided": (0.3, -0.3, 0.1)}  # per-seed offsets that make a gap noise-sized


def _arm(variant, keys, train=None):
    """Runs of one arm over SEEDS; ``keys``: {metric: (start, [end per seed], [tau per seed])}."""
    out = []
    for s in SEEDS:
        curves = {k: _decay(start, ends[s], taus[s]) for k, (start, ends, taus) in keys.items()}
        out.append(_run(variant, s, train=train(s) if train else None, **curves))
    return out


def _flat(variant, keys, train=None):
    return [_run(variant, s, train=train(s) if train else None, **{k: np.full(21, v + 1e-4 * s)
                                                                   for k, v in keys.items()}) for s in SEEDS]


def _per_seed(x, jitter=(0.0, 0.01, -0.01)):
    return [x + j for j in jitter]


FAST, SLOW = (1.5, 1.6, 1.4), (6.0, 6.5, 5.5)
SAME = (3.0, 3.0, 3.0)


def _mnist(kind):
    def err(end, tau):
        return {"test_error": (0.9, end, tau)}
    good_ln, bad_bn = _per_seed(0.02, (0, 0.001, -0.001)), _per_seed(0.06, (0, 0.002, -0.001))
    if kind == "held":
        ln4, bn4, ln128, bn128 = err(good_ln, FAST), err(bad_bn, SLOW), err(_per_seed(0.025), FAST), \
            err(_per_seed(0.03), SLOW)
    elif kind == "did not hold":
        ln4, bn4, ln128, bn128 = err(bad_bn, SLOW), err(good_ln, FAST), err(_per_seed(0.03), SLOW), \
            err(_per_seed(0.025), FAST)
    else:
        ln4, bn4, ln128, bn128 = (err([0.03 + o / 100 for o in (0.5, -0.5, 0.2)], SAME), err(_per_seed(0.03), SAME),
                                  err(_per_seed(0.03), SAME), err(_per_seed(0.03), SAME))
    res = {"ln-bs4": _arm("ln-bs4", ln4), "bn-bs4": _arm("bn-bs4", bn4), "ln-bs128": _arm("ln-bs128", ln128),
           "bn-bs128": _arm("bn-bs128", bn128)}
    if kind == "not tested":
        res["bn-bs4"] = _flat("bn-bs4", {"test_error": 0.9})
    return res, mnist_mlp


def _convnet(kind):
    def arm(v, tau, err):
        return _arm(v, {"train_nll": (2.3, _per_seed(0.1), tau), "test_error": (0.9, err, SAME)})
    if kind == "held":
        res = {"baseline": arm("baseline", SLOW, _per_seed(0.1)), "ln": arm("ln", FAST, _per_seed(0.08)),
               "bn": arm("bn", FAST, _per_seed(0.05, (0, 0.002, -0.002)))}
    elif kind == "did not hold":
        res = {"baseline": arm("baseline", FAST, _per_seed(0.1)), "ln": arm("ln", SLOW, _per_seed(0.05)),
               "bn": arm("bn", FAST, _per_seed(0.09))}
    else:
        res = {"baseline": arm("baseline", SAME, _per_seed(0.1)), "ln": arm("ln", SAME, _per_seed(0.08)),
               "bn": arm("bn", SAME, [0.09, 0.07, 0.085])}
    if kind == "not tested":
        res["bn"] = _flat("bn", {"train_nll": 2.3, "test_error": 0.9})
    return res, convnet


def _draw(kind):
    def arm(v, tau, ends):
        return _arm(v, {"test_bound": (60.0, ends, tau)})
    base = [30.0, 30.05, 29.98]
    if kind == "held":
        res = {"baseline": arm("baseline", SLOW, base), "ln": arm("ln", FAST, [29.9, 30.0, 29.95])}
    elif kind == "did not hold":
        res = {"baseline": arm("baseline", FAST, base), "ln": arm("ln", SLOW, [33.0, 33.2, 33.1])}
    else:
        res = {"baseline": arm("baseline", SAME, base), "ln": arm("ln", SAME, [b + o for b, o in zip(base, (0.3, -0.3,
                                                                                                         0.5))])}
    if kind == "not tested":
        res["baseline"] = _flat("baseline", {"test_bound": 60.0})
    return res, draw


def _handwriting(kind):
    def arm(v, tau, test):
        return _arm(v, {"train_nll": (3.0, _per_seed(-0.5), tau), "test_nll": (3.0, test, SAME)})
    base = [-0.5, -0.51, -0.49]
    if kind == "held":
        res = {"baseline": arm("baseline", SLOW, base), "ln": arm("ln", FAST, [-0.52, -0.52, -0.5])}
    elif kind == "did not hold":
        res = {"baseline": arm("baseline", FAST, base), "ln": arm("ln", SLOW, [-0.3, -0.31, -0.29])}
    else:
        res = {"baseline": arm("baseline", SAME, base), "ln": arm("ln", SAME, [-0.45, -0.55, -0.4])}
    if kind == "not tested":
        res["ln"] = _flat("ln", {"train_nll": 3.0, "test_nll": 3.0})
    return res, handwriting


def _charlm(kind):
    def timed(per):
        return lambda s: [{"step": i, "split": "train", "seconds": per[s], "cpu_seconds": per[s]}
                          for i in range(1, 201)]

    def arm(v, bpc, per):
        runs = _arm(v, {"valid_bpc": (6.0, bpc, SAME)}, train=timed(per))
        for r in runs:
            r.eval[-1]["updates_per_epoch"] = 100
        return runs
    if kind == "held":
        np_, other, bpc_np, bpc_b = (1.0, 1.02, 0.98), (2.0, 2.1, 1.9), _per_seed(2.5), _per_seed(2.7)
    elif kind == "did not hold":
        np_, other, bpc_np, bpc_b = (3.0, 3.1, 2.9), (2.0, 2.1, 1.9), _per_seed(2.9), _per_seed(2.7)
    else:
        np_, other, bpc_np, bpc_b = (1.5, 2.5, 2.0), (2.0, 2.1, 1.9), [2.6, 2.8, 2.7], _per_seed(2.7)
    res = {"baseline": arm("baseline", bpc_b, (1, 1, 1)), "bn": arm("bn", _per_seed(2.6), other),
           "ln": arm("ln", _per_seed(2.6), other), "normprop": arm("normprop", bpc_np, np_)}
    if kind == "not tested":
        res["bn"] = _flat("bn", {"valid_bpc": 6.0}, train=timed(other))
        for r in res["bn"]:
            r.eval[-1]["updates_per_epoch"] = 100
    return res, charlm


def _text8(kind):
    cell = {"lstm": 0.2, "gru": 0.0, "mgu": 0.3}
    ln_effect = {"held": (-0.2,) * 3, "did not hold": (0.2,) * 3, "undecided": (-0.2, 0.2, 0.05),
                 "not tested": (-0.2,) * 3}[kind]
    init = {"xavier": 0.0, "variance_scaling": 0.01, "orthogonal": -0.01}
    res = {}
    for v in text8_grid.VARIANTS:
        c, ln, i = text8_grid.parse_variant(v)
        ends = [2.5 + cell[c] + init[i] + (ln_effect[s] if ln else 0.0) + 0.001 * s for s in SEEDS]
        res[v] = _arm(v, {"valid_bpc": (6.0, ends, SAME)})
    if kind == "not tested":
        res["gru-ln-xavier"] = _flat("gru-ln-xavier", {"valid_bpc": 6.0})
    return res, text8_grid


def _order_embeddings(kind):
    def arm(v, tau, test):
        return _arm(v, {"val_img_rsum": (10.0, _per_seed(150.0), tau), "test_img_rsum": (10.0, test, SAME)})
    if kind == "held":
        res = {"gru": arm("gru", SLOW, _per_seed(150.0)), "ln-gru": arm("ln-gru", FAST, _per_seed(155.0))}
    elif kind == "did not hold":
        res = {"gru": arm("gru", FAST, _per_seed(155.0)), "ln-gru": arm("ln-gru", SLOW, _per_seed(150.0))}
    else:
        res = {"gru": arm("gru", SAME, _per_seed(150.0)), "ln-gru": arm("ln-gru", SAME, [145.0, 155.0, 151.0])}
    if kind == "not tested":
        res["gru"] = _flat("gru", {"val_img_rsum": 10.0, "test_img_rsum": 10.0})
    return res, order_embeddings


def _skip_thoughts(kind):
    def arm(v, tau, acc):
        return _arm(v, {"train_loss": (10.0, _per_seed(7.0), tau), "probe_acc": (0.4, acc, SAME)})
    if kind == "held":
        res = {"gru": arm("gru", SLOW, _per_seed(0.45)), "ln-gru": arm("ln-gru", FAST, _per_seed(0.46))}
    elif kind == "did not hold":
        res = {"gru": arm("gru", FAST, _per_seed(0.46)), "ln-gru": arm("ln-gru", SLOW, _per_seed(0.40))}
    else:
        res = {"gru": arm("gru", SAME, _per_seed(0.45)), "ln-gru": arm("ln-gru", SAME, [0.41, 0.47, 0.44])}
    if kind == "not tested":
        res["gru"] = _flat("gru", {"train_loss": 10.0, "probe_acc": 0.4})
    return res, skip_thoughts


def _attentive_reader(kind):
    def arm(v, tau, ends):
        return _arm(v, {"valid_error": (0.68, ends, tau)})
    others = ("lstm", "bn-lstm", "bn-everywhere", "ln-lstm-g0.1")
    if kind == "held":
        res = {v: arm(v, SLOW, _per_seed(0.4)) for v in others} | {"ln-lstm": arm("ln-lstm", FAST, _per_seed(0.2))}
    elif kind == "did not hold":
        res = {v: arm(v, FAST, _per_seed(0.2)) for v in others} | {"ln-lstm": arm("ln-lstm", SLOW, _per_seed(0.4))}
    else:
        res = {v: arm(v, SAME, _per_seed(0.3)) for v in others} | {"ln-lstm": arm("ln-lstm", SAME,
                                                                                   [0.25, 0.35, 0.31])}
    if kind == "not tested":
        res["bn-lstm"] = _flat("bn-lstm", {"valid_error": 0.68})
    return res, attentive_reader


SCENARIOS = [_mnist, _convnet, _draw, _handwriting, _charlm, _text8, _order_embeddings, _skip_thoughts,
             _attentive_reader]


@pytest.mark.parametrize("make", SCENARIOS, ids=lambda f: f.__name__[1:])
@pytest.mark.parametrize("kind", ["held", "did not hold", "undecided", "not tested"])
def test_every_verdict_takes_each_branch(make, kind):
    results, exp = make(kind)
    v = exp.verdict(results)
    want = {"undecided": V.UNDECIDED}.get(kind, kind)
    assert V.word_of(v) == want, (exp.NAME, kind, [(p.claim, p.outcome, p.why) for p in v.parts])
    assert v.held is {"held": True, "did not hold": False}.get(kind)
    assert v.parts and v.axis and "±" in v.our_figure
    text = exp.describe(results)
    assert f"**Verdict: {want}**" in text


@pytest.mark.parametrize("exp", [mnist_mlp, convnet, draw, handwriting, charlm, text8_grid, order_embeddings,
                                 skip_thoughts, attentive_reader], ids=lambda m: m.NAME)
def test_every_experiment_states_seeds_and_paper_numbers(exp):
    assert set(exp.SEEDS) <= set(exp.PRESETS) and all(len(V.seeds_for(exp, p)) >= 3 for p in exp.PRESETS)
    assert V.seeds_for(exp, "small") == exp.SEEDS["small"]
    assert isinstance(exp.PAPER_NUMBERS, str) and exp.PAPER_NUMBERS
    with_missing = exp.verdict({})
    assert with_missing.held is None and with_missing.outcome == V.UNDECIDED
    assert with_missing.our_figure.startswith("needs ") and with_missing.note == ""


def test_mnist_figure_names_every_arm_as_mean_sd_in_percent():
    results, exp = _mnist("held")
    results["baseline-bs4"] = _arm("baseline-bs4", {"test_error": (0.9, [0.05, 0.05, 0.05], SLOW)})
    v = exp.verdict(results)
    assert v.our_figure == ("final test error: bs128: bn 6.1% ± 1.8% (3 seeds), ln 2.5% ± 1.0% (3 seeds); bs4: "
                            "baseline 8.1% ± 0.8% (3 seeds), bn 9.1% ± 1.0% (3 seeds), ln 2.0% ± 0.1% (3 seeds)")
    assert v.note and v.arms["ln-bs4"][1] == pytest.approx(100 * results["ln-bs4"][1].eval[-1]["test_error"])


@pytest.mark.parametrize("make", SCENARIOS, ids=lambda f: f.__name__[1:])
def test_describe_cites_the_papers_numbers(make):
    results, exp = make("held")
    assert f"The paper's numbers: {exp.PAPER_NUMBERS}." in exp.describe(results)


def test_mnist_robustness_is_the_rise_from_batch_128_to_4():
    # LN equally poor at both sizes (rise 0), BN good at 128 and worse at 4 (rise 2 points): LN is the robust one,
    # though its errors are higher
    def arm(v, end):
        return _arm(v, {"test_error": (0.9, _per_seed(end, (0, 0.0005, -0.0005)), SAME)})
    results = {"ln-bs128": arm("ln-bs128", 0.05), "ln-bs4": arm("ln-bs4", 0.05), "bn-bs128": arm("bn-bs128", 0.01),
               "bn-bs4": arm("bn-bs4", 0.03)}
    v = mnist_mlp.verdict(results)
    rise = next(p for p in v.parts if p.axis == "rise in final test error (points)")
    assert rise.outcome == V.HELD and rise.values["ln"][0] == pytest.approx(0.0, abs=0.01)
    assert rise.values["bn"][0] == pytest.approx(2.0, abs=0.01)
    assert [(p.claim.split(" (")[0], p.axis, p.a, p.b) for p in v.parts] == [
        ("LN below BN at batch 4", "final test error (%)", "ln-bs4", "bn-bs4"),
        ("LN's error rises less than BN's from batch 128 to 4", "rise in final test error (points)", "ln", "bn"),
        ("LN reaches the test-error target before BN at batch 128", "updates to the target", "ln-bs128", "bn-bs128"),
        ("LN reaches the test-error target before BN at batch 4", "updates to the target", "ln-bs4", "bn-bs4")]
    assert v.axis == "final test error; updates to a test-error target"
    last = results["ln-bs128"][0].eval[-1]["step"]  # the note states the run's length, not "small" for every preset
    assert v.note == (f"{last:,} updates a run at batch 128 (sizes and data: the settings table); the paper's 60 "
                      "epochs on 55,000 images separate the curves more")
