"""Order-embeddings' paper path (LN §6.1): the ``paper`` preset reads COCO features and captions in the layout of
Vendrov et al.'s ``coco.zip`` (or the older ``NAME_split_ims.npy`` layout), runs through the CLI for a few updates
at shrunk sizes, and refuses, naming the data set and ``--data``, where the files are absent."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lnedu.__main__ import main
from lnedu.data.captions import load_caption_features
from lnedu.experiments import order_embeddings as oe

NOUNS = ["man", "dog", "bus", "pizza", "giraffe", "kite", "train", "woman"]
PLACES = ["on a street", "in a field", "next to a table", "near the water"]


def write_coco_zip(root, sizes=(8, 4, 5), dim=4096):
    """``root/{train,val,test}.txt`` (5 tokenized, lower-cased captions an image, image ``i`` on lines ``5i``..
    ``5i+4``) and ``root/images/10crop/{train,val,test}.npy`` (float32, one row of ``dim`` features an image), as
    unzipped from Vendrov et al.'s ``coco.zip``. Each image's features carry its noun, so there is a match."""
    rng = np.random.default_rng(0)
    (root / "images" / "10crop").mkdir(parents=True)
    for split, n in zip(("train", "val", "test"), sizes):
        nouns = rng.integers(len(NOUNS), size=n)
        feats = rng.random((n, dim)).astype(np.float32)
        feats[np.arange(n), nouns] += 4.0
        np.save(root / "images" / "10crop" / f"{split}.npy", feats / np.linalg.norm(feats, axis=1, keepdims=True))
        lines = [f"a {NOUNS[k]} {PLACES[int(rng.integers(len(PLACES)))]} ." for k in nouns for _ in range(5)]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_the_coco_zip_layout_reads_back(tmp_path):
    root = write_coco_zip(tmp_path / "coco")
    d = load_caption_features(root)
    assert d.name == "coco" and d.feature_dim == 4096 and d.images["dev"].dtype == np.float32
    assert [len(d.images[s]) for s in ("train", "dev", "test")] == [8, 4, 5]
    assert d.caption_image["dev"].tolist() == np.repeat(np.arange(4), 5).tolist()
    assert d.captions["train"][0][0] == "a" and d.captions["train"][0][-1] == "."
    # the paper preset validates on the first N dev images only (Vendrov's datasets.py: 1,000 of 5,000)
    cut = oe._first_dev_images(d, 2)
    assert len(cut.images["dev"]) == 2 and cut.caption_image["dev"].tolist() == [0] * 5 + [1] * 5
    assert cut.captions["dev"] == d.captions["dev"][:10]


def test_a_damaged_feature_file_is_refused_naming_it(tmp_path):
    root = write_coco_zip(tmp_path / "coco")
    (root / "images" / "10crop" / "val.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="val.npy: expected a .npy array"):
        load_caption_features(root)


def _paper_args(data, out, *extra):
    return ["run", "order_embeddings", "--preset", "paper", *data, "--out", str(out), "--seeds", "0", "--set",
            "steps=3", "dim=16", "dim_word=8", "batch_size=4", "eval_every=3", "checkpoint_every=3", "dev_images=3",
            *extra]


def test_the_paper_preset_runs_through_the_cli_on_coco_files(tmp_path):
    root = write_coco_zip(tmp_path / "coco")
    out = tmp_path / "runs"
    assert main(_paper_args(["--data", str(root)], out)) == 0
    folder = out / "paper" / "order_embeddings"
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["claim"] == oe.CLAIM
    assert "64-unit" not in summary["note"] and summary["note"].startswith("3 updates a run")  # not the small's
    for v in oe.VARIANTS:  # every variant trained 3 updates on the files and was tested on their folds
        recs = [json.loads(x) for x in (folder / f"{v}-seed0" / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in recs if r.get("split") == "train"]
        evals = [r for r in recs if r.get("split") == "eval"]
        assert len(train) == 3 and all(np.isfinite(r["loss"]) for r in train), v
        assert evals[-1]["step"] == 3 and 0 <= evals[-1]["test_img_r1"] <= 100, v
    # the run's task: the paper's data settings (features, dev cut, no caption cut, an <eos> step), sizes shrunk
    cfg = dataclasses.replace(oe.PRESETS["paper"], data_path=str(root), steps=3, dim=16, dim_word=8, batch_size=4,
                              eval_every=3, checkpoint_every=3, dev_images=3)
    task = oe.build(cfg, "ln-gru", 0)
    assert task.data.name == "coco" and task.data.feature_dim == 4096 and len(task.data.images["dev"]) == 3
    eos = task.vocab["<eos>"]
    assert eos > 1 and all(ids[-1] == eos for ids in task._ids["train"])
    assert task.config.lr == 1e-3 and task.config.margin_order == 0.05 and task.config.max_len == 0
    for _ in range(3):
        assert np.isfinite(task.step()["loss"])
    ev = task.evaluate()
    assert 0 <= ev["val_img_r1"] <= 100 and 0 <= ev["test_cap_r10"] <= 100


def test_the_paper_preset_refuses_without_the_features(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    oe._data.cache_clear()
    assert main(_paper_args([], tmp_path / "runs")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnedu: coco: MS-COCO captions")
    assert str(empty / "coco") in err[0] and "--data PATH" in err[0] and "vendrov/datasets/coco.zip" in err[0]
    assert not (tmp_path / "runs" / "paper" / "order_embeddings" / "summary.json").exists()
    # the embedded default stays the default of the smaller presets, and says so
    assert oe.build(oe.PRESETS["tiny"], "gru", 0).data.description.startswith("scikit-learn's 8x8 digits")


def test_flops_per_update_against_a_hand_count():
    cfg = dataclasses.replace(oe.PRESETS["tiny"], dim=6, dim_word=5, batch_size=4)
    for variant in ("gru", "sym-gru"):
        task = oe.build(cfg, variant, 0)
        assert task.examples_per_update == 4
        T = 7.0
        # GRU: x (4, 5) @ W_x (5, 18) and h (4, 6) @ W_hh (6, 18) each of 7 steps; image: (4, 64) @ (64, 6)
        forward = 7 * (2 * 4 * 5 * 18 + 2 * 4 * 6 * 18) + 2 * 4 * 64 * 6
        if variant == "sym-gru":
            forward += 2 * 4 * 6 * 4  # the (4, 6) @ (6, 4) cosine similarities
        assert task.flops_per_update(T) == 3 * forward
    # the default length: the padded length of the first batch is its longest caption
    _, caps = task._batch()
    assert task.padded_length(1) == max(len(task._ids["train"][c]) for c in caps)


def test_standin_has_the_real_shapes():
    cfg = oe.standin(dataclasses.replace(oe.PRESETS["paper"], dim=8, dim_word=4))
    task = oe.build(cfg, "gru", 0)
    assert task.data.feature_dim == 4096 and task.data.name == "standin" and "timing only" in task.data.description
    assert task.examples_per_update == 128 and np.isfinite(task.step()["loss"])


def test_a_folder_given_with_the_digits_is_refused(tmp_path):
    """``--data`` with ``data='digits'`` (the tiny preset; it reads no file) is refused naming the path, not
    ignored while the run trains on the 8x8 digits; ``'auto'`` reads the folder."""
    root = write_coco_zip(tmp_path / "coco")
    assert oe.PRESETS["tiny"].data == "digits"
    with pytest.raises(ValueError, match="path: expected no path with source='digits'"):
        oe.build(dataclasses.replace(oe.PRESETS["tiny"], data_path=str(root)), "gru", 0)
    task = oe.build(dataclasses.replace(oe.PRESETS["tiny"], data="auto", data_path=str(root)), "gru", 0)
    assert task.data.name == "coco"
