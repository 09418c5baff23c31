"""Handwriting generation (LN §6.5): stroke data, the mixture density loss and sampler, the model, the experiment."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from lnedu.data import DataUnavailable
from lnedu.data.handwriting import (
    load_handwriting,
    load_iam_ondb,
    load_synthetic_handwriting,
    offsets_to_strokes,
    parse_strokes_xml,
    strokes_to_offsets,
    synthetic_lines,
)
from lnedu.experiments import handwriting as hw
from lnedu.experiments.runner import RunResult, load_task, run_one
from lnedu.functional.mdn import mdn_components, mdn_nll, mdn_nll_backward, mdn_params, mdn_sample, mdn_size
from lnedu.gradcheck import check_function, check_module

# ---------------------------------------------------------------------------------------------------------
# data


def _write_xml(path, strokes, *, t0=0.0):
    """A stroke file in IAM-OnDB's layout (a description block, then the StrokeSet)."""
    lines = ['<?xml version="1.0" encoding="ISO-8859-1"?>', "<WhiteboardCaptureSession>",
             "  <WhiteboardDescription>", '    <SensorLocation corner="top_left"/>',
             '    <DiagonallyOppositeCoords x="6512" y="1376"/>', "  </WhiteboardDescription>", "  <StrokeSet>"]
    t = t0
    for s in strokes:
        lines.append(f'    <Stroke colour="black" start_time="{t:.2f}" end_time="{t + 1:.2f}">')
        for x, y in s:
            lines.append(f'      <Point x="{x:g}" y="{y:g}" time="{t:.2f}"/>')
            t += 0.01
        lines.append("    </Stroke>")
    lines += ["  </StrokeSet>", "</WhiteboardCaptureSession>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="ISO-8859-1")


def test_parse_strokes_xml_gives_offsets_and_pen_ups(tmp_path, rng):
    strokes = [rng.integers(100, 3000, size=(n, 2)) for n in (4, 1, 6)]
    _write_xml(tmp_path / "a01-000u-01.xml", strokes)
    out = parse_strokes_xml(tmp_path / "a01-000u-01.xml")
    pts = np.concatenate(strokes).astype(float)
    assert out.shape == (11, 3)
    np.testing.assert_array_equal(out[0], [0, 0, 0])
    np.testing.assert_array_equal(out[1:, 0], np.diff(pts[:, 0]))
    np.testing.assert_array_equal(out[1:, 1], -np.diff(pts[:, 1]))  # y flipped: up is positive
    np.testing.assert_array_equal(np.flatnonzero(out[:, 2]), [3, 4, 10])
    raw = parse_strokes_xml(tmp_path / "a01-000u-01.xml", flip_y=False)
    np.testing.assert_array_equal(raw[1:, 1], np.diff(pts[:, 1]))
    back = offsets_to_strokes(raw, origin=pts[0])
    assert len(back) == 3
    for a, b in zip(back, strokes):
        np.testing.assert_allclose(a, b)


def test_parse_strokes_xml_rejects_bad_files(tmp_path):
    (tmp_path / "bad.xml").write_text("<WhiteboardCaptureSession><StrokeSet>", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid XML"):
        parse_strokes_xml(tmp_path / "bad.xml")
    _write_xml(tmp_path / "empty.xml", [])
    with pytest.raises(ValueError, match="found none"):
        parse_strokes_xml(tmp_path / "empty.xml")
    (tmp_path / "nox.xml").write_text('<a><StrokeSet><Stroke><Point y="1"/></Stroke></StrokeSet></a>')
    with pytest.raises(ValueError, match="without numeric x and y"):
        parse_strokes_xml(tmp_path / "nox.xml")


def test_load_iam_ondb_from_a_local_folder_splits_by_form_and_scales(tmp_path, rng):
    root = tmp_path / "iam" / "lineStrokes"
    for form in ("a01-000", "a01-001", "b02-010", "c03-007", "d04-100"):
        for line in range(3):
            strokes = [np.cumsum(rng.integers(-40, 40, size=(rng.integers(3, 9), 2)), axis=0) + 1000
                       for _ in range(rng.integers(1, 4))]
            _write_xml(root / form[:3] / form / f"{form}u-{line:02d}.xml", strokes)
    d = load_iam_ondb(tmp_path / "iam", test_fraction=0.2, seed=1)
    assert d.name == "iam-ondb" and len(d.train) == 12 and len(d.test) == 3
    assert all(s.dtype == np.float32 and s.shape[1] == 3 for s in d.train + d.test)
    train_offsets = np.concatenate([s[:, :2] for s in d.train]).astype(float)
    assert math.isclose(np.sqrt(np.mean(train_offsets**2)), 1.0, rel_tol=1e-5)
    # the same scale is applied to the test lines: compare one with its raw file
    raw = [parse_strokes_xml(f) for f in sorted(root.rglob("*.xml"))]
    assert any(len(r) == len(d.test[0]) and np.allclose(r[:, :2] / d.scale, d.test[0][:, :2], atol=1e-5)
               for r in raw)
    # pointing at lineStrokes itself works too
    assert len(load_iam_ondb(root, test_fraction=0.2, seed=1).train) == 12


def test_missing_iam_ondb_is_a_clear_error_and_auto_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataUnavailable, match="needs a registration"):
        load_iam_ondb(tmp_path / "nowhere")
    with pytest.raises(DataUnavailable, match="no stroke files"):
        load_handwriting("iam")
    d = load_handwriting("auto", n_train=5, n_test=2)
    assert d.name == "synthetic" and len(d.train) == 5 and len(d.test) == 2
    with pytest.raises(ValueError, match="source: expected"):
        load_handwriting("mnist")


def test_synthetic_lines_are_deterministic_by_seed_and_well_formed():
    a, b, c = synthetic_lines(4, seed=3), synthetic_lines(4, seed=3), synthetic_lines(4, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not any(len(x) == len(y) and np.allclose(x, y) for x, y in zip(a, c))
    assert np.array_equal(synthetic_lines(2, seed=3)[1], a[1])  # line i depends on (seed, i) only
    for line in a + c:
        assert line.ndim == 2 and line.shape[1] == 3 and len(line) > 50
        assert np.isfinite(line).all()
        np.testing.assert_array_equal(line[0, :2], [0, 0])
        assert set(np.unique(line[:, 2])) == {0.0, 1.0} and line[-1, 2] == 1
        strokes = offsets_to_strokes(line)
        assert len(strokes) == int(line[:, 2].sum()) >= 2  # every word is a stroke, plus dots and bars
        np.testing.assert_allclose(strokes_to_offsets(strokes), line, atol=1e-9)
        assert np.abs(np.diff(np.concatenate(strokes), axis=0)).max() < 2 * 30 * 1.25 * 2  # no wild jumps


def test_synthetic_dataset_is_normalized():
    d = load_synthetic_handwriting(12, 4, seed=5)
    assert d.name == "synthetic" and "synthetic" in d.description
    off = np.concatenate([s[:, :2] for s in d.train]).astype(float)
    assert math.isclose(np.sqrt(np.mean(off**2)), 1.0, rel_tol=1e-5)
    assert d.lengths[0] > 50
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        synthetic_lines(0)


# ---------------------------------------------------------------------------------------------------------
# the mixture density output


def _mdn_inputs(rng, lead, M, dtype=np.float64):
    y = rng.standard_normal(lead + (mdn_size(M),)).astype(dtype)
    x = np.concatenate([rng.standard_normal(lead + (2,)), (rng.random(lead + (1,)) < 0.3)], axis=-1).astype(dtype)
    return y, x


@pytest.mark.parametrize("lead, M, reduction", [((7,), 1, "mean"), ((4, 3), 3, "sum"), ((3, 2), 5, "mean")])
def test_mdn_nll_gradient_check(rng, lead, M, reduction):
    y, x = _mdn_inputs(rng, lead, M)
    y[..., 1 + 5 * M:] *= 2  # rho_hat up to |rho| ~ 1: the sharp end of the density
    mask = (rng.random(lead) < 0.7).astype(np.float64)
    mask.reshape(-1)[0] = 1
    for m in (None, mask):
        rep = check_function(lambda y_hat, x, mask: mdn_nll(y_hat, x, mask, reduction=reduction), mdn_nll_backward,
                             {"y_hat": y, "x": x, "mask": m}, wrt=["y_hat"])
        assert rep.max_rel_error < 1e-7, str(rep)


def test_mdn_nll_matches_the_density_written_out(rng):
    """Against the textbook form of the bivariate normal: exp(-d^T S^-1 d / 2) / (2 pi sqrt(det S))."""
    M = 4
    y, x = _mdn_inputs(rng, (6,), M)
    p = mdn_params(y)
    expected = 0.0
    for t in range(6):
        dens = 0.0
        for j in range(M):
            s1, s2, r = p.sigma1[t, j], p.sigma2[t, j], p.rho[t, j]
            S = np.array([[s1 * s1, r * s1 * s2], [r * s1 * s2, s2 * s2]])
            d = x[t, :2] - [p.mu1[t, j], p.mu2[t, j]]
            dens += p.pi[t, j] * np.exp(-0.5 * d @ np.linalg.solve(S, d)) / (2 * np.pi * np.sqrt(np.linalg.det(S)))
        pen = p.e[t] if x[t, 2] == 1 else 1 - p.e[t]
        expected -= np.log(dens * pen)
    assert math.isclose(mdn_nll(y, x, reduction="sum")[0], expected, rel_tol=1e-12)
    assert math.isclose(mdn_nll(y, x)[0], expected / 6, rel_tol=1e-12)
    np.testing.assert_allclose(p.pi.sum(-1), 1.0)
    assert mdn_components(y) == M


def test_mdn_runs_on_every_backend(xp, rng):
    """The same loss, gradient and samples from device arrays as from host arrays (cupy where a GPU is)."""
    from lnedu.backend import to_numpy

    y, x = _mdn_inputs(rng, (5, 2), 3)
    mask = np.ones((5, 2))
    mask[-1, 0] = 0
    loss, cache = mdn_nll(y, x, mask)
    loss_xp, cache_xp = mdn_nll(xp.asarray(y), xp.asarray(x), xp.asarray(mask))
    assert math.isclose(loss_xp, loss, rel_tol=1e-12)
    d_xp = mdn_nll_backward(1.0, cache_xp)
    assert type(d_xp) is type(xp.asarray(y))
    np.testing.assert_allclose(to_numpy(d_xp), mdn_nll_backward(1.0, cache), rtol=1e-10, atol=1e-14)
    s_xp = mdn_sample(xp.asarray(y), np.random.default_rng(3))
    np.testing.assert_allclose(to_numpy(s_xp), mdn_sample(y, np.random.default_rng(3)), rtol=1e-12)


def test_mdn_nll_is_stable_at_extreme_outputs(rng):
    M = 2
    y, x = _mdn_inputs(rng, (5,), M, dtype=np.float32)
    y[:, 0] = [80, -80, 80, -80, 0]  # saturated pen probabilities
    y[:, 1 + 5 * M:] = [[25, -25]] * 5  # |rho| = 1 in float32
    y[:, 1 + 3 * M: 1 + 5 * M] = -6  # narrow Gaussians
    x[:, :2] *= 50  # far from every mean
    loss, cache = mdn_nll(y, x)
    d = mdn_nll_backward(1.0, cache)
    assert np.isfinite(loss) and np.isfinite(d).all()


def test_mdn_bad_input_names_the_argument(rng):
    y, x = _mdn_inputs(rng, (3,), 2)
    with pytest.raises(ValueError, match="y_hat: expected a last axis of size 1 \\+ 6M"):
        mdn_nll(y[:, :-1], x)
    with pytest.raises(ValueError, match="x: expected shape"):
        mdn_nll(y, x[:, :2])
    with pytest.raises(ValueError, match="reduction: expected"):
        mdn_nll(y, x, reduction="max")
    with pytest.raises(TypeError, match="y_hat: expected a floating-point array"):
        mdn_nll(y.astype(int), x)


def test_mdn_sample_shapes_and_distribution(rng):
    M = 2
    y = np.zeros((mdn_size(M),))
    y[0] = math.log(0.25 / 0.75)  # e = 0.25
    y[1:3] = [8.0, -8.0]  # all weight on component 0
    y[3], y[5] = 1.5, -0.5  # mu
    y[7], y[9] = math.log(0.5), math.log(2.0)  # sigma
    y[11] = math.atanh(0.6)  # rho
    draws = mdn_sample(np.tile(y, (4000, 1)), np.random.default_rng(0))
    assert draws.shape == (4000, 3) and draws.dtype == y.dtype
    np.testing.assert_allclose(draws[:, :2].mean(0), [1.5, -0.5], atol=0.08)
    np.testing.assert_allclose(np.cov(draws[:, :2].T), [[0.25, 0.6], [0.6, 4.0]], atol=0.15)
    assert abs(draws[:, 2].mean() - 0.25) < 0.03 and set(np.unique(draws[:, 2])) == {0.0, 1.0}
    again = mdn_sample(np.tile(y, (4000, 1)), np.random.default_rng(0))
    np.testing.assert_array_equal(draws, again)
    assert mdn_sample(rng.standard_normal((5, 2, mdn_size(3))), rng).shape == (5, 2, 3)
    # the sampling bias sharpens: smaller spread
    biased = mdn_sample(np.tile(y, (4000, 1)), np.random.default_rng(0), bias=1.0)
    assert biased[:, 0].std() < 0.5 * draws[:, 0].std()


# ---------------------------------------------------------------------------------------------------------
# the model and the experiment


@pytest.mark.parametrize("variant, layers", [("baseline", 1), ("ln", 1), ("baseline", 3), ("ln", 2)])
def test_model_gradient_check(rng, variant, layers):
    cfg = dataclasses.replace(hw.PRESETS["tiny"], hidden=3, layers=layers, components=2)
    model = hw.build_model(cfg, variant, rng).astype(np.float64)
    x = rng.standard_normal((3, 2, 3))
    x[..., 2] = rng.random((3, 2)) < 0.3
    rep = check_module(model, x, seed=layers)
    assert rep.max_rel_error < 1e-7, str(rep)
    names = [k for k, _, _ in model.named_parameters()]
    assert sum(k.startswith("rnn") and k.endswith("W_x") for k in names) == layers and "out.W" in names
    assert model.out.params["W"].shape == (layers * 3, mdn_size(2))


def test_batches_are_a_function_of_seed_and_step():
    lines = [np.arange(3 * n, dtype=np.float32).reshape(n, 3) + 1000 * n for n in (5, 30, 12, 40)]
    a, b, c = (hw.sample_batch(lines, 3, 8, seed=1, step=s) for s in (7, 7, 8))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))
    xs, ys, mask = a
    assert xs.shape == ys.shape == (8, 3, 3) and mask.shape == (8, 3)
    np.testing.assert_array_equal(xs[1:], ys[:-1])  # targets are the inputs shifted by one step
    w, m = hw.make_windows([lines[0], lines[3]], [0, 30], 9)
    np.testing.assert_array_equal(m.sum(0), [5, 9])  # the 5-point line is padded, the long one is cut
    assert (w[5:, 0] == 0).all() and np.array_equal(w[:, 1], lines[3][30:39])


