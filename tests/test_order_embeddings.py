"""Order-embeddings (LN §6.1): ranking losses and their backward, retrieval ranks, generated captions, the task."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lnedu.data.captions import WordVocab, digit_attributes, load_caption_features, load_digit_captions, pad_batch
from lnedu.experiments import order_embeddings as oe
from lnedu.experiments.runner import run_one
from lnedu.functional import ranking as R
from lnedu.gradcheck import check_function, check_gradients

TINY = oe.PRESETS["tiny"]


@pytest.mark.parametrize("seed, shape", [(0, (4, 6)), (1, (7, 3)), (2, (1, 5))])
def test_l2_normalize_gradient(seed, shape):
    x = np.random.default_rng(seed).normal(size=shape) * 3
    rep = check_function(R.l2_normalize, R.l2_normalize_backward, {"x": x}, seed=seed)
    assert rep.max_rel_error < 1e-7, rep
    y, _ = R.l2_normalize(x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-10)


@pytest.mark.parametrize("seed, ns, ni, k", [(0, 5, 4, 3), (1, 3, 6, 7), (2, 4, 4, 2)])
def test_order_violation_matches_definition_and_gradient(seed, ns, ni, k):
    rng = np.random.default_rng(seed)
    s, im = rng.random((ns, k)), rng.random((ni, k))
    E, _ = R.order_violation(s, im)
    for a in range(ns):
        for b in range(ni):
            assert E[a, b] == pytest.approx(np.sum(np.maximum(0, s[a] - im[b]) ** 2), rel=1e-12)
    rep = check_function(R.order_violation, R.order_violation_backward, {"s": s, "im": im}, seed=seed)
    assert rep.max_rel_error < 1e-7, rep


def test_order_violation_is_zero_when_the_order_holds():
    rng = np.random.default_rng(3)
    s = rng.random((3, 5))
    im = s + rng.random((3, 5))  # every image coordinate above its caption's
    assert np.all(np.diag(R.order_violation(s, im)[0]) == 0)


@pytest.mark.parametrize("seed, ns, ni, k", [(0, 5, 4, 3), (1, 3, 6, 7)])
def test_cosine_similarity_gradient_and_values(seed, ns, ni, k):
    rng = np.random.default_rng(seed)
    s, im = rng.normal(size=(ns, k)), rng.normal(size=(ni, k))
    S, _ = R.cosine_similarity(s, im)
    ref = (s / np.linalg.norm(s, axis=1, keepdims=True)) @ (im / np.linalg.norm(im, axis=1, keepdims=True)).T
    np.testing.assert_allclose(S, ref, rtol=1e-10)
    rep = check_function(R.cosine_similarity, R.cosine_similarity_backward, {"s": s, "im": im}, seed=seed)
    assert rep.max_rel_error < 1e-7, rep


@pytest.mark.parametrize("seed, B, margin", [(0, 5, 0.5), (1, 8, 0.2), (2, 3, 1.0)])
def test_contrastive_loss_value_and_gradient(seed, B, margin):
    S = np.random.default_rng(seed).normal(size=(B, B)) * 0.5
    loss, _ = R.contrastive_loss(S, margin)
    ref = sum(max(0, margin - S[a, a] + S[a, b]) + max(0, margin - S[b, b] + S[a, b])
              for a in range(B) for b in range(B) if a != b)
    assert loss == pytest.approx(ref, rel=1e-12)
    rep = check_function(lambda S: R.contrastive_loss(S, margin), R.contrastive_loss_backward, {"S": S}, seed=seed)
    assert rep.max_rel_error < 1e-7, rep


def test_ranking_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="im: expected shape"):
        R.order_violation(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="S: expected a square"):
        R.contrastive_loss(np.zeros((2, 3)), 0.1)
    with pytest.raises(ValueError, match="margin"):
        R.contrastive_loss(np.zeros((2, 2)), -1.0)
    with pytest.raises(ValueError, match="caption_image"):
        R.retrieval_ranks(np.zeros((4, 2)), np.array([0, 1, 2, 0]))


def test_retrieval_ranks_against_a_brute_force_count():
    rng = np.random.default_rng(5)
    n_img, k = 6, 3
    cap_img = np.repeat(np.arange(n_img), k)
    S = rng.normal(size=(n_img * k, n_img))
    img_ranks, cap_ranks = R.retrieval_ranks(S, cap_img)
    for c in range(len(cap_img)):
        order = np.argsort(-S[c])
        assert img_ranks[c] == 1 + np.flatnonzero(order == cap_img[c])[0]
    for i in range(n_img):
        order = np.argsort(-S[:, i])
        assert cap_ranks[i] == 1 + min(np.flatnonzero(np.isin(order, np.flatnonzero(cap_img == i))))
    # ties count against the model: constant scores give the worst ranks
    img_ranks, cap_ranks = R.retrieval_ranks(np.zeros_like(S), cap_img)
    assert np.all(img_ranks == n_img) and np.all(cap_ranks == n_img * k)
    m = R.recall_at_k(np.array([1, 2, 6, 11]))
    assert m == {"r1": 25.0, "r5": 50.0, "r10": 75.0, "mean_rank": 5.0}


def test_generated_captions_are_deterministic_and_follow_the_pixels():
    a, b = oe._data("digits", ""), load_digit_captions()  # the experiment's cached copy and a fresh one
    assert a.captions == b.captions
    for s in ("train", "dev", "test"):
        assert len(a.captions[s]) == 5 * len(a.images[s]) == len(a.caption_image[s])
    # a caption saying "bold"/"thick"/"heavy" belongs to an image with more ink than one saying "faint"/...
    ink = digit_attributes(a.images["train"])["ink"]
    cap_ink = ink[a.caption_image["train"]]
    bold = [i for i, c in enumerate(a.captions["train"]) if {"bold", "thick", "heavy"} & set(c)]
    faint = [i for i, c in enumerate(a.captions["train"]) if {"faint", "thin", "light"} & set(c)]
    assert len(bold) > 100 and len(faint) > 100 and cap_ink[bold].min() > cap_ink[faint].max()
    folds = a.folds(5)
    assert len(folds) == 5 and sum(len(f[0]) for f in folds) == len(a.images["test"])
    assert all(np.isin(a.caption_image["test"][f[1]], f[0]).all() for f in folds)


def test_feature_loader_reads_vendrov_layout(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("dev", 2), ("test", 3)):
        np.save(tmp_path / f"toy_{split}_ims.npy", rng.normal(size=(n, 6)))
        (tmp_path / f"toy_{split}_caps.txt").write_text("".join(f"A photo of thing {i}.\n" for i in range(2 * n)))
    d = load_caption_features(tmp_path)
    assert d.name == "toy" and d.feature_dim == 6 and d.images["train"].dtype == np.float32
    assert d.caption_image["test"].tolist() == [0, 0, 1, 1, 2, 2]
    assert d.captions["dev"][0] == ["a", "photo", "of", "thing", "0", "."]
    (tmp_path / "toy_dev_caps.txt").write_text("one\ntwo\nthree\n")
    with pytest.raises(ValueError, match="whole number of captions"):
        load_caption_features(tmp_path)


def test_vocab_and_padding():
    v = WordVocab.build([["a", "b", "b"], ["c", "b"]], specials=("<eos>",))
    assert v.itos[:4] == ["<pad>", "<unk>", "<eos>", "b"] and v.encode(["zzz"]) == [1]
    ids, mask = pad_batch([[3, 4], [5]])
    assert ids.tolist() == [[3, 5], [4, 0]] and mask.tolist() == [[1, 1], [1, 0]]


@pytest.mark.parametrize("variant", ["gru", "ln-gru", "sym-gru"])
def test_model_gradient_through_encoders_and_loss(variant):
    """The whole chain (embedding, GRU over masked captions, l2norm, abs, score, contrastive loss) in float64."""
    data = oe._data("digits", "")
    vocab = WordVocab.build(data.captions["train"])
    model = oe.OrderEmbeddingModel(len(vocab), 64, 4, 3, ln="appendix" if variant == "ln-gru" else None,
                                   method="cosine" if variant == "sym-gru" else "order", rng=1).astype(np.float64)
    rng = np.random.default_rng(2)
    short = [i for i, c in enumerate(data.captions["train"]) if len(c) <= 6]
    caps = rng.choice(short, 3, replace=False)
    ids, mask = pad_batch([vocab.encode(data.captions["train"][c]) for c in caps])
    x = data.images["train"][data.caption_image["train"][caps]].astype(np.float64)
    margin = 0.5  # large, so that every hinge is active and the check sees all terms

    def loss():
        s, im = model.encode_captions(ids, mask), model.encode_images(x)
        if model.method == "order":
            return R.contrastive_loss(-R.order_violation(s, im)[0], margin)[0]
        return R.contrastive_loss(R.cosine_similarity(s, im)[0], margin)[0]

    s, im = model.encode_captions(ids, mask), model.encode_images(x)
    if model.method == "order":
        E, ec = R.order_violation(s, im)
        _, lc = R.contrastive_loss(-E, margin)
        ds, dim = R.order_violation_backward(-R.contrastive_loss_backward(1.0, lc), ec)
    else:
        S, sc = R.cosine_similarity(s, im)
        _, lc = R.contrastive_loss(S, margin)
        ds, dim = R.cosine_similarity_backward(R.contrastive_loss_backward(1.0, lc), sc)
    model.zero_grad()
    model.backward_captions(ds)
    model.backward_images(dim)
    named = list(model.named_parameters())
    rep = check_gradients(loss, {k: p for k, p, _ in named}, {k: g.copy() for k, _, g in named})
    assert rep.max_rel_error < 1e-7, rep


def test_batches_are_a_function_of_seed_and_step():
    a, b = oe.build(TINY, "gru", 3), oe.build(TINY, "gru", 3)
    a.t = b.t = 7
    ia, ca = a._batch()
    ib, cb = b._batch()
    assert np.array_equal(ia, ib) and np.array_equal(ca, cb)
    assert len(set(ia.tolist())) == len(ia)  # distinct images: no hidden match among the negatives
    assert np.array_equal(a.data.caption_image["train"][ca], ia)
    b.t = 8
    assert not np.array_equal(b._batch()[0], ia)


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    cfg = dataclasses.replace(TINY, steps=30, checkpoint_every=10)
    whole = run_one(oe, cfg, "ln-gru", 1, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(oe, cfg, "ln-gru", 1, tmp_path / "b", progress=False, stop_after=15)
    resumed = run_one(oe, cfg, "ln-gru", 1, tmp_path / "b", resume=True, progress=False)
    assert resumed.untimed() == whole.untimed()


def test_training_lowers_the_loss_and_raises_recall():
    cfg = dataclasses.replace(TINY, dim=32, dim_word=16, batch_size=32, steps=100)
    task = oe.build(cfg, "gru", 0)
    first = task.evaluate()
    losses = [task.step()["loss"] for _ in range(cfg.steps)]
    last = task.evaluate()
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    assert last["val_img_rsum"] > first["val_img_rsum"] + 10


def test_verdict_and_table_on_synthetic_curves():
    from lnedu.experiments.runner import RunResult

    def run(variant, curve, test, seed=0):
        ev = [{"step": 10 * i, "val_img_rsum": v + seed, "test_img_rsum": t + 0.5 * seed, "val_img_r1": v / 3}
              for i, (v, t) in enumerate(zip(curve, test))]
        return RunResult(variant, seed, [], ev)

    def seeds(variant, curve, test):
        return [run(variant, curve, test, s) for s in range(3)]

    res = {"gru": seeds("gru", [10, 40, 60, 70], [11, 41, 61, 69]),
           "ln-gru": seeds("ln-gru", [10, 60, 75, 72], [12, 62, 76, 70])}
    v = oe.verdict(res)
    # target: the worst mean best (71) less 10% of the smallest improvement (60): 65
    assert v.held is True and v.parts[0].values == {"ln-gru": {0: 20.0, 1: 20.0, 2: 20.0},
                                                    "gru": {0: 30.0, 1: 30.0, 2: 30.0}}
    assert "ln-gru 76.5 ± 0.5 (3 seeds)" in v.our_figure and "gru 30 ± 0 (3 seeds)" in v.our_figure
    assert oe.table(res)["ln-gru"]["img_rsum"] == 76.5 and oe.table(res)["gru"]["best_step"] == 30
    res["ln-gru"] = seeds("ln-gru", [10, 20, 30, 40], [12, 22, 32, 42])
    assert oe.verdict(res).held is False
