"""lnedu.nn: every module's backward against finite differences, and the Module machinery (state, modes,
saving and loading, gradient accumulation), BatchNorm's running statistics and WeightNormLinear's start."""

from __future__ import annotations

import os

import numpy as np
import pytest

import lnedu.functional as F
from lnedu import backend, nn
from lnedu import init as I
from lnedu.gradcheck import check_module

TOL = 1e-7


def _assert_passes(report):
    assert report.max_rel_error < TOL, f"\n{report}"


def _randomize(module, rng):
    """Give every parameter random values (gains 1 and biases 0 would hide mistakes in their gradients)."""
    for _, p, _ in module.named_parameters():
        p[...] = rng.normal(0.5, 1.0, p.shape)
    return module


def _x(rng, shape):
    return rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), shape)


def _stack(seed=0):
    return nn.Sequential(
        nn.Linear(4, 6, rng=seed),
        nn.LayerNorm(6),
        nn.Tanh(),
        nn.WeightNormLinear(6, 5, rng=seed + 1),
        nn.RMSNorm(5),
        nn.Sigmoid(),
        nn.Linear(5, 3, bias=False, rng=seed + 2),
        nn.BatchNorm(3),
    )


# --------------------------------------------------------------------------------------------------
# gradient checks of every module


MODULES = {
    "Linear": (lambda: nn.Linear(5, 3, rng=0), (4, 5)),
    "Linear-3d-nobias": (lambda: nn.Linear(3, 2, bias=False, rng=1), (2, 3, 3)),
    "LayerNorm": (lambda: nn.LayerNorm(7), (3, 7)),
    "LayerNorm-3d": (lambda: nn.LayerNorm(4), (2, 3, 4)),
    "LayerNorm-noaffine": (lambda: nn.LayerNorm(5, affine=False), (3, 5)),
    "RMSNorm": (lambda: nn.RMSNorm(6), (4, 6)),
    "BatchNorm": (lambda: nn.BatchNorm(3), (5, 3)),
    "BatchNorm-unbiased": (lambda: nn.BatchNorm(4, unbiased=True), (4, 4)),
    "WeightNormLinear": (lambda: nn.WeightNormLinear(4, 3, rng=2), (5, 4)),
    "Tanh": (nn.Tanh, (3, 4)),
    "Sigmoid": (nn.Sigmoid, (2, 5)),
    "Sequential": (_stack, (6, 4)),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_module_gradcheck(name, rng):
    make, shape = MODULES[name]
    for seed in range(2):
        module = _randomize(make().astype(np.float64), rng)
        _assert_passes(check_module(module, _x(rng, shape), seed=seed))


def test_relu_module_gradcheck(rng):
    x = rng.choice([-1.0, 1.0], (4, 5)) * rng.uniform(0.1, 2.0, (4, 5))  # away from the kink at 0
    _assert_passes(check_module(nn.ReLU(), x, seed=1))


def test_gradcheck_covers_every_parameter_of_the_stack():
    model = _stack().astype(np.float64)
    rep = check_module(model, np.random.default_rng(0).normal(size=(5, 4)))
    names = {k for k, _, _ in model.named_parameters()}
    assert set(rep.errors) == names | {"input"}
    assert {"0.W", "0.b", "1.g", "1.b", "3.v", "3.g", "3.b", "4.g", "6.W", "7.g", "7.b"} == names


def test_gradients_accumulate_over_backward_calls(rng):
    model = _randomize(_stack().astype(np.float64), rng)
    x1, x2 = _x(rng, (5, 4)), _x(rng, (5, 4))
    d1, d2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))

    def grads_of(x, d):
        model.zero_grad()
        model.forward(x)
        model.backward(d)
        return {k: g.copy() for k, _, g in model.named_parameters()}

    g1, g2 = grads_of(x1, d1), grads_of(x2, d2)
    model.zero_grad()
    model.forward(x1)
    model.backward(d1)
    model.forward(x2)
    model.backward(d2)
    for k, _, g in model.named_parameters():
        np.testing.assert_allclose(g, g1[k] + g2[k], rtol=1e-12, atol=1e-14)
    # two backward calls on one forward add up like one call with the summed upstream gradient
    model.zero_grad()
    model.forward(x1)
    model.backward(d1)
    model.backward(d2)
    twice = {k: g.copy() for k, _, g in model.named_parameters()}
    once = grads_of(x1, d1 + d2)
    for k, g in once.items():
        np.testing.assert_allclose(twice[k], g, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------------------
# Module machinery


def test_named_parameters_use_dotted_names_in_nested_sequentials():
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Sequential(nn.LayerNorm(4), nn.Tanh(), nn.Linear(4, 2, rng=1)))
    names = [k for k, _, _ in model.named_parameters()]
    assert names == ["0.W", "0.b", "1.0.g", "1.0.b", "1.2.W", "1.2.b"]
    assert model.num_parameters() == 3 * 4 + 4 + 4 + 4 + 4 * 2 + 2
    assert len(model) == 2 and isinstance(model[1][2], nn.Linear)
    assert "LayerNorm" in repr(model) and "Linear(4, 2, bias=True)" in repr(model)


