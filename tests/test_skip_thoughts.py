"""Skip-thoughts (LN §6.3): sentence splitting, batches, the model's backward, the probe, resume."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lnedu.experiments import skip_thoughts as st
from lnedu.experiments.runner import RunResult, run_one
from lnedu.gradcheck import check_gradients

TINY = st.PRESETS["tiny"]


def test_split_sentences_skips_code_and_underlines():
    text = ("Title\n*****\n\nThe first sentence. The second one: it\ncontinues here.\n\n"
            "   x = 1  # code\n\nIs this a question? Yes.\n")
    assert st.split_sentences(text) == ["Title", "The first sentence.", "The second one: it continues here.",
                                        "Is this a question?", "Yes."]


def test_corpus_is_deterministic_and_deduplicated():
    a = st.load_corpus()
    b = st.pydoc_documents()
    assert [d[0] for d in a.documents] == [d[0] for d in b] and a.documents[0][1] == b[0][1]
    topics = [d[0] for d in a.documents]
    assert "compound" in topics and "try" not in topics  # "try" is a section of "compound"
    assert a.valid and max(a.valid) < len(a.documents)


def test_load_sentences_reads_documents(tmp_path):
    p = tmp_path / "book.txt"
    p.write_text("One sentence.\nTwo sentences!\n\nA new book.\n")
    docs = st.load_sentences(p)
    assert [d[1] for d in docs] == [[["one", "sentence", "."], ["two", "sentences", "!"]], [["a", "new", "book", "."]]]


def test_make_batch_layout():
    vocab = st.WordVocab(["a", "b", "c"], specials=("<bos>", "<eos>"))
    triples = [(["a"], ["b", "c"], ["c", "a", "b"]), (["b", "b"], ["a"], ["c"])]
    ids, mask, B, tgt = st.make_batch(triples, vocab, max_len=10)
    bos, eos = vocab["<bos>"], vocab["<eos>"]
    assert B == 2 and ids.shape == mask.shape == tgt.shape == (4, 6)
    assert ids[:, 0].tolist() == [vocab["b"], vocab["c"], 0, 0]  # current sentence, padded
    assert ids[:, 2].tolist() == [bos, vocab["a"], 0, 0] and tgt[:, 2].tolist() == [vocab["a"], eos, 0, 0]
    assert ids[:, 4].tolist() == [bos, vocab["c"], vocab["a"], vocab["b"]]
    assert tgt[:, 4].tolist() == [vocab["c"], vocab["a"], vocab["b"], eos]
    assert mask.sum(0).tolist() == [2, 1, 2, 3, 4, 2]


@pytest.mark.parametrize("variant, seed, shared", [("gru", 0, False), ("ln-gru", 1, False), ("gru", 2, True),
                                                   ("ln-gru", 3, True)])
def test_model_gradient(variant, seed, shared):
    """Embedding shared by three GRUs, the encoder's state as both decoders' initial state, two softmax losses
    (through one output layer shared by the decoders, or one each)."""
    V = 9
    model = st.SkipThoughts(V, 3, 2, ln="appendix" if variant == "ln-gru" else None, shared_output=shared,
                            rng=seed).astype(np.float64)
    assert ("out" in dict(model.children())) == shared
    vocab = st.WordVocab([f"w{i}" for i in range(V - 4)], specials=("<bos>", "<eos>"))
    rng = np.random.default_rng(seed + 10)
    words = [f"w{i}" for i in range(V - 4)]

    def sent(n):
        return [words[i] for i in rng.integers(len(words), size=n)]

    triples = [(sent(2), sent(3), sent(1)), (sent(1), sent(2), sent(3))]
    batch = st.make_batch(triples, vocab, max_len=10)
    model.forward(batch)
    model.zero_grad()
    model.backward(1.0)
    named = list(model.named_parameters())
    rep = check_gradients(lambda: model.forward(batch), {k: p for k, p, _ in named},
                          {k: g.copy() for k, _, g in named})
    assert rep.max_rel_error < 1e-7, rep


def test_ridge_probe_separates_separable_classes_and_fails_on_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(3, size=300)
    centers = rng.normal(size=(3, 5)) * 4
    f = centers[y] + rng.normal(size=(300, 5))
    assert st.ridge_probe(f[:150], y[:150], f[150:], y[150:]) > 0.95
    noise = rng.normal(size=(300, 5))
    assert st.ridge_probe(noise[:150], y[:150], noise[150:], y[150:]) < 0.5


def test_cv_accuracy_reads_separable_classes_and_not_noise():
    rng = np.random.default_rng(4)
    y = rng.integers(2, size=200)
    f = np.where(y[:, None] == 1, 1.5, -1.5) * rng.random((200, 3)) + rng.normal(size=(200, 3))
    assert st.cv_accuracy(f, y) > 0.8
    noise = rng.normal(size=(200, 3))
    assert 0.3 < st.cv_accuracy(noise, y) < 0.65
    # one penalty (no choice to make): the mean over the held-out folds of least squares on one-hot targets, fit on
    # the standardized training part, which a hand count over the same folds reproduces
    outer = np.array_split(np.random.default_rng(1234).permutation(200), 4)
    hand = []
    for test in outer:
        train = np.setdiff1d(np.arange(200), test)
        mu, sd = f[train].mean(0), f[train].std(0)
        X = np.hstack([(f[train] - mu) / sd, np.ones((len(train), 1))])
        W = np.linalg.lstsq(X, np.eye(2)[y[train]], rcond=None)[0]
        hand.append(np.mean((np.hstack([(f[test] - mu) / sd, np.ones((len(test), 1))]) @ W).argmax(1) == y[test]))
    assert st.cv_accuracy(f, y, ridges=(1e-9,), folds=4) == pytest.approx(np.mean(hand))
    with pytest.raises(ValueError, match="folds: expected an integer"):
        st.cv_accuracy(f, y, folds=1)
    with pytest.raises(ValueError, match="features: expected an"):
        st.cv_accuracy(f[:10], y)


def test_flops_per_update_against_a_hand_count():
    cfg = dataclasses.replace(TINY, dim=5, dim_word=3, batch_size=4)
    task = st.build(cfg, "gru", 0)
    V, T = len(task.vocab), 6.0
    # per sentence slot and step: 3 GRUs x (x (.., 3) @ W_x (3, 15) + h (.., 5) @ W_hh (5, 15)), 2 x h @ W_out (5, V)
    per = 3 * (2 * 3 * 15 + 2 * 5 * 15) + 2 * (2 * 5 * V)
    assert task.flops_per_update(T) == 3 * 4 * 6 * per
    assert task.examples_per_update == 4
    ids, _, _, _ = st.make_batch(task._batch(0), task.vocab, cfg.max_len)
    assert task.padded_length(1) == ids.shape[0]


def test_batches_are_a_function_of_seed_and_step():
    a, b = st.build(TINY, "gru", 2), st.build(TINY, "gru", 2)
    la, lb = a.step()["loss"], b.step()["loss"]
    assert la == lb
    c = st.build(TINY, "gru", 3)
    assert c.step()["loss"] != la


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    cfg = dataclasses.replace(TINY, steps=20)
    whole = run_one(st, cfg, "ln-gru", 1, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(st, cfg, "ln-gru", 1, tmp_path / "b", progress=False, stop_after=15)
    resumed = run_one(st, cfg, "ln-gru", 1, tmp_path / "b", resume=True, progress=False)
    assert resumed.untimed() == whole.untimed()


def test_training_lowers_the_loss():
    task = st.build(dataclasses.replace(TINY, lr=1e-2), "ln-gru", 0)
    first = task.evaluate()["train_loss"]
    for _ in range(40):
        task.step()
    assert task.evaluate()["train_loss"] < first - 1.0


def test_verdict_on_synthetic_records():
    def run(v, losses, accs, seed):
        return RunResult(v, seed, [], [{"step": i, "train_loss": a + 0.01 * seed, "probe_acc": b + 0.001 * seed}
                                       for i, (a, b) in enumerate(zip(losses, accs))])

    def seeds(v, losses, accs):
        return [run(v, losses, accs, s) for s in range(3)]

    res = {"gru": seeds("gru", [9, 6, 5], [0.4, 0.5, 0.6]), "ln-gru": seeds("ln-gru", [9, 5, 4], [0.4, 0.6, 0.7])}
    assert st.verdict(res).held is True
    res["ln-gru"] = seeds("ln-gru", [9, 5, 4], [0.4, 0.5, 0.55])  # faster, but a probe 5 points worse
    assert st.verdict(res).held is False
    res["gru"] = seeds("gru", [9, 9, 9], [0.4, 0.4, 0.4])
    v = st.verdict(res)
    assert v.held is None and v.outcome == "not tested"


def test_verdict_judges_representations_on_mr_where_the_runs_logged_it():
    def run(v, losses, topic, mr, seed):
        ev = [{"step": i, "train_loss": a + 0.01 * seed, "probe_acc": b + 0.001 * seed, "mr_acc": c + 0.001 * seed}
              for i, (a, b, c) in enumerate(zip(losses, topic, mr))]
        return RunResult(v, seed, [], ev)

    def seeds(v, losses, topic, mr):
        return [run(v, losses, topic, mr, s) for s in range(3)]

    # LN better on the topic probe, 5 points worse on MR: MR decides
    res = {"gru": seeds("gru", [9, 6, 5], [0.4, 0.5, 0.6], [0.5, 0.6, 0.7]),
           "ln-gru": seeds("ln-gru", [9, 5, 4], [0.4, 0.6, 0.7], [0.5, 0.6, 0.65])}
    v = st.verdict(res)
    assert v.held is False and "MR accuracy" in v.our_figure and "MR only" in v.note
    for r in res["gru"]:  # one run without MR: the topic probe decides for all
        for e in r.eval:
            del e["mr_acc"]
    v = st.verdict(res)
    assert v.held is True and "topic-probe accuracy" in v.our_figure

