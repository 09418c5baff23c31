"""Handwriting generation (LN §6.5): stroke data, the mixture density loss and sampler, the model, the experiment."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from lnedu.data import DataUnavailable
from lnedu.data.handwriting import (
    ALPHABET,
    encode_text,
    load_handwriting,
    load_iam_ondb,
    load_synthetic_handwriting,
    offsets_to_strokes,
    one_hot_text,
    parse_strokes_xml,
    read_transcriptions,
    strokes_to_offsets,
    synthetic_lines,
    synthetic_lines_with_text,
)
from lnedu.experiments import handwriting as hw
from lnedu.experiments.runner import RunResult, load_task, run_one
from lnedu.functional.mdn import mdn_components, mdn_nll, mdn_nll_backward, mdn_params, mdn_sample, mdn_size
from lnedu.functional.window import char_window, char_window_backward
from lnedu.gradcheck import check_function, check_gradients, check_module

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


def _write_ascii(path, lines):
    """A transcription file in IAM-OnDB's layout: the OCR text, then the ``CSR:`` lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("OCR:\n\nsomething else\n\nCSR:\n\n" + "\n".join(lines) + "\n", encoding="latin-1")


def test_transcriptions_pair_each_stroke_file_with_its_line_of_text(tmp_path, rng):
    root = tmp_path / "iam"
    texts = {"a01-000": ["A MOVE to stop", "Mr. Gaitskell from"], "b02-010": ["nominating any", "more Labour"]}
    for form, lines in texts.items():
        _write_ascii(root / "ascii" / form[:3] / form / f"{form}u.txt", lines)
        for i in range(len(lines) + (form == "a01-000")):  # a01-000u-03 has strokes but no text
            strokes = [np.cumsum(rng.integers(-40, 40, size=(6, 2)), axis=0) + 1000]
            _write_xml(root / "lineStrokes" / form[:3] / form / f"{form}u-{i + 1:02d}.xml", strokes)
    got = read_transcriptions(root)
    assert got == {"a01-000u-01": "A MOVE to stop", "a01-000u-02": "Mr. Gaitskell from",
                   "b02-010u-01": "nominating any", "b02-010u-02": "more Labour"}
    assert read_transcriptions(root / "ascii") == got
    d = load_iam_ondb(root, test_fraction=0.5, seed=0, need_text=True)
    assert len(d.train) + len(d.test) == 4 and "4 with their text" in d.description  # the line without text left
    pairs = list(zip(d.train + d.test, d.train_text + d.test_text))
    assert sorted(t for _, t in pairs) == sorted(got.values())
    d2 = load_iam_ondb(root / "lineStrokes", test_fraction=0.5, seed=0)  # the lineStrokes folder itself
    assert len(d2.train) + len(d2.test) == 5 and sum(t is None for t in d2.train_text + d2.test_text) == 1
    (root / "ascii" / "a01" / "a01-000" / "a01-000u.txt").write_text("no marker", encoding="latin-1")
    with pytest.raises(ValueError, match="a01-000u.txt has none"):
        read_transcriptions(root)


def test_text_is_one_hot_over_57_symbols():
    assert len(ALPHABET) == 57 and len(set(ALPHABET)) == 57
    np.testing.assert_array_equal(encode_text("Ab z#"), [ALPHABET.index(c) if c != "#" else 0 for c in "Ab z#"])
    c = one_hot_text(["ab", "hello"])
    assert c.shape == (2, 5, 57) and c.dtype == np.float32
    np.testing.assert_array_equal(c.sum(-1), [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])  # zeros after a text's end
    assert c[1, 4, ALPHABET.index("o")] == 1
    lines, texts = synthetic_lines_with_text(3, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(lines, synthetic_lines(3, seed=2)))
    for line, text in zip(lines, texts):  # each word is one pen-down stroke, dots and bars added after it
        words = text.split(" ")
        assert set(text) <= set("acehilnortu ")
        assert int(line[:, 2].sum()) == len(words) + sum(w.count("i") + w.count("t") for w in words)


