"""lnedu.optim: updates against the textbook formulas, clipping, decay, exact resumption, bad settings,
and a small end-to-end training run."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lnedu.functional as F
from lnedu import nn, optim
from lnedu.nn import save_npz_atomic


def _model(seed=0):
    return nn.Sequential(nn.Linear(3, 4, rng=seed, dtype=np.float64), nn.LayerNorm(4, dtype=np.float64))


def _run_with_given_grads(opt, model, grad_seq):
    """Set the gradients by hand before each step (so the reference needs no backprop)."""
    for grads in grad_seq:
        for k, _, g in model.named_parameters():
            g[...] = grads[k]
        opt.step()


def _grad_seq(model, rng, steps=3):
    return [{k: rng.normal(0, 1, p.shape) for k, p, _ in model.named_parameters()} for _ in range(steps)]


def _params(model):
    return {k: p.copy() for k, p, _ in model.named_parameters()}


# --------------------------------------------------------------------------------------------------
# updates against hand-computed references


def test_sgd_matches_the_formula(rng):
    model = _model()
    ref = _params(model)
    seq = _grad_seq(model, rng)
    _run_with_given_grads(optim.SGD(model, lr=0.3), model, seq)
    for grads in seq:
        for k in ref:
            ref[k] = ref[k] - 0.3 * grads[k]
    for k, p, _ in model.named_parameters():
        np.testing.assert_allclose(p, ref[k], rtol=1e-14, atol=1e-15)


def test_sgd_momentum_matches_the_formula(rng):
    model = _model()
    ref, vel = _params(model), {k: 0.0 for k in _params(model)}
    seq = _grad_seq(model, rng)
    opt = optim.SGD([model], lr=0.2, momentum=0.9)
    _run_with_given_grads(opt, model, seq)
    for grads in seq:
        for k in ref:
            vel[k] = 0.9 * vel[k] - 0.2 * grads[k]
            ref[k] = ref[k] + vel[k]
    for k, p, _ in model.named_parameters():
        np.testing.assert_allclose(p, ref[k], rtol=1e-14, atol=1e-15)
    assert opt.t == 3


def test_adam_matches_the_formula(rng):
    model = _model()
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-6
    ref = _params(model)
    m = {k: 0.0 for k in ref}
    v = {k: 0.0 for k in ref}
    seq = _grad_seq(model, rng)
    _run_with_given_grads(optim.Adam(model, lr=lr, betas=(b1, b2), eps=eps), model, seq)
    for t, grads in enumerate(seq, start=1):
        for k in ref:
            g = grads[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            ref[k] = ref[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    for k, p, _ in model.named_parameters():
        np.testing.assert_allclose(p, ref[k], rtol=1e-12, atol=1e-14)


def test_exponential_lr_decay(rng):
    model = _model()
    ref = _params(model)
    seq = _grad_seq(model, rng)
    opt = optim.SGD(model, lr=0.5, lr_decay=0.25)
    assert opt.lr == 0.5
    _run_with_given_grads(opt, model, seq)
    assert opt.lr == pytest.approx(0.5 * math.exp(-0.25 * 3), rel=1e-15)
    for t, grads in enumerate(seq):  # step t (from 0) uses lr * exp(-decay * t)
        for k in ref:
            ref[k] = ref[k] - 0.5 * math.exp(-0.25 * t) * grads[k]
    for k, p, _ in model.named_parameters():
        np.testing.assert_allclose(p, ref[k], rtol=1e-14, atol=1e-15)


# --------------------------------------------------------------------------------------------------
# clipping


def test_clip_grad_norm_scales_to_the_global_norm_and_keeps_the_direction(rng):
    grads = [rng.normal(0, 3, (3, 4)), rng.normal(0, 3, 5)]
    before = [g.copy() for g in grads]
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    assert optim.global_norm(grads) == pytest.approx(norm, rel=1e-14)
    returned = optim.clip_grad_norm(grads, max_norm=1.5)
    assert returned == pytest.approx(norm, rel=1e-14)  # the norm before clipping
    assert optim.global_norm(grads) == pytest.approx(1.5, rel=1e-9)
    ratio = grads[0].ravel()[0] / before[0].ravel()[0]
    for g, b in zip(grads, before):
        np.testing.assert_allclose(g, ratio * b, rtol=1e-14)  # one common factor: direction kept
    # under the threshold nothing changes
    small = [g.copy() for g in grads]
    assert optim.clip_grad_norm(small, max_norm=10.0) == pytest.approx(1.5, rel=1e-9)
    for g, b in zip(small, grads):
        np.testing.assert_array_equal(g, b)


def test_optimizer_clip_option_clips_before_the_update(rng):
    model = _model()
    ref = _params(model)
    seq = _grad_seq(model, rng, steps=1)
    opt = optim.SGD(model, lr=0.1, clip=0.5)
    _run_with_given_grads(opt, model, seq)
    norm = math.sqrt(sum(float((g * g).sum()) for g in seq[0].values()))
    assert norm > 0.5 and opt.last_grad_norm == pytest.approx(norm, rel=1e-14)
    for k, p, _ in model.named_parameters():
        np.testing.assert_allclose(p, ref[k] - 0.1 * seq[0][k] * (0.5 / norm), rtol=1e-9, atol=1e-12)


def test_last_grad_norm_is_the_norm_the_step_computed_clipped_or_not(rng):
    """Without clipping, the NaN check's norm is kept too (a run logs it instead of a second pass over the
    gradients): the norm of the gradients the step used, the same float as global_norm gives; with neither
    clipping nor the check the step computes no norm and says so with None."""
    model = _model()
    seq = _grad_seq(model, rng, steps=2)
    opt = optim.Adam(model, lr=0.01)
    _run_with_given_grads(opt, model, seq)
    last = [seq[-1][k] for k, _, _ in model.named_parameters()]
    assert opt.last_grad_norm == optim.global_norm(last)
    assert opt.last_grad_norm == pytest.approx(math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in last)),
                                               rel=1e-12)
    unchecked = optim.SGD(_model(), lr=0.1, error_if_nonfinite=False)
    _run_with_given_grads(unchecked, unchecked.modules[0], _grad_seq(unchecked.modules[0], rng, steps=1))
    assert unchecked.last_grad_norm is None


# --------------------------------------------------------------------------------------------------
# exact resumption


def _batches(seed, n=5):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(6, 3)), rng.integers(0, 4, 6)) for _ in range(n)]


def _train(model, opt, batches):
    for x, t in batches:
        _, cache = F.softmax_cross_entropy(model.forward(x), t)
        opt.zero_grad()
        model.backward(F.softmax_cross_entropy_backward(1.0, cache))
        opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda m: optim.Adam(m, lr=0.05, lr_decay=0.1),
    lambda m: optim.SGD(m, lr=0.1, momentum=0.9, clip=1.0),
], ids=["adam-decay", "sgd-momentum-clip"])
def test_state_dict_resumes_to_identical_parameters(make_opt, tmp_path):
    batches = _batches(3)
    straight = _model(1)
    _train(straight, make_opt(straight), batches)

    first = _model(1)
    opt = make_opt(first)
    _train(first, opt, batches[:2])
    first.save(tmp_path / "model.npz")
    save_npz_atomic(tmp_path / "opt.npz", opt.state_dict())

    resumed = _model(7)  # different starting weights: everything must come from the files
    opt2 = make_opt(resumed)
    resumed.load(tmp_path / "model.npz")
    with np.load(tmp_path / "opt.npz") as z:
        opt2.load_state_dict({k: z[k] for k in z.files})
    assert opt2.t == 2 and opt2.lr == opt.lr
    _train(resumed, opt2, batches[2:])
    for (k, p, _), (k2, p2, _) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert k == k2
        np.testing.assert_array_equal(p2, p)


def test_optimizer_load_state_dict_rejects_foreign_state():
    model = _model()
    opt = optim.Adam(model)
    _train(model, opt, _batches(0, 1))
    state = opt.state_dict()
    with pytest.raises(ValueError, match=r"state\['m:0/9.W'\]"):
        optim.Adam(_model()).load_state_dict({**state, "m:0/9.W": np.zeros(3)})
    with pytest.raises(ValueError, match=r"state\['v:0/0.W'\]: expected shape \(3, 4\)"):
        optim.Adam(_model()).load_state_dict({**state, "v:0/0.W": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="state: expected the key 't'"):
        optim.Adam(_model()).load_state_dict({k: v for k, v in state.items() if k != "t"})


# --------------------------------------------------------------------------------------------------
# bad settings


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(lr=0.0), ValueError, "lr: expected a finite number > 0"),
    (dict(lr=-0.1), ValueError, "lr:"),
    (dict(lr=float("nan")), ValueError, "lr:"),
    (dict(lr=float("inf")), ValueError, "lr:"),
    (dict(lr="0.1"), TypeError, "lr: expected a positive real number, got str"),
    (dict(momentum=-0.1), ValueError, r"momentum: expected a number in \[0, 1\)"),
    (dict(momentum=1.0), ValueError, "momentum:"),
    (dict(momentum="high"), TypeError, "momentum:"),
    (dict(clip=0.0), ValueError, "clip:"),
    (dict(clip=-1.0), ValueError, "clip:"),
    (dict(lr_decay=-0.5), ValueError, "lr_decay:"),
])
def test_sgd_rejects_bad_settings(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        optim.SGD(_model(), **kwargs)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(betas=(0.9,)), ValueError, r"betas: expected a pair"),
    (dict(betas=0.9), ValueError, r"betas: expected a pair"),
    (dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]: expected a number in \[0, 1\)"),
    (dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\]:"),
    (dict(betas=(0.9, "x")), TypeError, r"betas\[1\]:"),
    (dict(eps=0.0), ValueError, "eps:"),
    (dict(lr=0), ValueError, "lr:"),
    (dict(clip=0), ValueError, "clip:"),
])
def test_adam_rejects_bad_settings(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        optim.Adam(_model(), **kwargs)


def test_bad_modules_and_max_norm():
    with pytest.raises(TypeError, match="modules: expected an lnedu.nn.Module"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="modules:"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="max_norm:"):
        optim.clip_grad_norm([np.ones(3)], max_norm=0.0)


# --------------------------------------------------------------------------------------------------
# end to end


def test_a_small_mlp_with_layer_norm_learns(rng):
    n, d, k = 96, 8, 3
    centers = rng.normal(0, 2.0, (k, d))
    t = rng.integers(0, k, n)
    x = (centers[t] + rng.normal(0, 1.0, (n, d))).astype(np.float32)
    model = nn.Sequential(nn.Linear(d, 16, rng=0), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, k, rng=1))
    opt = optim.Adam(model, lr=0.01)
    losses = []
    for _ in range(200):
        loss, cache = F.softmax_cross_entropy(model.forward(x), t)
        losses.append(loss)
        opt.zero_grad()
        model.backward(F.softmax_cross_entropy_backward(1.0, cache))
        opt.step()
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    assert all(p.dtype == np.float32 for _, p, _ in model.named_parameters())


def test_global_norm_of_float32_gradients_adds_in_float64():
    """The squares are summed in float64 (as a host sum of Python floats would be), not in float32."""
    rng = np.random.default_rng(8)
    grads = [(rng.standard_normal(n) * s).astype(np.float32) for n, s in ((1000, 1e3), (3, 1e-3), (77, 1.0))]
    want = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    assert optim.global_norm(grads) == want


# --------------------------------------------------------------------------------------------------
# issue 20 item 6: a NaN/inf gradient stops the step with a message instead of spreading silently


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("make_opt", [lambda m: optim.SGD(m, lr=0.1), lambda m: optim.SGD(m, lr=0.1, momentum=0.9),
                                      lambda m: optim.Adam(m, lr=0.01), lambda m: optim.Adam(m, lr=0.01, clip=1.0)])
def test_a_nonfinite_gradient_is_refused_and_nothing_is_updated(make_opt, bad, rng):
    model = _model()
    opt = make_opt(model)
    seq = _grad_seq(model, rng, steps=1)
    _run_with_given_grads(opt, model, seq)  # one good step: buffers exist
    before = _params(model)
    names = [k for k, _, _ in model.named_parameters()]
    for _, _, g in model.named_parameters():
        g[...] = rng.normal(size=g.shape)
    dict((k, g) for k, _, g in model.named_parameters())[names[1]].ravel()[2] = bad
    # before: SGD/Adam wrote NaN/inf into the parameters (or clipping made the gradient 0), silently
    msg = rf"^grads: expected finite gradients, got a global norm of .* in '0/{names[1]}'"
    with pytest.raises(ValueError, match=msg):
        opt.step()
    for k, p, _ in model.named_parameters():
        np.testing.assert_array_equal(p, before[k])
    assert opt.t == 1


def test_error_if_nonfinite_false_goes_on_like_pytorch(rng):
    model = _model()
    opt = optim.SGD(model, lr=0.1, error_if_nonfinite=False)
    for _, _, g in model.named_parameters():
        g[...] = rng.normal(size=g.shape)
    next(iter(model.named_parameters()))[2].ravel()[0] = np.nan
    opt.step()
    assert np.isnan(next(iter(model.named_parameters()))[1].ravel()[0])
    with pytest.raises(TypeError, match="^error_if_nonfinite: expected True or False"):
        optim.Adam(model, error_if_nonfinite=1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_with_a_nonfinite_norm(bad, rng):
    grads = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    grads[1][3] = bad
    keep = [g.copy() for g in grads]
    # before: an inf norm scaled every finite entry to 0 and the inf to NaN, silently
    with pytest.raises(ValueError, match="^grads: expected finite gradients, got a global norm of (nan|inf)"):
        optim.clip_grad_norm(grads, 1.0)
    for g, k in zip(grads, keep):
        np.testing.assert_array_equal(g, k)  # untouched
    # opting out gives PyTorch's default behaviour (error_if_nonfinite=False): scaled by max_norm / (norm + eps)
    with np.errstate(invalid="ignore"):
        norm = optim.clip_grad_norm(grads, 1.0, error_if_nonfinite=False)
    assert math.isnan(norm) if np.isnan(bad) else norm == math.inf
    assert np.isnan(grads[1][3])
    if np.isinf(bad):
        np.testing.assert_array_equal(grads[0], 0.0)


def test_a_huge_but_finite_float32_gradient_is_clipped_not_refused(rng):
    grads = [(rng.normal(size=(4, 8)) * 1e20).astype(np.float32), rng.normal(size=3).astype(np.float32)]
    want = math.sqrt(sum(float(np.vdot(g.astype(np.float64), g.astype(np.float64))) for g in grads))
    norm = optim.clip_grad_norm(grads, 2.0)  # the float32 squares overflow; the norm must not
    assert norm == pytest.approx(want, rel=1e-12)
    assert optim.global_norm(grads) == pytest.approx(2.0, rel=1e-5)


def test_adam_refuses_state_missing_buffers():
    rng = np.random.default_rng(1)
    model = nn.Linear(3, 2, rng=rng, dtype=np.float64)
    opt = optim.Adam(model, lr=1e-2)
    model.grads["W"][...] = rng.normal(size=(3, 2))
    opt.step()
    state = opt.state_dict()
    only_m = {k: v for k, v in state.items() if not k.startswith("v:")}
    with pytest.raises(ValueError, match="expected a 'v' buffer for every parameter after 1 steps"):
        optim.Adam(model, lr=1e-2).load_state_dict(only_m)
    optim.Adam(model, lr=1e-2).load_state_dict(state)  # the complete state still loads
