"""The attentive reader (LN §6.2): cloze data, the attention's backward, the whole model's gradients, training."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from lnedu import functional as F
from lnedu.data.cloze import (
    CNN_SHAPES,
    ClozeSet,
    bag_of_words_accuracy,
    generate_cloze,
    load_cnn_questions,
    load_generated_cloze,
    read_question,
    rule_reader,
    split_sentences,
    top_sentences,
)
from lnedu.data.download import DataUnavailable
from lnedu.experiments import attentive_reader as ar
from lnedu.experiments.runner import RunResult, load_task, run_one
from lnedu.functional.attention_reader import attentive_read, attentive_read_backward
from lnedu.gradcheck import check_function, check_gradients

# ---------------------------------------------------------------------------------------------------------
# data


def test_generator_is_a_function_of_its_seed():
    a, _ = generate_cloze(50, n_entities=8, seed=3)
    b, _ = generate_cloze(50, n_entities=8, seed=3)
    c, _ = generate_cloze(50, n_entities=8, seed=4)
    for f in dataclasses.fields(ClozeSet):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name))
    assert not np.array_equal(a.docs, c.docs)


@pytest.mark.parametrize("n_entities, n_sentences, seed", [(10, 4, 0), (6, 3, 1), (20, 6, 2)])
def test_generated_questions_need_word_order(n_entities, n_sentences, seed):
    data, vocab = generate_cloze(400, n_entities=n_entities, n_sentences=n_sentences, seed=seed)
    assert data.docs.shape == (400, 5 * n_sentences) and (data.doc_len == 5 * n_sentences).all()
    assert data.candidates[np.arange(400), data.answers].all()
    # a reader that follows word order finds exactly one answer, the right one, every time
    np.testing.assert_array_equal(rule_reader(data, vocab), data.answers)
    # a bag of words cannot tell the answer from the mirror fact's entity: about half right
    bow = bag_of_words_accuracy(data, vocab, seed=seed)
    assert 0.35 < bow < 0.62, bow
    # entity names are drawn afresh per document: no name is a good guess
    assert np.bincount(data.answers, minlength=n_entities).max() < 3 * 400 / n_entities


def test_generated_corpus_splits_differ_and_batches_are_time_major():
    c = load_generated_cloze(64, 32, n_entities=8, seed=5)
    assert len(c.train) == 64 and len(c.valid) == 32 and "generated" in c.description
    assert not np.array_equal(c.train.docs[:32], c.valid.docs)
    doc, dm, q, qm, ans, cand = c.train.batch([3, 7, 1])
    assert doc.shape == (20, 3) and dm.all() and q.shape == (4, 3) and cand.shape == (3, 8)
    np.testing.assert_array_equal(doc[:, 1], c.train.docs[7])
    assert "@placeholder" in c.vocab.decode(q[:, 0]).split()


def test_generator_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        generate_cloze(0)
    with pytest.raises(ValueError, match="n_sentences: expected an integer >= 2"):
        generate_cloze(5, n_sentences=1)
    with pytest.raises(ValueError, match="n_entities: expected an integer >= 4"):
        generate_cloze(5, n_entities=3)


def _write_question(path, rng, n_sent):
    ents = rng.permutation(12)[:4]
    words = ["the", "minister", "said", "on", "tuesday", "that", "talks", "would", "resume"]
    sents = []
    for _ in range(n_sent):
        body = [str(w) for w in rng.choice(words, 4)] + [f"@entity{ents[rng.integers(4)]}"]
        sents.append(" ".join(body) + " .")
    answer = f"@entity{ents[0]}"
    sents[0] = sents[0].replace(" .", f" {answer} .")
    query = f"@placeholder said talks would resume with @entity{ents[1]}"
    mapping = "\n".join(f"@entity{e}:Name {e}" for e in ents)
    path.write_text(f"http://example.com/{path.stem}\n\n{' '.join(sents)}\n\n{query}\n\n{answer}\n\n{mapping}\n",
                    encoding="utf-8")
    return answer, query


def test_cnn_reader_parses_the_question_format(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("training", 5), ("validation", 3)):
        (tmp_path / "questions" / split).mkdir(parents=True)
        for i in range(n):
            _write_question(tmp_path / "questions" / split / f"q{i:02d}.question", rng, n_sent=6)
    f = tmp_path / "questions" / "training" / "q02.question"
    q = read_question(f)
    lines = f.read_text().splitlines()
    assert q["url"] == lines[0] and q["answer"] == lines[6] and q["query"] == lines[4].split()
    assert q["context"] == lines[2].split() and len(q["entities"]) == 4
    assert all(k.startswith("@entity") and v.startswith("Name ") for k, v in q["entities"].items())

    corpus = load_cnn_questions(tmp_path, max_sentences=4, select="first")
    assert len(corpus.train) == 5 and len(corpus.valid) == 3
    v = corpus.vocab
    # four sentences kept, each ending at "."
    assert (corpus.train.doc_len <= 4 * 7).all()
    assert all(int((corpus.train.docs[i] == v.index["."]).sum()) == 4 for i in range(5))
    assert corpus.train.candidates[np.arange(5), corpus.train.answers].all()
    assert v.decode(corpus.train.docs[2][: corpus.train.doc_len[2]]).split()[:5] == q["context"][:5]
    assert v.n_entities >= 1 + max(int(k[7:]) for k in q["entities"])


def test_cnn_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(DataUnavailable, match=r"^cnn: the DeepMind Q&A CNN questions .* not found in .*--data PATH"):
        load_cnn_questions(tmp_path)
    (tmp_path / "training").mkdir()
    (tmp_path / "validation").mkdir()  # folders without a .question file are no data set either
    with pytest.raises(DataUnavailable, match="cnn: .* not found in " + re.escape(str(tmp_path))):
        load_cnn_questions(tmp_path)
    with pytest.raises(ValueError, match="select: expected 'query' or 'first', got 'last'"):
        load_cnn_questions(tmp_path, select="last")
    bad = tmp_path / "bad.question"
    bad.write_text("http://x\n\nno blocks here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="path: expected URL, context, query and answer"):
        read_question(bad)


def test_top_sentences_keeps_the_best_query_matches_in_document_order():
    ctx = ("a b c . @entity1 met @entity2 in paris . rain fell ! did @entity3 win the vote in paris ? "
           "@entity2 spoke . the vote was close .").split()
    query = "@placeholder met @entity2 before the vote in paris".split()
    assert [len(s) for s in split_sentences(ctx)] == [4, 6, 3, 8, 3, 5]
    # overlaps with the query: 0, 4 (met @entity2 in paris), 0, 4 (the vote in paris), 1 (@entity2), 2 (the vote)
    assert " ".join(top_sentences(ctx, query, 3)) == ("@entity1 met @entity2 in paris . did @entity3 win the vote "
                                                      "in paris ? the vote was close .")
    # a tie goes to the earlier sentence; @placeholder matches nothing
    assert " ".join(top_sentences(ctx, query, 4)) == ("@entity1 met @entity2 in paris . did @entity3 win the vote "
                                                      "in paris ? @entity2 spoke . the vote was close .")
    assert top_sentences("x y . z".split(), ["@placeholder", "z"], 1) == ["z"]  # an unterminated last sentence
    assert top_sentences(ctx, query, 6) == ctx and top_sentences(ctx, query, 9) == ctx
    with pytest.raises(ValueError, match="k: expected a positive integer, got 0"):
        top_sentences(ctx, query, 0)


def test_the_standin_has_the_cnn_shapes_and_answerable_questions():
    cfg = ar.standin(dataclasses.replace(ar.PRESETS["paper"], batch_size=3))
    assert cfg.data == "standin" and cfg.hidden == 240 and cfg.batch_size == 3
    data = ar.load_data(dataclasses.replace(cfg, n_valid=5))
    assert len(data.vocab) == CNN_SHAPES["vocab"] and data.vocab.n_entities == CNN_SHAPES["entities"]
    assert data.train.docs.shape == (12, CNN_SHAPES["doc_len"]) and data.train.queries.shape[1] == CNN_SHAPES[
        "query_len"]
    assert data.train.answerable().all() and data.valid.answerable().all() and len(data.valid) == 5
    assert (data.train.queries[:, 0] == data.vocab.placeholder).all()


def test_flops_per_update_matches_a_hand_count():
    """Generated 2-fact documents: T_d = 10 tokens ("@e rel rel @e ." twice), T_q = 4; B=4, E=3, H=2, K=4."""
    cfg = dataclasses.replace(ar.PRESETS["tiny"], embed=3, hidden=2, n_entities=4, n_sentences=2, n_train=8,
                              n_valid=4, batch_size=4, data="generated")
    task = ar.build(cfg, "ln-lstm", 0)
    assert task.train_set.docs.shape[1] == 10 and task.train_set.queries.shape[1] == 4
    lstm = 2 * 40 * 3 * 8 + 2 * 40 * 2 * 8 + 2 * 16 * 3 * 8 + 2 * 16 * 2 * 8  # W_x x_t, W_h h: document, query
    attention = 2 * 40 * 2 * 2 + 2 * 4 * 2 * 2 + 2 * 40 * 2 + 2 * 40 * 2  # W_ym y_t, W_um u, w_ms^T m_t, sum s_t y_t
    readout = 2 * 4 * 2 * 2 * 2 + 2 * 4 * 2 * 4  # W_rg r and W_ug u; W_out g
    assert (lstm, attention, readout) == (4480, 672, 128)
    assert task.flops_per_update() == 3 * (lstm + attention + readout) == 15_840
    assert task.examples_per_update == 4
    # the papers' options: W_dq^T y_t, W_dq^T u and their dot products; W_md^T mean(y)
    extra = 2 * 40 * 2 * 2 + 2 * 4 * 2 * 2 + 2 * 40 * 2 + 2 * 4 * 2 * 2
    opts = ar.build(dataclasses.replace(cfg, dq_sims=True, desc_skip=True, dropout=0.5), "ln-lstm", 0)
    assert opts.flops_per_update() == 3 * (lstm + attention + readout + extra) == 15_840 + 3 * 544


def test_entity_shuffling_renumbers_each_question_consistently():
    cfg = dataclasses.replace(ar.PRESETS["tiny"], shuffle_entities=True, data="generated")
    task = ar.build(cfg, "lstm", 0)
    idx = np.arange(8)
    doc0, _, q0, _, ans0, cand0 = task._arrays(task.train_set, idx)
    doc, _, q, _, ans, cand = task._arrays(task.train_set, idx, np.random.default_rng(5))
    K = cand.shape[1]
    assert not np.array_equal(doc, doc0)
    assert np.array_equal(doc >= K, doc0 >= K) and np.array_equal(doc[doc >= K], doc0[doc0 >= K])  # words stay
    for b in range(8):
        pairs = set(zip(doc0[:, b].tolist() + q0[:, b].tolist(), doc[:, b].tolist() + q[:, b].tolist()))
        ent = {(a, c) for a, c in pairs if a < K}
        assert len({a for a, _ in ent}) == len({c for _, c in ent}) == len(ent)  # one new number per entity
        assert (int(ans0[b]), int(ans[b])) in ent and cand[b].sum() == cand0[b].sum() and cand[b, ans[b]]
    # the renumbering is a function of (seed, update): two runs of a seed train alike
    a, b = ar.build(cfg, "lstm", 3), ar.build(cfg, "lstm", 3)
    assert [a.step()["loss"] for _ in range(3)] == [b.step()["loss"] for _ in range(3)]


def test_data_sources_and_the_medium_preset():
    with pytest.raises(ValueError, match="data: expected one of .*, got 'cnn2'"):
        ar.load_data(dataclasses.replace(ar.PRESETS["tiny"], data="cnn2"))
    assert ar.PRESETS["paper"].data == "cnn" and ar.PRESETS["paper"].data_path == ""
    assert all(ar.PRESETS[p].data == "auto" for p in ("tiny", "small", "medium", "long"))
    small, medium = ar.PRESETS["small"], ar.PRESETS["medium"]
    assert medium.lr_by_variant == small.lr_by_variant and (medium.hidden, medium.embed) == (small.hidden, small.embed)
    assert medium.steps >= 2.5 * small.steps and len(ar.SEEDS["medium"]) >= 3


# ---------------------------------------------------------------------------------------------------------
# the attention read and the whole model, by finite differences


@pytest.mark.parametrize("T, B, H, A, masked, seed", [(5, 3, 4, 6, False, 0), (7, 4, 3, 5, True, 1),
                                                       (4, 2, 6, 3, True, 2)])
def test_attentive_read_gradients(T, B, H, A, masked, seed):
    rng = np.random.default_rng(seed)
    mask = None
    if masked:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T
        mask = np.arange(T)[:, None] < lengths[None, :]
    inputs = {"Y": rng.standard_normal((T, B, H)), "a_y": rng.standard_normal((T, B, A)),
              "a_u": rng.standard_normal((B, A)), "w_ms": rng.standard_normal(A)}

    def fwd(Y, a_y, a_u, w_ms):
        return attentive_read(Y, a_y, a_u, w_ms, mask)

    report = check_function(fwd, attentive_read_backward, inputs, seed=seed)
    assert report.max_rel_error < 1e-7, str(report)
    _, cache = fwd(**inputs)
    np.testing.assert_allclose(cache.s.sum(axis=0), 1.0)
    if mask is not None:
        assert (cache.s[~mask] == 0).all()


def _small_batch(rng, V, K, B, Td, Tq, masked):
    doc = rng.integers(0, V, size=(Td, B))
    query = rng.integers(0, V, size=(Tq, B))
    dm = qm = None
    if masked:
        dl = rng.integers(2, Td + 1, size=B)
        ql = rng.integers(1, Tq + 1, size=B)
        dl[0], ql[1] = Td, Tq
        dm, qm = np.arange(Td)[:, None] < dl, np.arange(Tq)[:, None] < ql
    cand = rng.random((B, K)) < 0.6
    ans = np.array([rng.choice(np.flatnonzero(np.r_[c[:-1], True])) for c in cand])
    cand[np.arange(B), ans] = True
    return doc, dm, query, qm, ans, cand


@pytest.mark.parametrize("variant, masked, seed", [("lstm", True, 1), ("ln-lstm", True, 2), ("bn-lstm", False, 4),
                                                   ("bn-everywhere", False, 5)])
def test_whole_model_gradients(variant, masked, seed):
    """Every parameter of the reader (embeddings, both LSTMs, attention, readout, BN gains) against finite
    differences of the cross-entropy, in float64.

    The normalizations make the loss strongly curved (each divides by a standard deviation estimated from few
    numbers: 8 rows for BN, 12 units for LN, and the candidate gate's tanh has the largest third derivative of
    the gates), so a central difference's O(h^2) error shows at h = 1e-5 (it falls 100-fold when h does 10-fold:
    truncation, not a wrong backward), while below ~3e-6 rounding noise grows back as 1/h (W_um's gradient is
    small). Hence h = 4e-6 for them (measured: worst error 2.8e-8, 3.4e-8, 5.7e-9 for LN, BN-LSTM and
    BN-everywhere, against 1.1e-7 for BN-LSTM at 2e-6), gains near 1 and 24 token ids (few repeated tokens in a
    batch), which keep the check well conditioned.
    """
    rng = np.random.default_rng(seed)
    V, K, B = 24, 6, 8
    cfg = dataclasses.replace(ar.PRESETS["tiny"], embed=5, hidden=3)
    model = ar.build_model(cfg, variant, V, K, np.random.default_rng(seed), dtype=np.float64)
    for name, p, _ in model.named_parameters():  # away from the initial values (zeros, equal gains)
        if name.split(".")[-1].startswith("g_"):
            p[...] = 1 + 0.1 * rng.standard_normal(p.shape)
        else:
            p += 0.1 * rng.standard_normal(p.shape)
    doc, dm, query, qm, ans, cand = _small_batch(rng, V, K, B, Td=5, Tq=3, masked=masked)

    def loss():
        return F.softmax_cross_entropy(model.forward(doc, dm, query, qm, cand), ans)[0]

    model.zero_grad()
    _, cache = F.softmax_cross_entropy(model.forward(doc, dm, query, qm, cand), ans)
    assert model.backward(F.softmax_cross_entropy_backward(1.0, cache)) is None
    named = list(model.named_parameters())
    report = check_gradients(loss, {k: p for k, p, _ in named}, {k: g.copy() for k, _, g in named},
                             h=1e-5 if variant == "lstm" else 4e-6)
    assert report.max_rel_error < 1e-7, str(report)
    if variant == "bn-everywhere":
        assert {"g_ym", "g_um", "g_rg", "g_ug"} <= set(model.params)


@pytest.mark.parametrize("variant, masked, seed", [("ln-lstm", True, 7)])
def test_whole_model_gradients_with_the_papers_options(variant, masked, seed):
    """The command line's options (document-query term, skip to g, dropout with fixed masks, learned initial
    states) by finite differences, in float64, every parameter (W_dq, W_md, h0, c0 included)."""
    rng = np.random.default_rng(seed)
    V, K, B = 24, 6, 8
    cfg = dataclasses.replace(ar.PRESETS["tiny"], embed=5, hidden=3, dq_sims=True, desc_skip=True, dropout=0.3,
                              learn_h0=True)
    model = ar.build_model(cfg, variant, V, K, np.random.default_rng(seed), dtype=np.float64)
    assert {"W_dq", "W_md"} <= set(model.params) and {"h0", "c0"} <= set(model.doc.params) & set(model.query.params)
    for name, p, _ in model.named_parameters():
        if name.split(".")[-1].startswith("g_"):
            p[...] = 1 + 0.1 * rng.standard_normal(p.shape)
        elif name.split(".")[-1] in ("h0", "c0"):  # an initial state of unit size: LN of W_h h0 stays well scaled
            p[...] = rng.standard_normal(p.shape)
        else:
            p += 0.1 * rng.standard_normal(p.shape)
    doc, dm, query, qm, ans, cand = _small_batch(rng, V, K, B, Td=5, Tq=3, masked=masked)

    def logits():
        model.drop_rng = np.random.default_rng(3)  # the same dropout masks on every call
        return model.forward(doc, dm, query, qm, cand)

    def loss():
        return F.softmax_cross_entropy(logits(), ans)[0]

    model.zero_grad()
    out = logits()
    _, cache = F.softmax_cross_entropy(out, ans)
    model.backward(F.softmax_cross_entropy_backward(1.0, cache))
    named = list(model.named_parameters())
    report = check_gradients(loss, {k: p for k, p, _ in named}, {k: g.copy() for k, _, g in named}, h=4e-6)
    assert report.max_rel_error < 1e-7, str(report)
    # dropout: some of g zeroed in training, none in eval mode; the options change the answer
    assert (model._cache[8] == 0).any()
    model.eval()
    a = model.forward(doc, dm, query, qm, cand)
    assert (model._cache[8] == model._cache[3]).all() and np.isfinite(a[cand]).all()
    model.dq_sims = model.desc_skip = False
    assert not np.allclose(model.forward(doc, dm, query, qm, cand)[cand], a[cand])
    with pytest.raises(ValueError, match="dropout: expected a probability in \\[0, 1\\), got 1.0"):
        ar.build_model(dataclasses.replace(cfg, dropout=1.0), variant, V, K, np.random.default_rng(0))


def test_initial_gains_of_the_variants():
    cfg = ar.PRESETS["tiny"]
    gains = {v: ar.build_model(cfg, v, 20, 6, np.random.default_rng(0)).doc.params["g_x"] for v in
             ("ln-lstm", "ln-lstm-g0.1", "bn-lstm", "bn-lstm-g1.0", "bn-everywhere")}
    assert {v: float(g.mean()) for v, g in gains.items()} == pytest.approx(
        {"ln-lstm": 1.0, "ln-lstm-g0.1": 0.1, "bn-lstm": 0.1, "bn-lstm-g1.0": 1.0, "bn-everywhere": 0.1})
    assert all(bool((g == g[0]).all()) for g in gains.values())


def test_logits_are_restricted_to_candidates_and_bad_variant_is_an_error():
    rng = np.random.default_rng(0)
    model = ar.build_model(ar.PRESETS["tiny"], "lstm", 9, 5, rng)
    doc, dm, query, qm, ans, cand = _small_batch(rng, 9, 5, 4, Td=5, Tq=2, masked=False)
    logits = model.forward(doc, dm, query, qm, cand)
    assert np.isneginf(logits[~cand]).all() and np.isfinite(logits[cand]).all()
    with pytest.raises(ValueError, match="variant: expected one of"):
        ar.build_model(ar.PRESETS["tiny"], "gru", 9, 5, rng)


# ---------------------------------------------------------------------------------------------------------
# training, resume, verdict


def test_training_loss_decreases():
    cfg = dataclasses.replace(ar.PRESETS["tiny"], n_train=64, batch_size=16, lr=1e-2)
    task = ar.build(cfg, "ln-lstm", 0)
    losses = [task.step()["loss"] for _ in range(120)]
    assert np.mean(losses[-12:]) < 0.6 * np.mean(losses[:12]), (np.mean(losses[:12]), np.mean(losses[-12:]))
    ev = task.evaluate()
    assert 0 <= ev["valid_error"] <= 1 and np.isfinite(ev["valid_nll"])


@pytest.mark.parametrize("variant", ["bn-everywhere", "ln-lstm"])
def test_resume_from_checkpoint_is_exact(tmp_path, variant):
    cfg = ar.PRESETS["tiny"]
    whole = run_one(ar, cfg, variant, 2, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(ar, cfg, variant, 2, tmp_path / "b", progress=False, stop_after=15)
    assert load_task(ar, tmp_path / "b", cfg, variant, 2).t == 12  # the last checkpoint's step
    resumed = run_one(ar, cfg, variant, 2, tmp_path / "b", resume=True, progress=False)
    assert resumed.untimed() == whole.untimed()


def _fake(curves):
    """``{variant: [RunResult]}`` from ``{variant: [valid errors at steps 0, 10, ...] per seed}``."""
    out = {}
    for v, seeds in curves.items():
        out[v] = [RunResult(v, s, [], [{"step": 10 * i, "split": "eval", "valid_error": e} for i, e in enumerate(c)])
                  for s, c in enumerate(seeds)]
    return out


def test_verdict_reads_speed_final_and_gain_direction():
    from lnedu.experiments import verdicts as V

    slow = [0.7, 0.7, 0.6, 0.5, 0.45]
    fast = [0.7, 0.5, 0.3, 0.25, 0.2]
    stuck = [0.7, 0.7, 0.7, 0.69, 0.69]

    def seeds(c):
        return [[x + 0.002 * s for x in c] for s in range(3)]
    base = {"lstm": seeds(slow), "bn-lstm": seeds(slow), "bn-everywhere": seeds(slow)}
    good = _fake({**base, "ln-lstm": seeds(fast), "ln-lstm-g0.1": seeds(slow)})
    v = ar.verdict(good)
    assert v.held is True and V.word_of(v) == V.HELD and "ln-lstm 25.2% ± 0.2% (3 seeds)" in v.our_figure
    worse_gain = _fake({**base, "ln-lstm": seeds(fast), "ln-lstm-g0.1": seeds(fast[:4] + [0.1])})
    assert ar.verdict(worse_gain).held is False
    assert ar.verdict(_fake({**base, "ln-lstm": seeds(stuck[:1] + [0.5, 0.55, 0.55, 0.55])})).held is False
    # a plateau that improved on its first evaluation but never beat a bag-of-words reader (the BN arms at small)
    plateau = [0.76, 0.69, 0.68, 0.67, 0.66]
    v = ar.verdict(_fake({**base, "bn-lstm": seeds(plateau), "ln-lstm": seeds(fast)}))
    part = [p for p in v.parts if "bn-lstm" in p.claim]
    assert [p.outcome for p in part] == [V.NOT_TESTED] and "bag-of-words" in part[0].why
    # a BN arm stuck on the plateau: that comparison is not tested, and so is the claim
    v = ar.verdict(_fake({**base, "bn-lstm": seeds(stuck), "ln-lstm": seeds(fast)}))
    assert V.word_of(v) == V.NOT_TESTED and v.held is None
    assert [p.outcome for p in v.parts if "bn-lstm" in p.claim] == [V.NOT_TESTED]
    assert ar.verdict(_fake({"lstm": [slow]})).held is None


def test_evaluation_logs_the_bn_gap_and_per_time_step_statistics_and_changes_nothing():
    """Issue 19 item 7: BN's train-mode vs eval-mode figure and the LSTMs' per-time-step statistics, at the start."""
    import numpy as np

    cfg = ar.PRESETS["tiny"]
    task = ar.build(cfg, "bn-lstm", 0)
    before = {k: v.copy() for k, v in task.model.state_dict().items()}
    out = task.evaluate()
    after = task.model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # the running statistics are untouched
    assert 0 <= out["valid_error_batchstats"] <= 1 and out["valid_nll_batchstats"] > 0
    T = task.data.valid.docs.shape[1]
    for layer in ("doc", "query"):
        sat = out[f"diag/{layer}/gate_saturation"]
        assert all(0 <= s <= 1 for s in sat) and all(h >= 0 for h in out[f"diag/{layer}/h_std"])
    assert len(out["diag/doc/preact_std"]) == T
    plain = ar.build(cfg, "ln-lstm", 0).evaluate()
    assert "valid_error_batchstats" not in plain and "diag/doc/gate_saturation" in plain


def test_the_long_preset_is_the_small_run_for_longer():
    """The run in which the BN arms leave the first plateau: small's sizes and tuned rates, 2.5x the updates."""
    import dataclasses

    small, long = ar.PRESETS["small"], ar.PRESETS["long"]
    assert long.steps == 2.5 * small.steps and long.lr_by_variant == small.lr_by_variant
    assert dataclasses.replace(long, steps=small.steps, eval_every=small.eval_every,
                               checkpoint_every=small.checkpoint_every) == small
