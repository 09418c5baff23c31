"""Convnet's paper path (LN §6.7 states no setting; the `paper` preset is ours, on the real MNIST): it runs from the
command line on files in MNIST's IDX format, and refuses to run without them, naming the data set and --data."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from lnedu.__main__ import main
from lnedu.data.mnist import write_mnist
from lnedu.experiments import convnet
from lnedu.experiments.settings import settings_table

# only sizes and the number of updates shrink: one epoch of 256 images at the preset's batch 128 is 2 updates;
# the data source, loader, network shape, normalizations, optimizer, rate, batch and schedule kind stay
SHRINK = ["channels=2", "epochs=1"]


def _write_mnist(folder, n_train=256, n_test=20, seed=0):
    """MNIST's four gzipped IDX files of random 28x28 uint8 images and labels 0..9 (every digit present)."""
    rng = np.random.default_rng(seed)
    y_train, y_test = rng.integers(0, 10, n_train), rng.integers(0, 10, n_test)
    y_train[:10] = y_test[:10] = np.arange(10)
    return write_mnist(folder, rng.integers(0, 256, (n_train, 28, 28)), y_train,
                       rng.integers(0, 256, (n_test, 28, 28)), y_test)


def _run(data, out, *extra):
    args = ["run", "convnet", "--preset", "paper", "--out", str(out), "--seeds", "0", "--set", *SHRINK]
    return main(args + (["--data", str(data)] if data is not None else []) + list(extra))


def test_paper_preset_reads_the_idx_files_and_trains(tmp_path):
    data = _write_mnist(tmp_path / "mnist")
    assert _run(data, tmp_path / "runs") == 0
    folder = tmp_path / "runs" / "paper" / "convnet"
    note = json.loads((folder / "summary.json").read_text(encoding="utf-8"))["note"]
    assert note.startswith("every setting is ours")  # not "8x8 digits ...": this run read the 28x28 files
    for v in convnet.VARIANTS:
        recs = [json.loads(x) for x in (folder / f"{v}-seed0" / "metrics.jsonl").read_text().splitlines()]
        assert len([r for r in recs if r.get("split") == "train"]) == 2, v
        evals = [r for r in recs if r.get("split") == "eval"]
        assert evals and all(0 <= e["test_error"] <= 1 and np.isfinite(e["train_nll"]) for e in evals), v
    task = convnet.build(dataclasses.replace(convnet.PRESETS["paper"], data_path=str(data), channels=2), "ln", 0)
    assert task.data.x_train.shape == (256, 1, 28, 28) and task.batch_size == 128  # the files' 28x28 images


def test_paper_preset_refuses_without_the_data(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "cache"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    assert _run(None, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mnist: MNIST handwritten digits" in err[0] and "--data" in err[0]
    assert str(empty) in err[0]
    assert not (tmp_path / "runs" / "paper" / "convnet" / "ln-seed0" / "metrics.jsonl").exists()


def test_the_paper_preset_is_labelled_as_ours():
    """§6.7 gives no setting: every row of the settings table marks the `paper` preset's value as ours."""
    assert "Every setting here is ours" in convnet.__doc__
    table = settings_table(convnet)
    assert all(row[1].startswith("not stated") or "§" in row[1] for row in table.rows)
    assert all("(differs: ours; §6.7 states no setting)" in row[2] for row in table.rows)