def test_missing_iam_ondb_is_a_clear_error_and_auto_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataUnavailable, match="iam-ondb: IAM-OnDB .* needs a free registration.* --data PATH"):
        load_iam_ondb(tmp_path / "nowhere")
    with pytest.raises(DataUnavailable, match=r"not found in .*cache.iam-ondb"):
        load_handwriting("iam")
    root = tmp_path / "strokes-only"
    _write_xml(root / "lineStrokes" / "a01" / "a01-000" / "a01-000u-01.xml", [[(1, 2), (3, 4)]])
    with pytest.raises(DataUnavailable, match="ascii"):  # the synthesis network needs the text
        load_handwriting("iam", root, need_text=True)
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


def _window_inputs(rng, B, K, U, V):
    p_hat = 0.5 * rng.standard_normal((B, 3 * K))
    p_hat[:, 2 * K:] -= 0.5  # steps of about 0.6 characters
    kappa_prev = rng.uniform(0, U, size=(B, K))
    chars = rng.standard_normal((B, U, V))  # any values: the backward must not assume one-hot
    return p_hat, kappa_prev, chars


@pytest.mark.parametrize("B, K, U, V", [(1, 1, 1, 1), (3, 2, 5, 4), (2, 4, 9, 6)])
def test_char_window_gradient_check(rng, B, K, U, V):
    p_hat, kappa_prev, chars = _window_inputs(rng, B, K, U, V)
    w, kappa, cache = char_window(p_hat, kappa_prev, chars)
    Rw, Rk = rng.standard_normal(w.shape), rng.standard_normal(kappa.shape)
    dp, dk = char_window_backward(Rw, Rk, cache)

    def loss():
        w, kappa, _ = char_window(p_hat, kappa_prev, chars)
        return float((w * Rw).sum() + (kappa * Rk).sum())

    rep = check_gradients(loss, {"p_hat": p_hat, "kappa_prev": kappa_prev}, {"p_hat": dp, "kappa_prev": dk})
    assert rep.max_rel_error < 1e-7, str(rep)
    dp0, dk0 = char_window_backward(Rw, None, cache)  # dkappa=None: no gradient from the next step
    np.testing.assert_allclose(dk0 + Rk, dk)


def test_char_window_is_graves_eq_46_to_51_written_out(rng):
    B, K, U, V = 2, 3, 6, 5
    p_hat, kappa_prev, chars = _window_inputs(rng, B, K, U, V)
    w, kappa, cache = char_window(p_hat, kappa_prev, chars)
    for b in range(B):
        alpha, beta = np.exp(p_hat[b, :K]), np.exp(p_hat[b, K: 2 * K])
        kap = kappa_prev[b] + np.exp(p_hat[b, 2 * K:])
        phi = [sum(alpha[k] * math.exp(-beta[k] * (kap[k] - u) ** 2) for k in range(K)) for u in range(1, U + 1)]
        np.testing.assert_allclose(kappa[b], kap, rtol=1e-14)
        np.testing.assert_allclose(cache.phi[b], phi, rtol=1e-12)
        np.testing.assert_allclose(w[b], sum(phi[u] * chars[b, u] for u in range(U)), rtol=1e-12)
    with pytest.raises(ValueError, match="p_hat: expected shape"):
        char_window(p_hat[:, :-1], kappa_prev, chars)
    with pytest.raises(ValueError, match="chars: expected shape"):
        char_window(p_hat, kappa_prev, chars[:1])
    with pytest.raises(TypeError, match="chars: expected dtype"):
        char_window(p_hat, kappa_prev, chars.astype(np.float32))


def _model_check(model, x, chars, rng):
    """Float64 finite differences of ``sum(R * model(x, chars))`` against backward, every parameter and x.
    Step 1e-6: the window's exponentials curve the loss enough that the central difference's truncation error
    reaches 2e-7 at the default 1e-5 in one case (it falls as h^2, so it is not the gradient's)."""
    out = model.forward(x, chars=chars)
    R = rng.standard_normal(out.shape)
    model.zero_grad()
    dx = model.backward(R)
    named = list(model.named_parameters())
    analytic = {k: g.copy() for k, _, g in named} | {"input": dx}
    arrays = {k: p for k, p, _ in named} | {"input": x}
    return check_gradients(lambda: float((model.forward(x, chars=chars) * R).sum()), arrays, analytic, h=1e-6)