def _run(tmp_path, variant, **kw):
    return run_one(hw, hw.PRESETS["tiny"], variant, 0, tmp_path, progress=False, **kw)


@pytest.mark.parametrize("variant", hw.VARIANTS)
def test_tiny_preset_learns(tmp_path, variant):
    res = _run(tmp_path, variant)
    losses = [r["loss"] for r in res.train]
    assert len(losses) == hw.PRESETS["tiny"].steps and np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3
    assert res.eval[-1]["test_nll"] < res.eval[0]["test_nll"] - 0.3
    assert [r["step"] for r in res.eval] == [0, 10, 20, 30, 40]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    whole = _run(tmp_path / "a", "ln")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", "ln", stop_after=25)
    folder = tmp_path / "b" / "handwriting" / "ln-seed0"
    assert load_task(hw, tmp_path / "b", hw.PRESETS["tiny"], "ln", 0).t == 20  # the last checkpoint's step
    resumed = _run(tmp_path / "b", "ln", resume=True)
    assert resumed.untimed() == whole.untimed()
    with np.load(tmp_path / "a" / "handwriting" / "ln-seed0" / "checkpoint.npz") as za, \
            np.load(folder / "checkpoint.npz") as zb:
        assert za.files == zb.files
        for k in za.files:
            a, b = za[k], zb[k]
            if k == "meta":  # the hash of the log it saw differs with the log's clocks (the runner checks it itself)
                a, b = (json.loads(str(m)) for m in (a, b))
                a["extra"]["log_sha256"] = b["extra"]["log_sha256"] = None
                assert a == b
                continue
            np.testing.assert_array_equal(a, b, err_msg=k)
    task = hw.load_trained(tmp_path / "b", hw.PRESETS["tiny"], "ln", 0)
    assert task.t == hw.PRESETS["tiny"].steps
    got = task.evaluate()  # (at the last step it also logs per-time-step statistics)
    assert {k: got[k] for k in ("train_nll", "test_nll")} == {k: whole.eval[-1][k] for k in ("train_nll", "test_nll")}
    with pytest.raises(FileNotFoundError, match="expected a checkpoint"):
        hw.load_trained(tmp_path / "b", hw.PRESETS["tiny"], "baseline", 0)


