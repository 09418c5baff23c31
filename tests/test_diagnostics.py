"""What runs log besides the loss (issue 19 item 7): gradient norms, per-time-step gate statistics, batch norm's
evaluation statistics, and the plots of them."""

import matplotlib
import numpy as np
import pytest

from lnedu import nn, optim
from lnedu.experiments import diagnostics as D
from lnedu.experiments.common import population_statistics
from lnedu.experiments.runner import RunResult
from lnedu.viz import experiments as VE

matplotlib.use("Agg")


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def test_gate_stats_on_a_hand_built_step():
    # two cases, H = 2: f, i, o (sigmoid) then g (tanh); chosen pre-activations, some far out, some near 0
    a = np.array([[-3.0, 0.5, 2.5, -0.2, 0.1, 4.0, 1.0, -0.7],
                  [0.3, -2.5, -0.1, 3.0, 2.2, -0.4, -1.5, 0.05]])
    gates = np.concatenate([_sigmoid(a[:, :6]), np.tanh(a[:, 6:])], axis=1)
    got = D.gate_stats(gates, n_sigmoid=6)
    assert got["preact_mean"] == pytest.approx(a.mean(), abs=1e-9)
    assert got["preact_std"] == pytest.approx(a.std(), abs=1e-9)
    s = _sigmoid(a[:, :6])
    assert got["gate_saturation"] == pytest.approx(((s < 0.1) | (s > 0.9)).mean())
    assert got["gate_saturation"] == pytest.approx(6 / 12)  # |a| > log 9 = 2.197: -3, 2.5, 4, 3, -2.5, 2.2


def test_gate_stats_refuses_a_wrong_split():
    with pytest.raises(ValueError, match="n_sigmoid"):
        D.gate_stats(np.full((2, 4), 0.5), n_sigmoid=5)


def test_recurrent_stats_of_an_lstm_match_a_direct_computation():
    rng = np.random.default_rng(3)
    T, B, D_in, H = 5, 7, 3, 4
    layer = nn.LSTM(D_in, H, rng=rng, dtype=np.float64)
    x = rng.standard_normal((T, B, D_in)) * 2
    layer.forward(x)
    stats = D.recurrent_stats(layer)
    assert stats == {}  # the layer itself is not its own descendant: a model holds the layers

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = self.add_module("rnn", layer)

    model = Holder()
    layer.forward(x)
    stats = D.recurrent_stats(model)["rnn"]
    p = layer.params
    h, c = np.zeros((B, H)), np.zeros((B, H))
    for t in range(T):  # Eq. 17-19, gate order f, i, o, g
        a = x[t] @ p["W_x"] + h @ p["W_h"] + p["b"]
        f, i, o = (_sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))
        g = np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        s = _sigmoid(a[:, :3 * H])
        assert stats["gate_saturation"][t] == pytest.approx(((s < 0.1) | (s > 0.9)).mean())
        assert stats["preact_mean"][t] == pytest.approx(a.mean(), rel=1e-6)
        assert stats["preact_std"][t] == pytest.approx(a.std(), rel=1e-6)
        assert stats["h_std"][t] == pytest.approx(h.std(), rel=1e-9)
    assert all(0 <= v <= 1 for v in stats["gate_saturation"])
    assert len(stats["h_std"]) == T


def test_grad_norm_without_and_with_clipping():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(5, 3, rng=rng), nn.ReLU(), nn.Linear(3, 2, rng=rng))

    class T:
        pass

    for clip in (None, 1e-3):
        task = T()
        task.opt = optim.Adam(model, lr=1e-3, clip=clip)
        task.opt.zero_grad()
        y = model.forward(rng.standard_normal((4, 5)).astype(np.float32))
        model.backward(np.ones_like(y) * 3)
        direct = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for _, _, g in model.named_parameters()))
        task.opt.step()
        assert D.grad_norm(task) == pytest.approx(direct, rel=1e-6)  # before clipping, either way
    assert D.grad_norm(object()) is None


def test_train_mode_forward_leaves_the_running_statistics_alone():
    rng = np.random.default_rng(1)
    model = nn.Sequential(nn.Linear(4, 6, rng=rng), nn.BatchNorm(6))
    model.eval()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    out = D.train_mode_forward(model, lambda: model.forward(rng.standard_normal((8, 4)).astype(np.float32) + 5))
    assert out.shape == (8, 6) and not model.training
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    model.train()
    model.forward(rng.standard_normal((8, 4)).astype(np.float32) + 5)  # without the guard the buffers move
    assert not np.array_equal(before["buffer:1.running_mean"], model.state_dict()["buffer:1.running_mean"])


def test_due_marks_a_few_points():
    got = [t for t in range(0, 101, 10) if D.due(t, 100, 10)]
    assert got == [0, 30, 50, 80, 100]  # start, the first evaluation at/after 25, 50, 75, and the end
    assert [t for t in range(0, 13, 4) if D.due(t, 12, 4)] == [0, 4, 8, 12]