def test_zero_grad_clears_in_place(rng):
    model = _stack()
    model.forward(_x(rng, (4, 4)).astype(np.float32))
    model.backward(np.ones((4, 3), np.float32))
    before = {k: g for k, _, g in model.named_parameters()}
    assert any(np.abs(g).max() > 0 for g in before.values())
    model.zero_grad()
    for k, _, g in model.named_parameters():
        assert g is before[k]  # the same arrays: anyone holding them sees zeros
        np.testing.assert_array_equal(g, 0)


def test_train_and_eval_reach_every_child(rng):
    model = nn.Sequential(nn.Linear(3, 3, rng=0), nn.Sequential(nn.BatchNorm(3), nn.Tanh()))
    assert all(m.training for m in model._all_modules())
    assert model.eval() is model
    assert not any(m.training for m in model._all_modules())
    x = _x(rng, (4, 3)).astype(np.float32)
    model.forward(x)
    with pytest.raises(RuntimeError, match="eval-mode forward"):
        model.backward(np.ones((4, 3), np.float32))
    model.train()
    assert all(m.training for m in model._all_modules())


def test_astype_casts_params_grads_and_buffers():
    model = _stack()
    assert all(p.dtype == np.float32 for _, p, _ in model.named_parameters())
    assert model.astype(np.float64) is model
    for _, p, g in model.named_parameters():
        assert p.dtype == np.float64 and g.dtype == np.float64
    assert all(b.dtype == np.float64 for _, b in model.named_buffers())
    y = model.forward(np.ones((3, 4)) + np.arange(4.0))
    assert y.dtype == np.float64


def test_state_dict_round_trip_and_save_load(tmp_path, rng):
    model = _randomize(_stack(1), rng)
    model.forward(_x(rng, (8, 4)).astype(np.float32))  # moves BatchNorm's running statistics
    state = model.state_dict()
    assert "buffer:7.running_mean" in state and "0.W" in state
    assert all(isinstance(v, np.ndarray) for v in state.values())

    other = _stack(5)
    other.load_state_dict(state)
    x = _x(rng, (6, 4)).astype(np.float32)
    np.testing.assert_array_equal(other.eval().forward(x), model.eval().forward(x))
    state["0.W"][...] = 0  # the loaded model holds copies, not the caller's arrays
    assert np.abs(other[0].params["W"]).max() > 0

    path = tmp_path / "model.npz"
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # the temporary file was renamed, not left behind
    third = _stack(9)
    third.load(path)
    np.testing.assert_array_equal(third.eval().forward(x), model.forward(x))
    model.save(str(path))  # overwriting an existing file works too
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    model = _stack()
    model.save(path)
    old = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        _stack(3).save(path)
    assert path.read_bytes() == old  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # and no temporary file remains


def test_load_state_dict_rejects_wrong_keys_and_shapes_without_changing_the_model():
    model = _stack()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    good = _stack(4).state_dict()

    missing = dict(good)
    del missing["1.g"]
    with pytest.raises(ValueError, match=r"state: expected the keys of this model; missing \['1.g'\]"):
        model.load_state_dict(missing)
    extra = {**good, "9.W": np.zeros(2)}
    with pytest.raises(ValueError, match=r"unexpected \['9.W'\]"):
        model.load_state_dict(extra)
    bad_shape = {**good, "0.W": np.zeros((4, 7), np.float32)}
    with pytest.raises(ValueError, match=r"state\['0.W'\]: expected shape \(4, 6\), got \(4, 7\)"):
        model.load_state_dict(bad_shape)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_to_backend_numpy_keeps_numpy_arrays():
    model = _stack().to_backend("numpy")
    assert all(isinstance(p, np.ndarray) for _, p, _ in model.named_parameters())
    assert backend.current() == "numpy"


@pytest.mark.gpu
def test_a_model_runs_the_same_on_cupy(rng):
    import cupy

    model = _randomize(_stack().astype(np.float64), rng)
    x = _x(rng, (5, 4))
    dy = rng.normal(size=(5, 3))
    y = model.forward(x)
    dx = model.backward(dy)
    try:
        model.to_backend("cupy")
        model.zero_grad()
        yc = model.forward(cupy.asarray(x))
        dxc = model.backward(cupy.asarray(dy))
        assert isinstance(yc, cupy.ndarray)
        np.testing.assert_allclose(yc.get(), y, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dxc.get(), dx, rtol=1e-10, atol=1e-12)
    finally:
        backend.use("numpy")


# --------------------------------------------------------------------------------------------------
# BatchNorm and WeightNormLinear specifics