def _fake(variant, seed, curve, test_final):
    steps = np.arange(len(curve)) * 10
    ev = [{"step": int(s), "split": "eval", "train_nll": float(v), "test_nll": float(v)} for s, v in zip(steps, curve)]
    ev[-1]["test_nll"] = test_final
    return RunResult(variant, seed, [], ev)


def test_verdict_measures_speed_and_comparability(rng):
    t = np.arange(31)
    slow = 3 * np.exp(-t / 10) - 0.5
    fast = 3 * np.exp(-t / 4) - 0.5

    def noise():
        return rng.normal(0, 0.01, len(t))

    base = [_fake("baseline", s, slow + noise(), -0.5) for s in range(3)]
    held = hw.verdict({"baseline": base, "ln": [_fake("ln", s, fast + noise(), -0.52) for s in range(3)]})
    assert held.held is True and "(3 seeds)" in held.our_figure
    reach, target = hw.speedup({"baseline": base, "ln": [_fake("ln", 0, fast, -0.5)]})
    first, last = (np.mean([b.eval[i]["train_nll"] for b in base]) for i in (0, -1))
    assert target == pytest.approx(first - 0.9 * (first - last))
    assert reach["ln"] < 0.5 * reach["baseline"]
    worse_end = hw.verdict({"baseline": base, "ln": [_fake("ln", s, fast, -0.3) for s in range(3)]})
    assert worse_end.held is False  # fast, but ends clearly worse: not "comparable"
    same = hw.verdict({"baseline": base, "ln": [_fake("ln", s, slow + noise(), -0.5) for s in range(3)]})
    assert same.held is None and same.outcome == "undecided (within seed noise)"  # same speed: within the noise
    flat = [_fake("baseline", s, np.full(31, 2.0), 2.0) for s in range(3)]
    v = hw.verdict({"baseline": flat, "ln": [_fake("ln", s, fast, -0.5) for s in range(3)]})
    assert v.held is None and v.outcome == "not tested"


