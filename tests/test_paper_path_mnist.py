"""Permutation-invariant MNIST's paper path (LN §6.6): the `paper` preset runs from the command line on files in
MNIST's IDX format (gzipped or not), trains on the last 55,000 training images, and refuses to run without the
files (naming the data set and --data) or on a damaged one (naming the file)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lnedu.__main__ import main
from lnedu.data.mnist import MNIST_FILES, write_mnist
from lnedu.experiments import mnist_mlp

# only sizes and the number of updates shrink: 0.04 epochs of 256 images are 3 updates at batch 4, 1 at batch 128;
# the data source, loader, network depth, placements, optimizer, rate and schedule kind stay the paper preset's
SHRINK = ["hidden=16", "epochs=0.04"]


def _write_mnist(folder, n_train=256, n_test=20, compress=True, seed=0):
    """MNIST's four IDX files of random 28x28 uint8 images and labels 0..9 (every digit present)."""
    rng = np.random.default_rng(seed)
    splits = []
    for n in (n_train, n_test):
        labels = rng.integers(0, 10, n)
        labels[:10] = np.arange(10)
        splits += [rng.integers(0, 256, (n, 28, 28)), labels]
    return write_mnist(folder, *splits, compress=compress)


def _run(data, out, *extra):
    args = ["run", "mnist", "--preset", "paper", "--out", str(out), "--seeds", "0", "--set", *SHRINK]
    return main(args + (["--data", str(data)] if data is not None else []) + list(extra))


@pytest.mark.parametrize("compress", [True, False], ids=["gzipped", "plain"])
def test_paper_preset_reads_the_idx_files_and_trains(tmp_path, compress):
    data = _write_mnist(tmp_path / "mnist", compress=compress)
    assert sorted(p.name for p in data.iterdir()) == sorted(n if compress else n[:-3] for n in MNIST_FILES)
    assert _run(data, tmp_path / "runs") == 0
    folder = tmp_path / "runs" / "paper" / "mnist"
    for v in mnist_mlp.VARIANTS:
        recs = [json.loads(x) for x in (folder / f"{v}-seed0" / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in recs if r.get("split") == "train"]
        evals = [r for r in recs if r.get("split") == "eval"]
        assert len(train) == (3 if v.endswith("bs4") else 1), v
        assert evals and all(0 <= e["test_error"] <= 1 and np.isfinite(e["train_nll"]) for e in evals), v


def test_paper_preset_is_the_papers_network_on_the_files(tmp_path):
    data = _write_mnist(tmp_path / "mnist", compress=False)
    paper = mnist_mlp.PRESETS["paper"]
    assert (paper.data, paper.hidden, paper.layers, paper.epochs, paper.train_images) == ("mnist", 1000, 2, 60, 55000)
    task = mnist_mlp.build(dataclasses.replace(paper, data_path=str(data), hidden=8), "bn-bs4", 0)
    assert task.model[0].in_features == 784 and task.batch_size == 4 and task.opt.base_lr == 1e-3
    from lnedu.data.mnist import read_idx

    test_images = read_idx(data / "t10k-images-idx3-ubyte").reshape(-1, 784) / 255
    np.testing.assert_allclose(np.asarray(task._xte), test_images, atol=1e-7)  # the test file, not the 8x8 digits
    # 55,000 of MNIST's 60,000: the last ones (TensorFlow's validation split, the first 5,000, is left out)
    cut = mnist_mlp.load_data(dataclasses.replace(paper, data_path=str(data), train_images=200))
    train_images = read_idx(data / "train-images-idx3-ubyte").reshape(-1, 784) / 255
    np.testing.assert_allclose(cut.x_train, train_images[-200:], atol=1e-7)
    assert "last 200" in cut.description


def test_paper_preset_refuses_without_the_data(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "cache"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    assert _run(None, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mnist: MNIST handwritten digits" in err[0] and "--data" in err[0]
    assert str(empty) in err[0] and "python -m lnedu data fetch mnist" in err[0]
    assert not (tmp_path / "runs" / "paper" / "mnist" / "ln-bs4-seed0" / "metrics.jsonl").exists()
    # a folder given with --data that lacks a file is refused too, naming the file (never the 8x8 digits instead)
    data = _write_mnist(tmp_path / "partial")
    (data / "t10k-labels-idx1-ubyte.gz").unlink()
    assert _run(data, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing: t10k-labels-idx1-ubyte.gz" in err[0] and str(data) in err[0]


def test_paper_preset_refuses_a_damaged_file(tmp_path, capsys):
    data = _write_mnist(tmp_path / "mnist")
    bad = data / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:200])
    assert _run(data, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lnedu: {bad}: cannot be read whole")
