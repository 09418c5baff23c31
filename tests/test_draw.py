"""DRAW: the loss pieces, the whole model's gradient through time, training, resume, generation, verdict."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lnedu.experiments import draw
from lnedu.experiments.runner import RunResult, run_one
from lnedu.functional import attention as att
from lnedu.gradcheck import check_gradients


def _model(rng, *, attention, cell, shape=(4, 5), steps=3, hidden=3, latent=2):
    m = draw.DRAW(shape, steps=steps, hidden=hidden, latent=latent, read_size=2, write_size=3, attention=attention,
                  cell=cell, rng=rng, dtype=np.float64)
    for _, p, _ in m.named_parameters():  # move every parameter off its initial value (zeros, ones, unit norms)
        p += rng.normal(0, 0.3, p.shape)
    return m


# ---- the loss pieces (lnedu.functional.vae; their gradient checks are in tests/test_functional_vae.py) --------------


def test_draw_uses_the_functional_loss_pieces():
    from lnedu.functional import vae

    for name in ("bernoulli_nll", "bernoulli_nll_backward", "gaussian_kl", "gaussian_kl_backward", "reparameterize",
                 "reparameterize_backward"):
        assert getattr(draw, name) is getattr(vae, name), name  # the old names still import, for one release


# ---- the whole model -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention, cell", [(True, "baseline"), (True, "ln"), (True, "normprop"), (False, "ln")])
def test_whole_model_gradient(attention, cell, rng):
    shape = (4, 5) if attention else (3, 4)
    m = _model(rng, attention=attention, cell=cell, shape=shape)
    n = 2
    x = (rng.random((n, shape[0] * shape[1])) < 0.4).astype(np.float64)
    eps = rng.standard_normal((m.steps, n, m.latent))
    bound = m.forward(x, eps)
    assert np.isclose(bound.total, bound.reconstruction + bound.kl) and bound.kl > 0
    m.zero_grad()
    m.backward()
    named = list(m.named_parameters())
    assert {k for k, _, _ in named} >= {"W_mu", "W_sigma", "W_write", "enc.W_x", "dec.W_h"}
    assert ("W_read" in m.params) == attention and ("W_write_window" in m.params) == attention
    rep = check_gradients(lambda: m.forward(x, eps).total, {k: p for k, p, _ in named},
                          {k: g.copy() for k, _, g in named})
    assert rep.max_rel_error < 1e-7, rep


def test_forward_is_deterministic_given_the_noise_and_backward_needs_forward(rng):
    m = _model(rng, attention=True, cell="ln")
    x = (rng.random((3, 20)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((3, 3, 2))
    assert m.forward(x, eps) == m.forward(x, eps)
    assert m.forward(x, eps) != m.forward(x, eps + 0.1)
    m.backward()
    with pytest.raises(RuntimeError, match="call forward first"):
        m.backward()


def test_initial_windows_tile_the_image():
    m = draw.DRAW((8, 8), steps=2, hidden=4, latent=2, read_size=2, write_size=4)
    for N, b in ((2, m.params["b_read"]), (4, m.params["b_write_window"])):
        (Fx, Fy, gamma), cache = att.filterbank(b[None].astype(np.float64), N, 8, 8)
        centres = 1 - cache.dist_x[0, :, 0]  # mu_i, from the distances a - mu_i at column a = 1
        tiles = (np.arange(N) + 0.5) * 8 / N + 0.5  # centres of N equal tiles, 1-based
        np.testing.assert_allclose(centres, tiles, rtol=1e-6)
        np.testing.assert_allclose(np.sqrt(cache.sigma2[0]), 8 / N / 2, rtol=1e-6)  # sigma = half a tile
    x = np.random.default_rng(0).random((1, 64)).astype(np.float32)
    # the write's gamma makes a constant patch paint a roughly constant unit canvas
    patch, _ = m._write(np.zeros((1, 4), dtype=np.float32))  # h = 0: patch = b_write = 0
    assert float(np.abs(patch).max()) == 0.0
    (Fx, Fy, gamma), _ = att.filterbank(m.params["b_write_window"][None].astype(np.float64), 4, 8, 8)
    canvas, _ = att.write_attention(np.ones((1, 4, 4)), Fx, Fy, gamma)
    assert 0.6 < canvas.mean() < 1.4, canvas.mean()
    assert x.shape == (1, 64)


def test_generate_shapes_and_windows(rng):
    m = draw.DRAW((6, 7), steps=4, hidden=5, latent=3, read_size=2, write_size=3, cell="ln", rng=1)
    canvases, windows = m.generate(3, rng=0, return_windows=True)
    assert canvases.shape == (4, 3, 6, 7) and windows.shape == (4, 3, 3)
    assert canvases.min() >= 0 and canvases.max() <= 1
    np.testing.assert_array_equal(canvases, m.generate(3, rng=0))  # the same prior draws, the same images
    plain = draw.DRAW((6, 7), steps=4, hidden=5, latent=3, attention=False, rng=1)
    c2, w2 = plain.generate(2, rng=0, return_windows=True)
    assert c2.shape == (4, 2, 6, 7) and w2 is None


def test_reconstruct_ends_on_the_canvas_the_bound_scores(rng):
    m = _model(rng, attention=True, cell="baseline")
    x = (rng.random((3, 20)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((3, 3, 2))
    seq, windows = m.reconstruct(x, eps, return_windows=True)
    assert seq.shape == (3, 3, 4, 5) and windows.shape == (3, 3, 3)
    np.testing.assert_array_equal(seq, m.reconstruct(x, eps))
    p = seq[-1].reshape(3, 20)
    nll = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1).mean()
    assert nll == pytest.approx(m.forward(x, eps).reconstruction, rel=1e-10)
    assert not np.allclose(seq[0], seq[-1])


def test_bad_input():
    m = draw.DRAW((4, 5), steps=2, hidden=3, latent=2)
    x = np.zeros((2, 20), dtype=np.float32)
    with pytest.raises(ValueError, match=r"x: expected rows of 20 pixels"):
        m.forward(np.zeros((2, 21), dtype=np.float32), np.zeros((2, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"eps: expected shape \(2, 2, 2\)"):
        m.forward(x, np.zeros((3, 2, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="x: expected a floating-point array"):
        m.forward(np.zeros((2, 20), dtype=np.int64), np.zeros((2, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="cell: expected one of"):
        draw.DRAW((4, 5), cell="bn")
    with pytest.raises(ValueError, match="image_shape: expected"):
        draw.DRAW((20,))
    with pytest.raises(ValueError, match="binarization: expected"):
        draw.binarized_digits("digits", "otsu")
    with pytest.raises(ValueError, match="variant: expected one of"):
        draw.build(draw.PRESETS["tiny"], "bn", 0)


# ---- training, resume ------------------------------------------------------------------------------------------

CFG = dataclasses.replace(draw.PRESETS["tiny"], epochs=2)


def test_binarized_digits_are_binary():
    data = draw.binarized_digits("digits", "threshold")
    assert set(np.unique(data.x_train)) == {0.0, 1.0} and data.image_shape == (8, 8)
    again = draw.binarized_digits("digits", "stochastic")
    assert set(np.unique(again.x_test)) <= {0.0, 1.0}
    np.testing.assert_array_equal(again.x_test, draw.binarized_digits("digits", "stochastic").x_test)  # fixed


def test_tiny_preset_learns(tmp_path):
    res = run_one(draw, CFG, "ln", 0, tmp_path, progress=False)
    first, last = res.eval[0]["test_bound"], res.eval[-1]["test_bound"]
    assert last < 0.85 * first, (first, last)
    losses = [r["loss"] for r in res.train]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert res.eval[-1]["epoch"] == pytest.approx(CFG.epochs)


def test_resume_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    orig = draw.build

    def build_small_ckpt(config, variant, seed):
        task = orig(config, variant, seed)
        task.checkpoint_every = 5
        return task

    monkeypatch.setattr(draw, "build", build_small_ckpt)
    whole = run_one(draw, CFG, "normprop", 1, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(draw, CFG, "normprop", 1, tmp_path / "b", progress=False, stop_after=12)
    resumed = run_one(draw, CFG, "normprop", 1, tmp_path / "b", resume=True, progress=False)
    assert resumed.untimed() == whole.untimed()
    a = draw.load_trained(CFG, "normprop", 1, tmp_path / "a")
    b = draw.load_trained(CFG, "normprop", 1, tmp_path / "b")
    for (k, p, _), (_, q, _) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p, q, err_msg=k)


# ---- verdict and figures ---------------------------------------------------------------------------------------


def _fake(variant, bounds, seed=0):
    evals = [{"step": 10 * i, "epoch": float(i), "test_bound": b, "test_kl": 1.0} for i, b in enumerate(bounds)]
    return RunResult(variant, seed, [], evals)


def test_verdict_measures_the_speed_up():
    from lnedu.experiments import verdicts as V

    base = [50, 40, 35, 32, 30, 29, 28, 27.5, 27.2, 27.0]
    fast = [50, 35, 30, 28, 27.2, 26.9, 26.8, 26.8, 26.8, 26.8]
    slow = [50, 45, 40, 36, 33, 31, 30, 29, 28, 27.5]

    def arms(b, l):
        return {"baseline": [_fake("baseline", [x + 0.01 * s for x in b], s) for s in range(3)],
                "ln": [_fake("ln", [x - 0.01 * s for x in l], s) for s in range(3)]}
    v = draw.verdict(arms(base, fast))
    assert v.held is True and V.word_of(v) == V.HELD and "±" in v.our_figure
    speed = v.parts[0]
    # target: the worst best (27.0) moved back by 10% of the smallest improvement (23): 29.3 nats
    assert speed.axis == "updates to the target" and speed.values["ln"] == {0: 30.0, 1: 30.0, 2: 30.0}
    assert speed.values["baseline"] == {0: 50.0, 1: 50.0, 2: 50.0}
    v = draw.verdict(arms(base, slow))
    assert v.held is False  # slower, and more than 1% worse at the end
    v = draw.verdict(arms([30, 31], [30, 29]))
    assert V.word_of(v) == V.NOT_TESTED  # the baseline never improved by a nat
    assert draw.verdict({"ln": [_fake("ln", fast)]}).held is None


def test_figures(rng):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lnedu.viz import draw as vd

    results = {v: [_fake(v, 30 - np.arange(5) * k, s) for s in range(2)] for v, k in (("baseline", 1), ("ln", 2))}
    fig = draw.plot(results)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    m = draw.DRAW((8, 8), steps=3, hidden=4, latent=2, rng=0)
    canvases, windows = m.generate(2, rng=1, return_windows=True)
    fig2 = vd.plot_canvas_sequence(canvases, windows, every=2, target=rng.random((2, 64)))
    assert len(fig2.axes) == 2 * 3  # t = 2, the last step and the target, for 2 samples
    assert len(fig2.axes[0].patches) == 2  # the write window and the image's border
    (Fx, Fy, gamma), _ = att.filterbank(m.params["b_read"][None].astype(np.float64), 2, 8, 8)
    fig3 = vd.plot_filterbank(Fx[0], Fy[0], rng.random((8, 8)), rng.random((2, 2)))
    assert len(fig3.axes) == 3
    np.testing.assert_allclose(vd.window_boxes([[4.5, 4.5, 4.0]]), [[1.5, 1.5, 4.0]])  # pixels 2..5 (0-based)
    # the initial write window tiles the 8x8 image exactly: its square is the image's border
    np.testing.assert_allclose(vd.window_boxes(windows[0]), [[-0.5, -0.5, 8.0]] * 2, atol=1e-5)
    plt.close("all")


# ---- the paper path's pieces: binarized MNIST files, the stand-in, presets, cost -----------------------------------


def test_flops_per_update_matches_a_hand_count():
    task = draw.build(draw.PRESETS["tiny"], "baseline", 0)  # 8x8, T=3, H=16, Z=4, read 2x2, write 2x2, batch 64
    # per glimpse: read 2*16*5 + 2*(2*2*8*8 + 2*2*8*2) = 800; encoder (24 inputs) 2*24*64 + 2*16*64 = 5120;
    # mu, log sigma 2*(2*16*4) = 256; decoder 2*4*64 + 2*16*64 = 2560; write 2*16*4 + 2*16*5 + 2*8*2*2 + 2*8*2*8 = 608
    assert task.model.forward_flops() == 3 * (800 + 5120 + 256 + 2560 + 608)
    assert task.flops_per_update() == 3 * 64 * 3 * 9344  # forward + backward = 3 x forward, 64 images
    assert task.examples_per_update == 64
    full = draw.DRAW((8, 8), steps=3, hidden=16, latent=4, attention=False, rng=0)
    # encoder reads [x, x^, h_dec]: 2*(128 + 16)*64 + 2*16*64 = 20480; 256; 2560; the full patch 2*16*64 = 2048
    assert full.forward_flops() == 3 * (20480 + 256 + 2560 + 2048)


def test_presets_medium_and_paper():
    from lnedu.experiments.settings import settings_table

    med, paper = draw.PRESETS["medium"], draw.PRESETS["paper"]
    assert med.data == "digits" and len(draw.SEEDS["medium"]) >= 3 and med.glimpses > draw.PRESETS["small"].glimpses
    assert paper.data == "binarized_mnist" and (paper.glimpses, paper.hidden, paper.latent) == (64, 256, 100)
    assert (paper.read_size, paper.write_size, paper.batch_size, paper.epochs) == (2, 5, 128, 200)
    assert [draw.lr_for(paper, v) for v in draw.VARIANTS] == [1e-3, 1e-3, 1e-2]
    table = settings_table(draw).to_markdown()
    assert table in draw.__doc__
    assert "| 78,000 |" in table  # 200 epochs x 390 updates at batch 128 on 50,000 images
    s = draw.standin(paper)
    assert s.data == "standin" and dataclasses.replace(s, data=paper.data) == paper
    with pytest.raises(ValueError, match="data_path: expected no path with data='digits'"):
        draw.build(dataclasses.replace(draw.PRESETS["tiny"], data_path="/somewhere"), "ln", 0)
    with pytest.raises(ValueError, match="source: expected one of"):
        draw.binarized_digits("binarised")


def test_standin_has_binarized_mnists_shapes():
    from lnedu.data.binarized_mnist import standin_binarized_mnist

    a = standin_binarized_mnist(40, 5, 7, seed=3)
    assert a.x_train.shape == (40, 784) and a.x_valid.shape == (5, 784) and a.x_test.shape == (7, 784)
    assert set(np.unique(a.x_train)) == {0.0, 1.0} and 0.02 < a.x_train.mean() < 0.5 and a.name == "standin"
    np.testing.assert_array_equal(a.x_test, standin_binarized_mnist(40, 5, 7, seed=3).x_test)
    with pytest.raises(ValueError, match="n_train"):
        standin_binarized_mnist(0)


def test_read_amat_reads_the_published_layout_and_others(tmp_path, rng):
    from lnedu.data.binarized_mnist import read_amat, write_amat

    x = (rng.random((7, 784)) < 0.3).astype(np.uint8)
    path = write_amat(tmp_path / "a.amat", x)
    assert path.stat().st_size == 7 * 1568  # the published layout: 1,568 bytes a row
    np.testing.assert_array_equal(read_amat(path), x)
    crlf = tmp_path / "crlf.amat"  # another layout (CRLF, tabs, blank lines at the end) reads the same
    crlf.write_text("\r\n".join("\t".join(map(str, r)) for r in x) + "\r\n\n\n")
    np.testing.assert_array_equal(read_amat(crlf), x)


@pytest.mark.parametrize("text, problem", [
    ("0 1 x" + " 0" * 781, "byte b'x' on line 1"),
    ("0 10" + " 0" * 782, "expected values 0 or 1, got 10"),
    ("0 " * 783 + "0\n" + "0 " * 700 + "0\n", "got 701 on line 2"),
    ("\n\n", "got no values"),
])
def test_read_amat_refuses_a_damaged_file(tmp_path, text, problem):
    from lnedu.data import DataCorrupt
    from lnedu.data.binarized_mnist import read_amat

    path = tmp_path / "bad.amat"
    path.write_text(text)
    with pytest.raises(DataCorrupt, match=problem) as e:
        read_amat(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_binarized_mnist_checks_published_files_and_refuses_when_absent(tmp_path, monkeypatch):
    from lnedu.data import DataCorrupt, DataUnavailable, load_binarized_mnist
    from lnedu.data.binarized_mnist import BINARIZED_MNIST_FILES, write_amat

    monkeypatch.setenv("LNEDU_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    with pytest.raises(DataUnavailable, match="binarized_mnist: .* not found in .*cache.*--data PATH"):
        load_binarized_mnist()
    folder = tmp_path / "files"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in BINARIZED_MNIST_FILES:
        write_amat(folder / name, rng.random((3, 784)) < 0.2)
    assert load_binarized_mnist(folder).x_valid.shape == (3, 784)
    # a file of the published size must be the published file: the right size with other rows is refused
    test = folder / "binarized_mnist_test.amat"
    test.write_bytes((b"0 " * 783 + b"1\n") * 10000)
    with pytest.raises(DataCorrupt, match="published SHA-256") as e:
        load_binarized_mnist(folder)
    assert str(test) in str(e.value)
    # in the cache, every file must be the published one (checked by its SHA-256 on every load)
    cache = tmp_path / "cache" / "binarized_mnist"
    cache.mkdir(parents=True)
    for name in BINARIZED_MNIST_FILES:
        write_amat(cache / name, rng.random((3, 784)) < 0.2)
    with pytest.raises(DataCorrupt, match="checksum mismatch"):
        load_binarized_mnist()
    (folder / "binarized_mnist_valid.amat").unlink()
    with pytest.raises(DataUnavailable, match=f"not found in {folder}"):
        load_binarized_mnist(folder)
