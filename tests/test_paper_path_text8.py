"""The text8 grid's paper path (Hafner 2017): the ``paper`` preset reads a file in text8's format (lower-case a-z
and single spaces, one line), trains on independent sequences from a zero state, runs two grid points through the
CLI for a few updates at shrunk sizes, and refuses, naming the data set, ``python -m lnedu data fetch text8`` and
``--data``, where the file is absent."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest

from lnedu.__main__ import main
from lnedu.experiments import text8_grid
from lnedu.experiments.charlm_model import load_lm_data

WORDS = ["anarchism", "originated", "as", "a", "term", "of", "abuse", "first", "used", "against", "early", "the"]


def write_text8(path, words=4000, seed=0, zipped=False) -> str:
    """A small file in text8's format at ``path`` (``text8``, or ``text8.zip`` holding it): words of a-z separated
    by single spaces, no line end. Returns its text."""
    rng = np.random.default_rng(seed)
    text = " " + " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), words))
    path.parent.mkdir(parents=True, exist_ok=True)
    if zipped:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("text8", text)
    else:
        path.write_text(text, encoding="ascii")
    return text


SHRUNK = {"steps": 3, "hidden": 8, "batch_size": 4, "seq_len": 16, "eval_len": 16, "eval_batch": 4,
          "eval_every": 3, "checkpoint_every": 3}
VARIANTS = ["gru-ln-xavier", "mgu-noln-orthogonal"]


def _paper_args(data, out):
    return ["run", "text8_grid", "--preset", "paper", *data, "--out", str(out), "--seeds", "0", "--variants",
            *VARIANTS, "--set", *(f"{k}={v}" for k, v in SHRUNK.items())]


@pytest.mark.parametrize("zipped", [False, True])
def test_the_paper_preset_runs_through_the_cli_on_a_text8_file(tmp_path, zipped):
    path = tmp_path / "data" / ("text8.zip" if zipped else "text8")
    text = write_text8(path, zipped=zipped)
    out = tmp_path / "runs"
    assert main(_paper_args(["--data", str(path)], out)) == 0
    folder = out / "paper" / "text8_grid"
    note = json.loads((folder / "summary.json").read_text(encoding="utf-8"))["note"]
    assert not note.startswith("small")  # the verdict's note does not call a paper-preset run small
    for variant in VARIANTS:
        lines = (folder / f"{variant}-seed0" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        ev = [r for r in map(json.loads, lines) if r.get("split") == "eval"]
        assert ev[-1]["step"] == 3 and all(np.isfinite(r["valid_bpc"]) for r in ev), variant
    # the run's task: text8 split 90 / 5 / 5 (a file of another length than 10^8), independent sequences
    cfg = dataclasses.replace(text8_grid.PRESETS["paper"], data_path=str(path), **SHRUNK)
    assert (cfg.data, cfg.state, cfg.lr_decay) == ("text8", "crops", 0.0)
    task = text8_grid.build(cfg, VARIANTS[0], 0)
    corpus, vocab, _ = load_lm_data("text8", "real", str(path))
    assert corpus.train + corpus.valid + corpus.test == text and len(corpus.train) == round(0.9 * len(text))
    assert task.model.vocab_size == len(set(corpus.train)) + 1  # its letters, space and <unk>
    x, y = task.stream.window(0, 0)
    for b in range(4):
        assert vocab.decode(np.concatenate([x[:, b], y[-1:, b]])) in corpus.train
    assert len(task.eval_streams["valid_bpc"].starts) == (len(corpus.valid) - 1) // 16


def test_the_paper_preset_refuses_without_text8(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    assert main(_paper_args([], tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnedu: text8: text8, the first 10^8 characters")
    assert str(empty / "text8") in err[0] and "--data PATH" in err[0]
    assert "`python -m lnedu data fetch text8`" in err[0]
    assert not (tmp_path / "runs" / "paper" / "text8_grid" / "summary.json").exists()
    for preset in ("tiny", "small", "medium"):  # the embedded default stays the default of the smaller presets
        assert text8_grid.PRESETS[preset].data in ("auto", "pydoc")