@pytest.mark.parametrize("variant, layers", [("baseline", 1), ("ln", 1), ("baseline", 3), ("ln", 2)])
def test_model_gradient_check(rng, variant, layers):
    """The synthesis network, through the window's recurrence with layer 1 and into every layer above (an
    alphabet of 5 keeps the finite differences quick; the 57 of the presets is checked below)."""
    model = hw.HandwritingModel(3, layers, 2, window=2, alphabet=5, ln=None if variant == "baseline" else "appendix",
                                rng=rng, dtype=np.float64)
    for _, p, _ in model.named_parameters():  # away from the initial values (gains of 1, biases of 0)
        p += 0.1 * rng.standard_normal(p.shape)
    x = rng.standard_normal((4, 2, 3))
    x[..., 2] = rng.random((4, 2)) < 0.3
    chars = np.zeros((2, 3, 5))
    chars[0, [0, 1, 2], rng.integers(0, 5, 3)] = 1
    chars[1, [0, 1], rng.integers(0, 5, 2)] = 1  # a shorter text: zeros after its end
    rep = _model_check(model, x, chars, rng)
    assert rep.max_rel_error < 1e-7, str(rep)
    names = [k for k, _, _ in model.named_parameters()]
    assert sum(k.startswith("rnn") and k.endswith("W_x") for k in names) == layers and "window.W" in names
    assert model.window.params["W"].shape == (3, 6) and model.out.params["W"].shape == (layers * 3, mdn_size(2))
    built = hw.build_model(dataclasses.replace(hw.PRESETS["tiny"], hidden=3, layers=layers), variant, 0)
    assert built.rnns[0].params["W_x"].shape[0] == 3 + 57 and built.K == 10
    assert all(r.params["W_x"].shape[0] == 3 + 3 + 57 for r in built.rnns[1:])


def test_the_window_reads_the_text(rng):
    """The output depends on the text, the text of one sequence moves only that sequence's output, and a
    forward carried on from a state equals one forward over the whole sequence (the generation path)."""
    model = hw.build_model(hw.PRESETS["tiny"], "ln", 0).astype(np.float64)
    x = rng.standard_normal((6, 2, 3))
    a = model.forward(x, chars=one_hot_text(["hello", "tea"], dtype=np.float64))
    b = model.forward(x, chars=one_hot_text(["hello", "cat"], dtype=np.float64))
    assert np.abs(a[:, 0] - b[:, 0]).max() < 1e-12 < np.abs(a[:, 1] - b[:, 1]).max()
    chars = one_hot_text(["hello", "tea"], dtype=np.float64)
    first = model.forward(x[:4], chars=chars)
    rest = model.forward(x[4:], model.state, chars=chars)
    np.testing.assert_allclose(np.concatenate([first, rest]), a, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="chars: expected the one-hot text"):
        model.forward(x)


