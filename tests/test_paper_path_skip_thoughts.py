"""Skip-thoughts' paper path (LN §6.3): the ``paper`` preset reads a BookCorpus-like text (one sentence a line) and
MR's ``rt-polarity.pos`` / ``.neg`` files, runs through the CLI for a few updates at shrunk sizes with the MR probe,
and refuses, naming the missing set and how to give it, where either is absent."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lnedu.__main__ import main
from lnedu.data.sentences import load_mr, load_sentence_text
from lnedu.experiments import skip_thoughts as st

SUBJECTS = ["she", "the old man", "his brother", "the captain", "nobody"]
VERBS = ["opened the door", "looked at the sea", "said nothing", "walked home", "laughed"]


def write_books(path, n_books: int = 8, per_book: int = 12):
    """A BookCorpus-like text: one sentence a line, lower-cased and tokenized as the circulated copies are
    (``books_large_p1.txt``), a blank line between books."""
    rng = np.random.default_rng(1)
    books = []
    for _ in range(n_books):
        books.append("\n".join(f"{SUBJECTS[int(rng.integers(5))]} {VERBS[int(rng.integers(5))]} ." if i % 3 else
                               f"`` where is {SUBJECTS[int(rng.integers(5))]} ? '' he asked ."
                               for i in range(per_book)))
    path.write_text("\n\n".join(books) + "\n", encoding="utf-8")
    return path


def write_mr(folder, n: int = 20):
    """``folder/rt-polaritydata/rt-polarity.{pos,neg}`` as in ``rt-polaritydata.tar.gz``: latin-1 text, one
    lower-cased, tokenized snippet a line (some with a latin-1 byte, as the release has: "café", "naïve")."""
    folder = folder / "rt-polaritydata"
    folder.mkdir(parents=True)
    good = ["a gorgeous , witty film .", "the café scenes are a delight .", "warm and funny , a pleasure ."]
    bad = ["a naïve , tedious mess .", "dull and far too long .", "the plot is a bore ."]
    for name, lines in (("rt-polarity.pos", good), ("rt-polarity.neg", bad)):
        text = "\n".join(lines[i % 3] + f" {i}" for i in range(n)) + "\n"
        (folder / name).write_bytes(text.encode("latin-1"))
    return folder.parent


def test_the_written_files_read_back(tmp_path):
    docs = load_sentence_text(write_books(tmp_path / "books.txt"))
    assert len(docs) == 8 and all(len(d[1]) == 12 for d in docs) and docs[0][0] == "books:0"
    assert docs[0][1][0][0] in ("``", "`") or docs[0][1][0][-1] == "."
    sents, labels = load_mr(write_mr(tmp_path / "mr"))
    assert len(sents) == 40 and labels.tolist() == [1] * 20 + [0] * 20
    assert "café" in sents[1] and "naïve" in sents[20]
    # a text with no blank lines is cut into documents of at most `chunk` sentences
    flat = tmp_path / "flat.txt"
    flat.write_text("".join(f"sentence {i} .\n" for i in range(10)), encoding="utf-8")
    assert [len(d[1]) for d in load_sentence_text(flat, chunk=4)] == [4, 4, 2]


def _paper_args(data, out, *extra):
    return ["run", "skip_thoughts", "--preset", "paper", *data, "--out", str(out), "--seeds", "0", "--set",
            "steps=3", "dim=16", "dim_word=8", "vocab=60", "max_len=10", "batch_size=4", "eval_every=3",
            "checkpoint_every=3", *extra]


def test_the_paper_preset_runs_through_the_cli_with_the_mr_probe(tmp_path):
    books, mr = write_books(tmp_path / "books.txt"), write_mr(tmp_path / "mr")
    out = tmp_path / "runs"
    assert main(_paper_args(["--data", str(books)], out, f"probe_path={mr}")) == 0
    run = out / "paper" / "skip_thoughts"
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["claim"] == st.CLAIM
    records = [json.loads(line) for f in sorted(run.rglob("*.jsonl")) for line in f.read_text().splitlines()]
    mr_acc = [r["mr_acc"] for r in records if "mr_acc" in r]
    assert mr_acc and all(0 <= a <= 1 for a in mr_acc)
    # the run's task: the paper's settings (text source, MR probe, the code's rate), sizes shrunk
    cfg = dataclasses.replace(st.PRESETS["paper"], data_path=str(books), probe_path=str(mr), steps=3, dim=16,
                              dim_word=8, vocab=60, max_len=10, batch_size=4, eval_every=3, checkpoint_every=3)
    task = st.build(cfg, "ln-gru", 0)
    assert task.corpus.name == "text" and len(task.corpus.documents) == 8 and len(task.downstream[0]) == 40
    assert task.opt.lr == 2e-4 and task.config.downstream_folds == 10 and task.config.clip == 5.0


def test_the_paper_preset_refuses_without_the_text_or_mr(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    st.load_corpus.cache_clear()
    st._mr.cache_clear()
    mr = write_mr(tmp_path / "mr")
    assert main(_paper_args([], tmp_path / "runs", f"probe_path={mr}")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnedu: bookcorpus: BookCorpus")
    assert str(empty / "bookcorpus") in err[0] and "--data PATH" in err[0]
    books = write_books(tmp_path / "books.txt")
    assert main(_paper_args(["--data", str(books)], tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnedu: mr: MR, movie-review sentence polarity")
    assert str(empty / "mr") in err[0] and "--set probe_path=PATH" in err[0] and "rt-polarity.neg" in err[0]
    assert "--data" not in err[0] and err[0].count("probe_path") == 1
    assert not (tmp_path / "runs" / "paper" / "skip_thoughts" / "summary.json").exists()
    # the embedded default stays the default of the smaller presets, and says so
    assert st.build(st.PRESETS["tiny"], "gru", 0).corpus.description.startswith("Python ")


def test_a_damaged_mr_file_is_refused_naming_it(tmp_path):
    mr = write_mr(tmp_path / "mr")
    (mr / "rt-polaritydata" / "rt-polarity.neg").write_bytes(b"")
    with pytest.raises(ValueError, match="rt-polarity.neg: expected review snippets"):
        load_mr(mr)


def test_standin_has_the_real_shapes():
    cfg = st.standin(dataclasses.replace(st.PRESETS["paper"], dim=8, dim_word=4))
    task = st.build(cfg, "gru", 0)
    assert len(task.vocab) == 20_000 and task.padded_length(2) == 31 and task.downstream is None
    assert task.examples_per_update == 64 and np.isfinite(task.step()["loss"])


def test_a_text_given_with_the_embedded_default_is_refused(tmp_path):
    """--data with a preset on Python's help text: refused, naming data_path and data='text' (the path was
    silently ignored and the run trained on the help topics)."""
    books = write_books(tmp_path / "books.txt")
    for preset in ("small", "medium"):
        assert st.PRESETS[preset].data == "pydoc"
        with pytest.raises(ValueError, match="data_path: expected no path with data='pydoc'.*--set data=text"):
            st.build(dataclasses.replace(st.PRESETS[preset], data_path=str(books)), "gru", 0)
    task = st.build(dataclasses.replace(st.PRESETS["tiny"], data="text", data_path=str(books)), "gru", 0)
    assert task.corpus.name == "text" and len(task.corpus.documents) == 8  # data='text' reads it
