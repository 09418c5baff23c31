"""The attentive reader's paper path (LN §6.2): the ``paper`` preset reads CNN ``.question`` files in DeepMind's
layout, keeps the 4 sentences that best match each query (Cooijmans et al.'s "top 4"), runs through the CLI for a
few updates at shrunk sizes, and refuses, naming the data set and ``--data``, where the files are absent."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lnedu.__main__ import main
from lnedu.data.cloze import load_cnn_questions, write_question
from lnedu.experiments import attentive_reader as ar

# sentence templates; the query below shares "talks", "resume", "in" and "geneva" with some of them
FILLER = ["the weather was cold on monday .", "shares fell sharply this week .", "fans cheered at the stadium ."]


def _story(rng, answer: int, other: int, third: int, answer_in_top4: bool):
    """Six sentences: three match the query ("talks ... resume ... geneva"), three are fillers. The answer's
    sentence is one of the matching ones, or (``answer_in_top4=False``) a filler sentence while a fourth
    sentence also matches, so the top 4 by query overlap leave it out."""
    match = [f"@entity{other} said talks would resume in geneva .",
             "talks in geneva would resume next month .",
             f"officials from @entity{third} expect the talks to resume ."]
    if answer_in_top4:
        match[1] = f"@entity{answer} said talks in geneva would resume next month ."
        sents = match + FILLER
    else:
        sents = match + ["the talks were long .", f"@entity{answer} left the stadium early ."] + FILLER[:1]
    order = rng.permutation(len(sents))
    return " ".join(sents[i] for i in order)


def write_cnn(root, n_train: int = 6, n_valid: int = 3):
    """``root/questions/{training,validation,test}/*.question`` as in DeepMind's cnn.tgz; validation question 0
    has its answer outside the top-4 sentences."""
    rng = np.random.default_rng(0)
    query = "@placeholder says talks will resume in geneva"
    for split, n in (("training", n_train), ("validation", n_valid), ("test", 1)):
        folder = root / "questions" / split
        folder.mkdir(parents=True)
        for i in range(n):
            answer, other, third = (int(e) for e in rng.choice(8, 3, replace=False))
            ctx = _story(rng, answer, other, third, answer_in_top4=not (split == "validation" and i == 0))
            write_question(folder / f"{split[:2]}{i:03d}.question", ctx, query, f"@entity{answer}",
                           url=f"http://www.cnn.com/2015/story-{split}-{i}")
    return root


def test_the_written_files_read_back_with_the_top_4_sentences(tmp_path):
    root = write_cnn(tmp_path / "cnn")
    data = load_cnn_questions(root, max_sentences=4, select="query")
    assert (len(data.train), len(data.valid)) == (6, 3)
    assert data.train.answerable().all()  # every training answer sits in a query-matching sentence
    assert data.valid.answerable().tolist() == [False, True, True]  # the hand-made exception: kept, not dropped
    words = data.vocab.decode(data.valid.docs[0][: data.valid.doc_len[0]]).split()
    assert words.count(".") == 4 and "stadium" not in words and words.count("geneva") == 2
    assert "answer not in the kept sentences: 0 train, 1 valid" in data.description


def _paper_args(data, out, *extra):
    return ["run", "attentive_reader", "--preset", "paper", *data, "--out", str(out), "--seeds", "0", "--set",
            "steps=3", "embed=8", "hidden=8", "batch_size=2", "eval_every=3", "checkpoint_every=3", *extra]


def test_the_paper_preset_runs_through_the_cli_on_cnn_files(tmp_path, capsys):
    root = write_cnn(tmp_path / "cnn")
    out = tmp_path / "runs"
    assert main(_paper_args(["--data", str(root)], out)) == 0
    folder = out / "paper" / "attentive_reader"
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["claim"] == ar.CLAIM
    assert "generated" not in summary["note"] and summary["note"].startswith("3 updates a run")  # not the small's
    for v in ar.VARIANTS:  # every variant trained 3 updates on the files and was evaluated
        recs = [json.loads(x) for x in (folder / f"{v}-seed0" / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in recs if r.get("split") == "train"]
        evals = [r for r in recs if r.get("split") == "eval"]
        assert len(train) == 3 and all(np.isfinite(r["loss"]) for r in train), v
        assert evals[-1]["step"] == 3 and 0 <= evals[-1]["valid_error"] <= 1, v
    # the run's task: the paper's data settings, the sizes shrunk
    cfg = dataclasses.replace(ar.PRESETS["paper"], data_path=str(root), steps=3, embed=8, hidden=8, batch_size=2,
                              eval_every=3, checkpoint_every=3)
    task = ar.build(cfg, "ln-lstm", 0)
    assert task.data.description.startswith("CNN-format questions") and task.unanswerable == 0
    assert len(task.valid_set) == 3 and task.config.candidates == "all" and task.config.shuffle_entities
    for _ in range(3):
        assert np.isfinite(task.step()["loss"])
    ev = task.evaluate()
    assert 0 <= ev["valid_error"] <= 1 and np.isfinite(ev["valid_nll"])


def test_the_paper_preset_refuses_without_the_cnn_files(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    assert main(_paper_args([], tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnedu: cnn: the DeepMind Q&A CNN questions")
    assert str(empty / "cnn") in err[0] and "--data PATH" in err[0] and "cs.nyu.edu/~kcho/DMQA" in err[0]
    assert not (tmp_path / "runs" / "paper" / "attentive_reader" / "summary.json").exists()
    # the embedded default stays the default of the smaller presets, and says so
    data = ar.load_data(ar.PRESETS["tiny"])
    assert data.description.startswith("generated cloze questions (embedded default)")
    assert "no CNN questions in the cache's cnn/ folder" in data.description  # no machine path: notebooks print it


@pytest.mark.parametrize("bad", ["missing", "folder"])
def test_an_explicit_data_path_without_questions_is_refused_even_in_auto_mode(tmp_path, bad):
    path = tmp_path / "nothing"
    if bad == "folder":
        (path / "training").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="^cnn: .* not found in " + str(path)):
        ar.load_data(dataclasses.replace(ar.PRESETS["tiny"], data_path=str(path)))


def test_with_document_candidates_a_cut_answer_is_kept_out_of_training_and_scored_wrong(tmp_path):
    root = write_cnn(tmp_path / "cnn")
    cfg = dataclasses.replace(ar.PRESETS["paper"], data_path=str(root), embed=4, hidden=4, batch_size=2,
                              candidates="document", shuffle_entities=False)
    task = ar.build(cfg, "lstm", 0)
    assert len(task.train_set) == 6 and len(task.valid_set) == 2 and task.unanswerable == 1
    ev = task.evaluate()
    assert ev["valid_error"] >= 1 / 3 and np.isfinite(ev["valid_nll"])  # the cut one counts as wrong
    # the papers' way: every entity id a candidate, so the cut question is scored (and trained) like the rest
    full = ar.build(dataclasses.replace(cfg, candidates="all"), "lstm", 0)
    assert len(full.valid_set) == 3 and full.unanswerable == 0
    with pytest.raises(ValueError, match="candidates: expected 'document' or 'all', got 'some'"):
        ar.build(dataclasses.replace(cfg, candidates="some"), "lstm", 0)