def test_population_statistics_average_the_batches():
    rng = np.random.default_rng(2)
    bn = nn.BatchNorm(3, unbiased=True)
    model = nn.Sequential(bn)
    x = (rng.standard_normal((20, 3)) * [1, 2, 3] + [0, 5, -1]).astype(np.float32)
    assert population_statistics(model, x, 4)
    order = np.random.default_rng(0xB4).permutation(20)
    batches = [x[order[i:i + 4]] for i in range(0, 20, 4)]
    np.testing.assert_allclose(bn.buffers["running_mean"], np.mean([b.mean(0) for b in batches], 0), rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], np.mean([b.var(0, ddof=1) for b in batches], 0), rtol=1e-4)
    assert bn.momentum == 0.1 and model.training
    assert not population_statistics(nn.Sequential(nn.ReLU()), x, 4)


# ---- plots -------------------------------------------------------------------------------------------


def _fake(seed, secs_per_step):
    train = [{"step": s, "split": "train", "loss": 1 / s, "grad_norm": 1 + s % 3, "wall_seconds": s * secs_per_step,
              "process_seconds": s * secs_per_step * 0.9} for s in range(1, 41)]
    ev = [{"step": s, "split": "eval", "valid_error": 1 / (1 + s), "valid_error_batchstats": 0.9 / (1 + s)}
          for s in range(0, 41, 10)]
    for rec, (sat, pre, h) in ((ev[0], ([.1, .2], [1.0, 1.1], [.3, .3])), (ev[-1], ([.3, .4], [2.0, 2.1], [.5, .5]))):
        rec.update({"diag/doc/gate_saturation": sat, "diag/doc/preact_std": pre, "diag/doc/h_std": h})
    return RunResult("bn-lstm", seed, train, ev)


def test_seed_curves_on_seconds_use_each_seeds_clock():
    runs = [_fake(0, 0.5), _fake(1, 1.5)]
    xs, vals = VE.seed_curves(runs, "valid_error", x="seconds")
    np.testing.assert_allclose(xs, [0, 10, 20, 30, 40])  # the mean of 0.5 s and 1.5 s per update
    xs_u, vals_u = VE.seed_curves(runs, "valid_error", x="updates")
    np.testing.assert_allclose(xs_u, [0, 10, 20, 30, 40])
    np.testing.assert_array_equal(vals, vals_u)
    xs_p, _ = VE.seed_curves(runs, "valid_error", x="process_seconds")
    np.testing.assert_allclose(xs_p, 0.9 * xs)
    old = RunResult("x", 0, [{"step": 1, "split": "train", "loss": 1.0}], [{"step": 0, "split": "eval", "e": 1.0}])
    with pytest.raises(ValueError, match="wall_seconds"):
        VE.seed_curves([old], "e", x="seconds")


def test_the_plots_draw_what_was_logged():
    import matplotlib.pyplot as plt

    results = {"bn-lstm": [_fake(0, 0.5), _fake(1, 1.5)]}
    ax = VE.plot_curves(results, "valid_error", x="seconds")
    assert ax.get_xlabel() == "training seconds (wall clock)"
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 10, 20, 30, 40])
    ax = VE.plot_grad_norm(results, smooth=5)
    assert len(ax.lines[0].get_xdata()) == 36 and ax.get_yscale() == "log"
    axes = VE.plot_time_steps(results, "doc")
    sat = axes[1].lines  # start (dotted) and end (solid) of the gate saturation
    np.testing.assert_allclose(sat[0].get_ydata(), [0.1, 0.2])
    np.testing.assert_allclose(sat[1].get_ydata(), [0.3, 0.4])
    assert VE.diag_steps(results["bn-lstm"][0], "doc") == [0, 40]
    ax = VE.plot_bn_gap(results, "valid_error")
    assert len(ax.lines) == 2
    plt.close("all")


def test_synchronize_waits_for_the_device_only_on_cupy(monkeypatch):
    from lnedu import backend

    calls = []

    class FakeDevice:
        def synchronize(self):
            calls.append("sync")

    class FakeCupy:
        class cuda:
            Device = FakeDevice

    assert backend.synchronize() is None and calls == []  # NumPy: nothing queued
    monkeypatch.setattr(backend, "_current", FakeCupy)
    backend.synchronize()
    assert calls == ["sync"]


def test_a_tiny_run_logs_its_clocks_and_gradient_norms_resume_included(tmp_path):
    import dataclasses

    from lnedu.experiments import draw
    from lnedu.experiments.runner import TIMING, run_one

    cfg = dataclasses.replace(draw.PRESETS["tiny"], epochs=1, checkpoint_every=10)  # no clip, no norm in its step
    with pytest.raises(KeyboardInterrupt):
        run_one(draw, cfg, "ln", 0, tmp_path, progress=False, stop_after=15)  # resumes from update 10
    res = run_one(draw, cfg, "ln", 0, tmp_path, resume=True, progress=False)
    assert [r["step"] for r in res.train] == list(range(1, len(res.train) + 1))
    for key in TIMING:
        clock = [r[key] for r in res.train]
        assert all(b > a for a, b in zip(clock, clock[1:])), key  # cumulative, across the resume too
        assert clock[0] > 0
        at = {r["step"]: r[key] for r in res.train}
        assert all(e[key] == (at[e["step"]] if e["step"] else 0.0) for e in res.eval)  # eval: the clock so far
    assert all(r["grad_norm"] > 0 for r in res.train)
    assert res.untimed().train[0].keys() == res.train[0].keys() - set(TIMING)
