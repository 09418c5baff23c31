"""charlm's paper path (Recurrent NormProp §5.1): the ``paper`` preset reads Mikolov's character-level Penn Treebank
files, trains on independent length-``seq_len`` crops from a zero state and evaluates the same way, runs through
the CLI for a few updates at shrunk sizes, and refuses, naming the data set and ``--data``, where the files are
absent."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from lnedu.__main__ import main
from lnedu.data.text import PTB_CHAR_FILES, parse_ptb_chars
from lnedu.experiments import charlm
from lnedu.experiments.charlm_model import load_lm_data

WORDS = ["the", "market", "fell", "n't", "<unk>", "N", "$", "rates", "a", "bank", "said", "'s"]


def write_ptb_chars(folder, sentences=(300, 40, 40), seed=0) -> dict:
    """Mikolov's ``ptb.char.{train,valid,test}.txt`` in ``folder``: one sentence a line, every character a
    token separated by spaces, ``_`` between words. Returns each split's text as the loader reads it back."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    texts = {}
    for (split, name), n in zip(PTB_CHAR_FILES.items(), sentences):
        lines = []
        for _ in range(n):
            words = [WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(2, 12))]
            lines.append(" " + " _ ".join(" ".join(w) for w in words) + " ")
        raw = "\n".join(lines) + "\n"
        (folder / name).write_text(raw, encoding="utf-8")
        texts[split] = parse_ptb_chars(raw)
    return texts


SHRUNK = {"steps": 3, "hidden": 16, "batch_size": 4, "seq_len": 20, "eval_len": 20, "eval_batch": 4,
          "eval_every": 3, "checkpoint_every": 3}


def _paper_args(data, out):
    return ["run", "charlm", "--preset", "paper", *data, "--out", str(out), "--seeds", "0", "--set",
            *(f"{k}={v}" for k, v in SHRUNK.items())]


def test_the_paper_preset_runs_through_the_cli_on_ptb_files(tmp_path):
    texts = write_ptb_chars(tmp_path / "ptb")
    out = tmp_path / "runs"
    assert main(_paper_args(["--data", str(tmp_path / "ptb")], out)) == 0
    folder = out / "paper" / "charlm"
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["claim"] == charlm.CLAIM
    # the run's task: the paper's settings (PTB, independent crops, Adam 2e-3 with its decay, clip 1), sizes shrunk
    cfg = dataclasses.replace(charlm.PRESETS["paper"], data_path=str(tmp_path / "ptb"), **SHRUNK)
    assert (cfg.data, cfg.state, cfg.lr, cfg.lr_decay, cfg.clip) == ("ptb", "crops", 2e-3, 1e-3, 1.0)
    task = charlm.build(cfg, "normprop", 0)
    assert task.model.vocab_size == len(set(texts["train"])) + 1  # the written characters and <unk>
    _, vocab, _ = load_lm_data("ptb", "real", str(tmp_path / "ptb"))
    x, y = task.stream.window(0, 0)
    assert x.shape == (20, 4)
    for b in range(4):  # each column a crop of the written training text, its targets one character later
        crop = vocab.decode(np.concatenate([x[:, b], y[-1:, b]]))
        assert crop in texts["train"]
    valid = task.eval_streams["valid_bpc"]
    assert len(valid.starts) == (len(texts["valid"]) - 1) // 20  # the whole validation text, in crops of 20
    for variant in charlm.VARIANTS:
        lines = (folder / f"{variant}-seed0" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        ev = [r for r in map(json.loads, lines) if r.get("split") == "eval"]
        assert ev[-1]["step"] == 3 and all(np.isfinite(r["valid_bpc"]) for r in ev), variant


def test_the_paper_preset_refuses_without_the_ptb_files(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    assert main(_paper_args([], tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnedu: ptb: Penn Treebank characters")
    assert str(empty / "ptb") in err[0] and "--data PATH" in err[0] and "simple-examples.tgz" in err[0]
    assert not (tmp_path / "runs" / "paper" / "charlm" / "summary.json").exists()
    # the embedded default stays the default of the smaller presets, and says so
    for preset in ("tiny", "small", "medium"):
        assert charlm.PRESETS[preset].data in ("auto", "pydoc")
    task = charlm.build(charlm.PRESETS["tiny"], "baseline", 0)
    assert task.model.vocab_size > 40  # Python's help text


def test_a_path_given_with_a_generated_or_embedded_source_is_refused(tmp_path):
    """``--data`` with ``data='pydoc'`` or ``'standin'`` (which read no file) is refused naming the path, not
    ignored while the run trains on Python's help text."""
    import pytest

    write_ptb_chars(tmp_path / "ptb")
    for data, source in (("pydoc", "embedded"), ("standin", "standin")):
        cfg = dataclasses.replace(charlm.PRESETS["tiny"], data=data, data_path=str(tmp_path / "ptb"))
        with pytest.raises(ValueError, match=f"path: expected no path with source='{source}'"):
            charlm.build(cfg, "baseline", 0)
    task = charlm.build(dataclasses.replace(charlm.PRESETS["tiny"], data="ptb", data_path=str(tmp_path / "ptb")),
                        "baseline", 0)
    assert task.model.vocab_size < 40  # the written PTB characters, not the help text's