def test_synthesis_network_runs_on_every_backend(xp, rng):
    """The same outputs and gradients from device arrays as from host arrays (cupy where a GPU is)."""
    from lnedu.backend import to_numpy

    cfg = dataclasses.replace(hw.PRESETS["tiny"], layers=2)
    host = hw.build_model(cfg, "ln", 3).astype(np.float64)
    dev = hw.build_model(cfg, "ln", 3).astype(np.float64)
    if xp is not np:
        dev.to_backend()
    x = rng.standard_normal((5, 2, 3))
    chars = one_hot_text(["tea", "cut in"], dtype=np.float64)
    R = rng.standard_normal((5, 2, mdn_size(cfg.components)))
    out_h = host.forward(x, chars=chars)
    out_d = dev.forward(xp.asarray(x), chars=xp.asarray(chars))
    np.testing.assert_allclose(to_numpy(out_d), out_h, rtol=1e-10, atol=1e-12)
    dx_h, dx_d = host.backward(R), dev.backward(xp.asarray(R))
    np.testing.assert_allclose(to_numpy(dx_d), dx_h, rtol=1e-9, atol=1e-12)
    for (k, _, g), (_, _, gd) in zip(host.named_parameters(), dev.named_parameters()):
        np.testing.assert_allclose(to_numpy(gd), g, rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("variant, layers", [("baseline", 1), ("ln", 2)])
def test_unconditional_model_gradient_check(rng, variant, layers):
    """``window=False``: Graves's §4 prediction network, no text."""
    cfg = dataclasses.replace(hw.PRESETS["tiny"], hidden=3, layers=layers, components=2, window=False)
    model = hw.build_model(cfg, variant, rng).astype(np.float64)
    x = rng.standard_normal((3, 2, 3))
    x[..., 2] = rng.random((3, 2)) < 0.3
    rep = check_module(model, x, seed=layers)
    assert rep.max_rel_error < 1e-7, str(rep)
    assert model.rnns[0].params["W_x"].shape[0] == 3
    assert not any(k.startswith("window") for k, _, _ in model.named_parameters())
    whole = model.forward(x)
    first = model.forward(x[:2])
    assert isinstance(model.state, list) and len(model.state) == layers  # the per-layer states, as before
    np.testing.assert_allclose(np.concatenate([first, model.forward(x[2:], model.state)]), whole, rtol=1e-12)


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
    texts = ["a", "bb", "ccc", "dddd"]
    xs, ys, mask, chars = hw.sample_batch(lines, 3, 8, seed=1, step=7, texts=texts)  # the synthesis network's
    assert np.array_equal(hw.sample_batch(lines, 3, 8, seed=1, step=7)[0].shape, xs.shape)
    for b in range(3):  # every window starts at its line's first point, with that line's text
        n = int(chars[b].sum())
        line = lines[texts.index("abcd"[int(np.argmax(chars[b, 0])) - ALPHABET.index("a")] * n)]
        np.testing.assert_array_equal(xs[: min(8, len(line)), b], line[:8])


def test_flops_per_update_is_the_hand_count():
    cfg = dataclasses.replace(hw.PRESETS["tiny"], layers=2)  # H 16, M 3, T 20, B 8, K 10, V 57
    task = hw.build(cfg, "ln", 0)
    U = np.mean([len(t) for t in task.data.train_text])
    H, V = 16, 57
    layer1 = 2 * 60 * 64 + 2 * 16 * 64  # [x, w] W_x and h W_h, 4H = 64 columns
    layer2 = 2 * (3 + 16 + 57) * 64 + 2 * 16 * 64
    out = 2 * 32 * 19  # [h1, h2] W_out: 2H rows, 1 + 6M = 19 columns
    window = 2 * H * 30 + 2 * U * V  # Eq. 48's map to 3K, Eq. 47's sum over the U characters
    assert task.flops_per_update() == pytest.approx(3 * 20 * 8 * (layer1 + layer2 + out + window), rel=1e-12)
    assert task.examples_per_update == 8
    plain = hw.build(dataclasses.replace(cfg, window=False), "baseline", 0)
    assert plain.flops_per_update() == 3 * 20 * 8 * (2 * 3 * 64 + 2 * 16 * 64 + layer2 - 2 * 57 * 64 + out)


def test_standin_has_the_real_sets_shapes_and_the_paper_preset_needs_the_real_set(tmp_path, monkeypatch):
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path))
    paper = hw.PRESETS["paper"]
    stand = hw.standin(paper)
    assert dataclasses.replace(stand, data=paper.data) == paper and stand.data == "standin"
    d = load_handwriting("standin", n_train=6, n_test=2)
    assert d.name == "standin" and 500 < d.lengths[0] < 1000 and 12 < np.mean([len(t) for t in d.train_text]) < 30
    with pytest.raises(DataUnavailable, match="iam-ondb: .* --data PATH"):
        hw.load_data(dataclasses.replace(paper, data_path=str(tmp_path / "empty")))


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
    a = hw.generate(model, 30, 5, batch=2, text="hello")
    b = hw.generate(model, 30, 5, batch=2, text="hello")
    assert a.shape == (30, 2, 3) and np.isfinite(a).all() and set(np.unique(a[..., 2])) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, hw.generate(model, 30, 6, batch=2, text="hello"))
    with pytest.raises(ValueError, match="text: expected the string to write"):
        hw.generate(model, 3, 5)
    plain = hw.build_model(dataclasses.replace(hw.PRESETS["tiny"], window=False), "ln", rng)
    assert hw.generate(plain, 4, 5).shape == (4, 1, 3)
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
    assert exp is hw and set(exp.PRESETS) == {"tiny", "small", "medium", "paper"} and len(exp.SEEDS["medium"]) >= 3
    paper = exp.PRESETS["paper"]
    assert (paper.hidden, paper.layers, paper.components, paper.seq_len, paper.batch_size) == (400, 3, 20, 500, 8)
    assert paper.window and paper.window_gaussians == 10 and paper.data == "iam"
    # Graves's synthesis network at the paper's size: "about 3.7M weights" (LN §6.5)
    assert 3.6e6 < hw.build_model(paper, "baseline", 0).num_parameters() < 3.75e6
