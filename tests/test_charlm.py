"""Character-level language modelling: the weight-normalized LSTM and the language model (finite-difference
checks), resume with identical results, the verdicts, and the parallel sweep of the text8 grid."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lnedu import experiments
from lnedu import functional as F
from lnedu.experiments import charlm, text8_grid
from lnedu.experiments.runner import TIMING, RunResult, run_one
from lnedu.experiments.sweep import run_grid
from lnedu.gradcheck import check_gradients
from lnedu.nn import LSTM

ROOT = Path(__file__).resolve().parents[1]


def _without_timing(records):  # the task's per-update times and the runner's clocks differ between runs
    return [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds", *TIMING)} for r in records]


def _check_recurrent(layer, x, state0, rng):
    """Finite differences of ``L = <out, R> + <final state, S>`` w.r.t. x, the initial state and every param."""
    out, final = layer.forward(x, state0)
    R = rng.standard_normal(out.shape)
    S = tuple(rng.standard_normal(s.shape) for s in final)
    layer.zero_grad()
    dx, dstate0 = layer.backward(R, S)
    arrays = {k: p for k, p, _ in layer.named_parameters()}
    analytic = {k: g.copy() for k, _, g in layer.named_parameters()}
    arrays["x"], analytic["x"] = x, dx
    for i, (s, d) in enumerate(zip(state0, dstate0)):
        arrays[f"state{i}"], analytic[f"state{i}"] = s, d

    def loss():
        o, f = layer.forward(x, state0)
        return float((o * R).sum() + sum((a * b).sum() for a, b in zip(f, S)))

    return check_gradients(loss, arrays, analytic)


@pytest.mark.parametrize("T, B, D, H", [(4, 3, 5, 3), (6, 2, 3, 4)])
def test_weight_norm_lstm_gradients(rng, T, B, D, H):
    layer = charlm.WeightNormLSTM(D, H, rng=rng, dtype=np.float64)
    # move the lengths away from the initial norms, so that g and ||v|| differ
    layer.params["g_x"][:] = rng.uniform(0.5, 2.0, 4 * H)
    layer.params["g_h"][:] = rng.uniform(0.5, 2.0, 4 * H)
    layer.params["b"][:] = rng.normal(0, 0.3, 4 * H)
    state0 = (0.5 * rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    report = _check_recurrent(layer, rng.standard_normal((T, B, D)), state0, rng)
    assert report.max_rel_error < 1e-7, report


def test_weight_norm_lstm_starts_as_the_lstm_and_keeps_directions_apart(rng):
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    wn, plain = charlm.WeightNormLSTM(4, 6, rng=7), LSTM(4, 6, rng=7)
    np.testing.assert_allclose(wn.forward(x)[0], plain.forward(x)[0], rtol=1e-5, atol=1e-6)
    # scaling a direction changes nothing: only v / ||v|| enters the layer
    wn.params["W_h"] *= rng.uniform(0.5, 3.0, 24).astype(np.float32)
    np.testing.assert_allclose(wn.forward(x)[0], plain.forward(x)[0], rtol=1e-4, atol=1e-5)
    assert set(wn.params) == {"W_x", "W_h", "b", "g_x", "g_h"}


@pytest.mark.parametrize("variant", charlm.VARIANTS)
def test_language_model_gradients_for_every_variant(rng, variant):
    V, H, T, B = 6, 3, 4, 8  # batch norm's statistics need a batch of some size to be smooth
    cfg = dataclasses.replace(charlm.PRESETS["tiny"], hidden=H, seq_len=T)
    model = charlm.CharLM(charlm.build_layer(cfg, variant, V, rng, dtype=np.float64), V, rng=rng)
    ids, targets = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    n = len(model.rnn._state_names)
    state = tuple(0.5 * rng.standard_normal((B, H)) for _ in range(n))
    _, cache = F.softmax_cross_entropy(model.forward(ids, state)[0], targets)
    model.zero_grad()
    assert model.backward(F.softmax_cross_entropy_backward(1.0, cache)) is None
    arrays = {k: p for k, p, _ in model.named_parameters()}
    analytic = {k: g.copy() for k, _, g in model.named_parameters()}
    assert "Q" not in arrays and "buffer:Q" in model.state_dict()  # the input codes are not trained

    def loss():
        return F.softmax_cross_entropy(model.forward(ids, state)[0], targets)[0]

    report = check_gradients(loss, arrays, analytic)
    assert report.max_rel_error < 1e-7, report


def test_input_codes_are_orthogonal_with_unit_mean_square(rng):
    model = charlm.CharLM(LSTM(7, 3, rng=rng, dtype=np.float64), 7, rng=rng)
    Q = model.buffers["Q"]
    np.testing.assert_allclose(Q @ Q.T, 7 * np.eye(7), atol=1e-10)
    with pytest.raises(ValueError, match="rnn: expected input_size 7"):
        charlm.CharLM(LSTM(6, 3), 7)


@pytest.mark.parametrize("state", ["crops", "carried"])
def test_charlm_resumes_mid_run_with_identical_results(tmp_path, state):
    cfg = dataclasses.replace(charlm.PRESETS["tiny"], state=state)  # 16 updates, a checkpoint every 8
    whole = run_one(charlm, cfg, "bn", 2, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(charlm, cfg, "bn", 2, tmp_path / "b", progress=False, stop_after=11)
    saved = experiments.load_task(charlm, tmp_path / "b", cfg, "bn", 2)  # what the checkpoint holds
    assert saved.t == 8
    if state == "carried":
        assert saved.state is not None and len(saved.state) == 2  # the carried (h, c) is in it
    else:
        assert saved.state is None  # every crop starts from zeros: nothing to carry
    resumed = run_one(charlm, cfg, "bn", 2, tmp_path / "b", resume=True, progress=False)
    assert _without_timing(resumed.train) == _without_timing(whole.train)
    assert resumed.untimed().eval == whole.untimed().eval


def _nats_from_zero_states(model, windows):
    """Mean NLL (nats) over ``windows``, each run from a zero state, written out here."""
    total, count = 0.0, 0
    for x, y in windows:
        logits, _ = model.forward(x, None)
        z = logits.astype(np.float64)
        logp = z - z.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        total -= np.take_along_axis(logp, y[..., None], -1).sum()
        count += y.size
    return total / count


def test_crops_train_and_evaluate_from_a_zero_state(rng):
    cfg = dataclasses.replace(charlm.PRESETS["tiny"], steps=4)
    task = charlm.build(cfg, "ln", 0)
    assert task.mode == "crops" and task.examples_per_update == cfg.batch_size
    x, _ = task.stream.window(0, 0)
    assert x.shape == (cfg.seq_len, cfg.batch_size)
    for _ in range(3):
        task.step()
        assert task.state is None  # nothing passes from one update to the next
    valid = task.eval_streams["valid_bpc"]  # the first eval_chars of the validation text, cut into crops
    assert len(valid.starts) == cfg.eval_chars // cfg.eval_len and valid.T == cfg.eval_len
    ev = task.evaluate()
    task.model.eval()
    nats = _nats_from_zero_states(task.model, valid.epoch(0))
    assert ev["valid_bpc"] == pytest.approx(nats / np.log(2), rel=1e-5)
    carried = charlm.build(dataclasses.replace(cfg, state="carried"), "ln", 0)
    assert carried.evaluate()["valid_bpc"] != pytest.approx(charlm.build(cfg, "ln", 0).evaluate()["valid_bpc"])
    with pytest.raises(ValueError, match="state: expected one of"):
        charlm.build(dataclasses.replace(cfg, state="streams"), "ln", 0)


@pytest.mark.parametrize("variant", ["baseline", "ln", "normprop"])
def test_flops_per_update_is_the_hand_count(variant):
    cfg = dataclasses.replace(charlm.PRESETS["tiny"], hidden=5, batch_size=3, seq_len=7)
    task = charlm.build(cfg, variant, 0)
    V, H, B, T = task.model.vocab_size, 5, 3, 7
    # per character: x (1, V) @ W_x (V, 4H), h (1, H) @ W_h (H, 4H), h (1, H) @ W_out (H, V); 2 FLOPs a
    # multiply-add; forward + the backward's two products per forward product = 3 x
    assert task.flops_per_update() == 3 * 2 * B * T * (V * 4 * H + H * 4 * H + H * V)


def test_the_standin_has_the_paper_shapes():
    cfg = charlm.standin(charlm.PRESETS["paper"])
    assert cfg.data == "standin" and (cfg.hidden, cfg.batch_size, cfg.seq_len) == (1000, 64, 100)
    task = charlm.build(dataclasses.replace(cfg, hidden=8), "baseline", 0)
    assert task.model.vocab_size == 51  # PTB's 50 characters and <unk>
    assert task.flops_per_update() == 6 * 64 * 100 * (51 * 32 + 8 * 32 + 8 * 51)


@pytest.mark.parametrize("state", ["crops", "carried"])
def test_training_lowers_the_bpc(tmp_path, state):
    cfg = dataclasses.replace(charlm.PRESETS["tiny"], steps=30, eval_every=30, state=state)
    res = run_one(charlm, cfg, "ln", 0, tmp_path, progress=False)
    first, last = res.eval[0]["valid_bpc"], res.eval[-1]["valid_bpc"]
    assert last < first - 0.5, (first, last)
    assert all(r["seconds"] > 0 and r["cpu_seconds"] >= 0 for r in res.train)
    assert res.eval[-1]["updates_per_epoch"] > 30 and 0 < res.eval[-1]["epoch"] < 1


def test_gradient_growth_matches_a_direct_backward(rng):
    layer = LSTM(4, 5, rng=3, dtype=np.float64)
    layer.grads["b"][:] = rng.standard_normal(20)
    before = {k: g.copy() for k, g in layer.grads.items()}
    growth = charlm.gradient_growth(layer, (1, 3), batch=6, burn_in=4, seed=9)
    assert all(np.array_equal(layer.grads[k], before[k]) for k in before)  # left as they were
    r = np.random.default_rng([9, 3])
    _, state = layer.forward(r.standard_normal((4, 6, 4)))
    h, _ = layer.forward(r.standard_normal((3, 6, 4)), state)
    dout = np.zeros_like(h)
    dout[-1] = r.standard_normal((6, 5))
    layer.zero_grad()
    dh0 = layer.backward(dout)[1][0]
    np.testing.assert_allclose(growth[1], np.sqrt((dh0**2).mean()), rtol=1e-12)


def _fake_run(variant, seed, bpc, seconds, steps=4):
    train = [{"step": s, "split": "train", "loss": 1.0, "bpc": 1.0, "seconds": seconds, "cpu_seconds": seconds / 2}
             for s in range(1, steps + 1)]
    ev = [{"step": s, "split": "eval", "valid_bpc": bpc + 1.0 / (s + 1), "train_bpc": bpc, "epoch": s / 10,
           "updates_per_epoch": 10} for s in (0, steps)]
    ev[-1]["valid_bpc"] = bpc
    return RunResult(variant, seed, train, ev)


def test_charlm_verdict_reads_time_and_bpc(rng):
    bpc = dict(zip(charlm.VARIANTS, rng.uniform(1.4, 1.5, 5)))
    sec = dict(zip(charlm.VARIANTS, rng.uniform(3.0, 4.0, 5)))
    bpc["normprop"], sec["normprop"] = bpc["baseline"] - 0.02, min(sec["bn"], sec["ln"]) * 0.7
    results = {v: [_fake_run(v, s, bpc[v] + 0.001 * s, sec[v] * (1 + 0.01 * s)) for s in range(3)]
               for v in charlm.VARIANTS}
    v = charlm.verdict(results)
    assert v.held is True and "seconds/epoch" in v.our_figure and "(3 seeds)" in v.our_figure
    t = charlm.table(results)
    assert t["bn"][2] == pytest.approx(10 * sec["bn"] * 1.01) and t["ln"][0] == pytest.approx(bpc["ln"] + 0.001)
    assert charlm.table(results, "cpu_seconds")["bn"][2] == pytest.approx(5 * sec["bn"] * 1.01)
    faster = 1 - sec["normprop"] / sec["bn"]  # the seeds' factors (1 + 0.01 s) cancel in the ratio of means
    assert f"NormProp {faster:.0%} less time per epoch than BN and" in v.our_figure
    results["normprop"] = [_fake_run("normprop", s, bpc["normprop"], sec["bn"] * (1.1 + 0.01 * s)) for s in range(3)]
    slower = charlm.verdict(results)
    assert slower.held is False
    # NormProp 10% slower than BN: said as "10% more", not "-10% less"
    assert "NormProp 10% more time per epoch than BN and" in slower.our_figure
    assert not re.search(r"-\d+%", slower.our_figure), slower.our_figure
    assert charlm.verdict({"baseline": results["baseline"]}).held is None


def _grid_results(rng, init_effect):
    """Fake final bpcs: GRU best, MGU worst, LN better, inits differing by ``init_effect``."""
    cell = {"lstm": 1.50, "gru": 1.45, "mgu": 1.55}
    init = dict(zip(text8_grid.INITS, [0.0, init_effect, -init_effect]))
    out = {}
    for v in text8_grid.VARIANTS:
        c, ln, i = text8_grid.parse_variant(v)
        b = cell[c] - 0.05 * ln + init[i]
        out[v] = [_fake_run(v, s, b + rng.normal(0, 0.002), 1.0) for s in range(3)]
    return out


def test_text8_flops_per_update_is_the_hand_count():
    cfg = dataclasses.replace(text8_grid.PRESETS["tiny"], hidden=6, batch_size=2, seq_len=5)
    B, T, H = 2, 5, 6
    for variant, gates in (("lstm-ln-xavier", 4), ("gru-noln-orthogonal", 3), ("mgu-ln-variance_scaling", 2)):
        task = text8_grid.build(cfg, variant, 0)
        V = task.model.vocab_size
        # gates x H columns from the input and from the state (GRU and MGU: the gates' and the candidate's), the
        # output layer; 2 FLOPs a multiply-add, 3 x for forward and backward
        assert task.flops_per_update() == 6 * B * T * (V * gates * H + H * gates * H + H * V), variant
        assert task.examples_per_update == B
    paper = text8_grid.standin(text8_grid.PRESETS["paper"])
    assert paper.data == "standin" and paper.state == "crops" and (paper.hidden, paper.seq_len) == (2000, 200)
    assert text8_grid.build(dataclasses.replace(paper, hidden=4), "gru-ln-xavier", 0).model.vocab_size == 28


def test_grid_verdict_averages_over_the_other_factors(rng):
    res = _grid_results(rng, init_effect=0.01)
    m = text8_grid.marginals(res)
    assert m["ln"]["noln"] - m["ln"]["ln"] == pytest.approx(0.05, abs=0.01)
    assert m["cell"]["gru"] < m["cell"]["lstm"] < m["cell"]["mgu"]
    assert text8_grid.verdict(res).held is True
    assert text8_grid.verdict(_grid_results(rng, init_effect=0.2)).held is False  # the init matters here
    del res["gru-ln-xavier"]
    assert text8_grid.verdict(res).held is None and np.isnan(text8_grid.grid(res)[1, 1, 0])


def test_sweep_with_two_workers_gives_the_serial_results(tmp_path, monkeypatch):
    variants = ["gru-ln-xavier", "mgu-noln-orthogonal", "lstm-ln-variance_scaling"]
    par = run_grid(text8_grid, "tiny", seeds=(0, 1), out=tmp_path / "par", n_jobs=2, variants=variants)
    ser = experiments.run(text8_grid, "tiny", seeds=(0, 1), variants=variants, out=tmp_path / "ser", progress=False)
    assert set(par) == set(variants)
    for v in variants:
        for a, b in zip(par[v], ser[v]):
            assert (a.variant, a.seed) == (b.variant, b.seed)
            assert a.untimed().eval == b.untimed().eval and _without_timing(a.train) == _without_timing(b.train)
    summary = json.loads((tmp_path / "par" / "text8_grid" / "summary.json").read_text())
    assert summary["variants"] == variants and summary["seeds"] == [0, 1]
    # resumed when every run has finished (a notebook shown again): no worker pool starts, the results are read
    import joblib

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool started for finished runs")

    monkeypatch.setattr(joblib, "Parallel", no_pool)
    again = run_grid(text8_grid, "tiny", seeds=(0, 1), out=tmp_path / "par", n_jobs=2, variants=variants, resume=True)
    assert {v: [r.untimed().eval for r in runs] for v, runs in again.items()} == \
        {v: [r.untimed().eval for r in runs] for v, runs in par.items()}
    (tmp_path / "par" / "text8_grid" / f"{variants[0]}-seed1" / "result.json").unlink()  # one run to redo
    with pytest.raises(AssertionError, match="a worker pool started"):
        run_grid(text8_grid, "tiny", seeds=(0, 1), out=tmp_path / "par", n_jobs=2, variants=variants, resume=True)


@pytest.mark.skipif(importlib.util.find_spec("distributed") is not None, reason="Dask's distributed is installed")
def test_sweep_on_a_cluster_without_dask_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match=r"needs Dask's distributed package.*lnedu\[cluster\]"):
        run_grid(text8_grid, "tiny", seeds=(0,), out=tmp_path, scheduler="tcp://127.0.0.1:8786",
                 variants=["gru-ln-xavier"])


def test_sweep_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="n_jobs: expected"):
        run_grid(text8_grid, "tiny", out=tmp_path, n_jobs=0)
    with pytest.raises(ValueError, match="variants: expected names from"):
        run_grid(text8_grid, "tiny", out=tmp_path, variants=["gru-bn-xavier"])


def test_cli_jobs_only_for_grid_experiments(tmp_path):
    res = subprocess.run([sys.executable, "-m", "lnedu", "run", "charlm", "--preset", "tiny", "--jobs", "2",
                          "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and "--jobs/--scheduler: expected a grid experiment (" in res.stderr
    assert "text8_grid" in res.stderr and "got 'charlm'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