def test_generate_and_plots(rng):
    import matplotlib

    matplotlib.use("Agg")
    model = hw.build_model(hw.PRESETS["tiny"], "ln", rng)
    a = hw.generate(model, 30, 5, batch=2)
    b = hw.generate(model, 30, 5, batch=2)
    assert a.shape == (30, 2, 3) and np.isfinite(a).all() and set(np.unique(a[..., 2])) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, hw.generate(model, 30, 6, batch=2))
    fig = hw.plot_strokes([a[:, 0], a[:, 1], synthetic_lines(1)[0]], titles=["x", "y", "z"], ncols=2)
    assert len(fig.axes) == 4 and all(ax.get_aspect() == 1.0 for ax in fig.axes[:3])
    assert len(fig.axes[2].lines) == int(synthetic_lines(1)[0][:, 2].sum())  # one line per stroke
    results = {v: [_fake(v, s, np.linspace(3, 0, 5), 0.0) for s in range(2)] for v in hw.VARIANTS}
    fig = hw.plot(results)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.lines) == 5  # train and test per variant, and the target level


def test_registered_with_the_runner():
    from lnedu import experiments

    exp = experiments.get("handwriting")
    assert exp is hw and set(exp.PRESETS) == {"tiny", "small", "paper"}
    paper = exp.PRESETS["paper"]
    assert (paper.hidden, paper.layers, paper.components, paper.seq_len, paper.batch_size) == (400, 3, 20, 500, 8)
