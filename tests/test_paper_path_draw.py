"""DRAW's paper path: the `paper` preset runs from the command line on files in binarized MNIST's format, and
refuses to run without them (naming the data set and --data) or on a damaged file (naming the file)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lnedu.__main__ import main
from lnedu.data.binarized_mnist import BINARIZED_MNIST_FILES, write_amat
from lnedu.experiments import draw

# only sizes and the number of updates shrink; data source, loader, rates, read/write grids and schedule kind stay
SHRINK = ["glimpses=3", "hidden=8", "latent=4", "batch_size=8", "epochs=1", "checkpoint_every=2"]


def _write_set(folder, rows=(24, 6, 10), seed=0):
    """Three .amat files of random binary 28x28 images (not all zeros or ones), train / valid / test."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in zip(BINARIZED_MNIST_FILES, rows):
        write_amat(folder / name, rng.random((n, 784)) < rng.uniform(0.1, 0.4))
    return folder


def _run(data, out, *extra):
    args = ["run", "draw", "--preset", "paper", "--out", str(out), "--seeds", "0", "--set", *SHRINK]
    return main(args + (["--data", str(data)] if data is not None else []) + list(extra))


def test_paper_preset_reads_the_binarized_mnist_files_and_trains(tmp_path):
    data = _write_set(tmp_path / "bmnist")
    assert _run(data, tmp_path / "runs") == 0
    folder = tmp_path / "runs" / "paper" / "draw"
    for v in draw.VARIANTS:
        lines = (folder / f"{v}-seed0" / "metrics.jsonl").read_text().splitlines()
        recs = [json.loads(x) for x in lines]
        train = [r for r in recs if r.get("split") == "train"]
        evals = [r for r in recs if r.get("split") == "eval"]
        assert len(train) == 3, v  # 24 images / batch 8: three updates
        assert evals and all(np.isfinite(e["test_bound"]) and e["test_bound"] > 0 for e in evals), v


def test_paper_preset_uses_the_files_and_each_papers_rate(tmp_path):
    import dataclasses

    data = _write_set(tmp_path / "bmnist")
    cfg = dataclasses.replace(draw.PRESETS["paper"], data_path=str(data), glimpses=2, hidden=4, latent=2,
                              batch_size=8)
    images = draw.binarized_digits(cfg.data, cfg.binarization, cfg.data_path)
    assert images.x_train.shape == (24, 784) and images.x_test.shape == (10, 784)
    assert "Larochelle & Murray" in images.description and "not the published" in images.description
    rates = {v: draw.build(cfg, v, 0).opt.base_lr for v in draw.VARIANTS}
    assert rates == {"baseline": 1e-3, "ln": 1e-3, "normprop": 1e-2}  # LN §6.4's default Adam; NormProp §5.2
    task = draw.build(cfg, "ln", 0)
    np.testing.assert_array_equal(np.asarray(task._xte), images.x_test)  # the test file, not the 8x8 digits


def test_paper_preset_refuses_without_the_data(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "cache"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    monkeypatch.delenv("LNEDU_DOWNLOAD", raising=False)
    assert _run(None, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "binarized_mnist" in err[0] and "--data" in err[0] and str(empty) in err[0]
    assert not (tmp_path / "runs" / "paper" / "draw" / "baseline-seed0" / "metrics.jsonl").exists()


@pytest.mark.parametrize("damage", ["value 2", "short row", "empty"])
def test_paper_preset_refuses_a_damaged_file(tmp_path, capsys, damage):
    data = _write_set(tmp_path / "bmnist")
    test_file = data / "binarized_mnist_test.amat"
    lines = test_file.read_text().splitlines()
    if damage == "value 2":
        lines[3] = "2" + lines[3][1:]
    elif damage == "short row":
        lines[5] = lines[5][:-4]
    else:
        lines = []
    test_file.write_text("\n".join(lines))
    assert _run(data, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(test_file) in err[0], err