@pytest.mark.parametrize("unbiased", [False, True])
def test_batchnorm_running_statistics_follow_the_ema_and_converge(unbiased, rng):
    mu, sigma = rng.normal(0, 3, 4), rng.uniform(0.5, 2, 4)
    bn = nn.BatchNorm(4, momentum=0.1, unbiased=unbiased, dtype=np.float64)
    rm, rv = np.zeros(4), np.ones(4)
    for step in range(300):
        x = rng.normal(mu, sigma, (32, 4))
        bn.forward(x)
        # the recursion, by hand: the population variance is estimated without bias
        rm = 0.9 * rm + 0.1 * x.mean(axis=0)
        rv = 0.9 * rv + 0.1 * x.var(axis=0, ddof=1)
        if step < 3:
            np.testing.assert_allclose(bn.buffers["running_mean"], rm, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(bn.buffers["running_var"], rv, rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], mu, atol=0.15 * sigma.max())
    np.testing.assert_allclose(bn.buffers["running_var"], sigma**2, rtol=0.2)


def test_batchnorm_eval_matches_the_affine_formula(rng):
    bn = _randomize(nn.BatchNorm(3, eps=1e-3, dtype=np.float64), rng)
    for _ in range(5):
        bn.forward(_x(rng, (8, 3)))
    bn.eval()
    x = _x(rng, (4, 3))
    rm, rv = bn.buffers["running_mean"], bn.buffers["running_var"]
    g, b = bn.params["g"], bn.params["b"]
    np.testing.assert_allclose(bn.forward(x), g * (x - rm) / np.sqrt(rv + 1e-3) + b, rtol=1e-13, atol=1e-13)
    before = rm.copy()
    bn.forward(x)
    np.testing.assert_array_equal(bn.buffers["running_mean"], before)  # eval does not update statistics
    np.testing.assert_allclose(bn.forward(x[:1]), bn.forward(x)[:1], rtol=1e-15)  # a batch of one is fine in eval


@pytest.mark.parametrize("init", ["xavier", "orthogonal", "he"])
def test_weightnormlinear_starts_with_the_initializer_draw(init):
    layer = nn.WeightNormLinear(6, 4, init=init, rng=11)
    draw = I.get(init)((6, 4), np.random.default_rng(11), np.float32)
    np.testing.assert_array_equal(layer.params["v"], draw)
    W, _ = F.weight_norm(layer.params["v"], layer.params["g"])
    np.testing.assert_allclose(W, draw, rtol=1e-6, atol=1e-7)
    x = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x), x @ draw, rtol=1e-5, atol=1e-6)
    # and a plain Linear with the same seed draws the same weights
    np.testing.assert_array_equal(nn.Linear(6, 4, init=init, rng=11).params["W"], draw)


def test_layer_defaults_follow_the_paper():
    # gains start at 1 and biases at 0 (section 6 of the paper)
    ln = nn.LayerNorm(5)
    np.testing.assert_array_equal(ln.params["g"], 1)
    np.testing.assert_array_equal(ln.params["b"], 0)
    assert ln.params["g"].dtype == np.float32
    assert "g" in nn.RMSNorm(3).params and "b" not in nn.RMSNorm(3).params
    assert "g" not in nn.LayerNorm(4, affine=False).params


def test_a_saved_cache_runs_the_backward_of_an_earlier_forward():
    """Module.cache: two forwards, then the first one's backward, as DRAW steps its layers."""
    rng = np.random.default_rng(3)
    layer = nn.LSTM(3, 5, ln="appendix", rng=0, dtype=np.float64)
    x1, x2, dout = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 5))
    layer.forward(x1)
    first = layer.cache
    layer.forward(x2)
    layer.cache = first
    dx_saved, _ = layer.backward(dout)
    layer.forward(x1)
    dx_direct, _ = layer.backward(dout)
    np.testing.assert_array_equal(dx_saved, dx_direct)
    layer.cache = None
    with pytest.raises(RuntimeError, match="call forward first"):
        layer.backward(dout)


@pytest.mark.parametrize("first", ["linear", "layernorm"])
def test_sequential_backward_without_the_input_gradient(rng, monkeypatch, first):
    """``Sequential.backward(dout, input_grad=False)``: returns ``None``; a first ``Linear`` skips the product for
    the input's gradient (its ``linear_backward`` is asked for none), a first module that cannot skip computes it
    and it is dropped; every parameter's gradient equals the one with the input's gradient."""
    def model():
        mods = [nn.Linear(6, 5, rng=np.random.default_rng(1), dtype=np.float64), nn.LayerNorm(5, dtype=np.float64),
                nn.ReLU(), nn.Linear(5, 3, rng=np.random.default_rng(2), dtype=np.float64)]
        return nn.Sequential(*(mods if first == "linear" else [nn.LayerNorm(6, dtype=np.float64)] + mods))

    x, dout = rng.normal(size=(4, 6)), rng.normal(size=(4, 3))
    grads = {}
    asked = []
    real = F.linear_backward
    monkeypatch.setattr(F, "linear_backward", lambda dy, c, **kw: asked.append(kw.get("input_grad", True))
                        or real(dy, c, **kw))
    for input_grad in (True, False):
        m = model()
        m.forward(x)
        m.zero_grad()
        dx = m.backward(dout, input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        grads[input_grad] = {name: g.copy() for name, _, g in m.named_parameters()}
    assert asked == [True, True, True, False] if first == "linear" else [True, True, True, True]
    assert grads[True].keys() == grads[False].keys()
    for name in grads[True]:
        np.testing.assert_array_equal(grads[True][name], grads[False][name])
