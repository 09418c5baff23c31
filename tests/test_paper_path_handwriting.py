"""Handwriting's paper path: the `paper` preset (Graves's synthesis network on IAM-OnDB) runs from the command line
on files in IAM-OnDB's layout (lineStrokes XML and the ascii transcriptions), and refuses to run without them."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from lnedu.__main__ import main
from lnedu.experiments import handwriting as hw

# only sizes and the number of updates shrink; data source, loader, window (10 Gaussians), 3 layers, Adam, batch 8
SHRINK = ["steps=3", "hidden=8", "components=2", "seq_len=30", "eval_windows=4", "eval_every=3",
          "checkpoint_every=3"]
TEXTS = {"a01-000": ["A MOVE to stop", "Mr. Gaitskell from", "nominating any more"],
         "a01-001": ["Labour life Peers", "is to be made", "at a meeting"],
         "b02-010": ["of Labour MPs", "tomorrow.", "Mr. Michael Foot"],
         "c03-007": ["has put down", "a resolution on", "the subject"]}


def _write_strokes(path, strokes):
    """One line in IAM-OnDB's stroke format: a description block, then the StrokeSet of Points."""
    out = ['<?xml version="1.0" encoding="ISO-8859-1"?>', "<WhiteboardCaptureSession>",
           "  <WhiteboardDescription>", '    <SensorLocation corner="top_left"/>',
           '    <DiagonallyOppositeCoords x="6512" y="1376"/>', "  </WhiteboardDescription>", "  <StrokeSet>"]
    t = 1000.0
    for s in strokes:
        out.append(f'    <Stroke colour="black" start_time="{t:.2f}" end_time="{t + 0.5:.2f}">')
        for x, y in s:
            out.append(f'      <Point x="{int(x)}" y="{int(y)}" time="{t:.2f}"/>')
            t += 0.01
        out.append("    </Stroke>")
    out += ["  </StrokeSet>", "</WhiteboardCaptureSession>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="ISO-8859-1")


def _write_set(root, seed=0):
    """``root/lineStrokes/a01/a01-000/a01-000u-01.xml`` ... and ``root/ascii/a01/a01-000/a01-000u.txt``."""
    rng = np.random.default_rng(seed)
    for form, lines in TEXTS.items():
        folder = f"{form[:3]}/{form}"
        text = "OCR:\n\n" + " ".join(lines) + "\n\nCSR:\n\n" + "\n".join(lines) + "\n"
        (root / "ascii" / folder).mkdir(parents=True, exist_ok=True)
        (root / "ascii" / folder / f"{form}u.txt").write_text(text, encoding="latin-1")
        for i, line in enumerate(lines, start=1):
            strokes = [np.cumsum(rng.integers(-30, 31, size=(rng.integers(8, 20), 2)), axis=0) + (500 + 200 * w, 700)
                       for w in range(len(line.split()) + 1)]
            _write_strokes(root / "lineStrokes" / folder / f"{form}u-{i:02d}.xml", strokes)
    return root


def _run(data, out):
    args = ["run", "handwriting", "--preset", "paper", "--out", str(out), "--seeds", "0", "--set", *SHRINK]
    return main(args + (["--data", str(data)] if data is not None else []))


def test_paper_preset_reads_iam_ondb_and_trains_the_synthesis_network(tmp_path):
    data = _write_set(tmp_path / "iam-ondb")
    assert _run(data, tmp_path / "runs") == 0
    folder = tmp_path / "runs" / "paper" / "handwriting"
    note = json.loads((folder / "summary.json").read_text(encoding="utf-8"))["note"]
    assert "synthetic" not in note and note.startswith("3 updates a run")  # the run's scale, not the small preset's
    for v in hw.VARIANTS:
        recs = [json.loads(x) for x in (folder / f"{v}-seed0" / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in recs if r.get("split") == "train"]
        evals = [r for r in recs if r.get("split") == "eval"]
        assert len(train) == 3 and all(np.isfinite(r["loss"]) for r in train), v
        assert evals and all(np.isfinite(e["test_nll"]) for e in evals), v


def test_paper_preset_trains_on_the_files_with_their_text(tmp_path):
    data = _write_set(tmp_path / "iam-ondb")
    cfg = dataclasses.replace(hw.PRESETS["paper"], data_path=str(data), hidden=4, components=2, seq_len=10,
                              eval_windows=2)
    task = hw.build(cfg, "ln", 0)
    d = task.data
    assert d.name == "iam-ondb" and len(d.train) + len(d.test) == 12 and len(d.test) == 3  # one form of four
    assert sorted(d.train_text + d.test_text) == sorted(t for lines in TEXTS.values() for t in lines)
    assert task.model.K == 10 and len(task.model.rnns) == 3 and task.model.rnns[0].params["W_x"].shape[0] == 60


def test_paper_preset_refuses_without_the_data(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "cache"
    empty.mkdir()
    monkeypatch.setenv("LNEDU_DATA", str(empty))
    assert _run(None, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "iam-ondb" in err[0] and "--data" in err[0] and "registration" in err[0]
    assert str(empty / "iam-ondb") in err[0]
    assert not (tmp_path / "runs" / "paper" / "handwriting" / "baseline-seed0" / "metrics.jsonl").exists()


def test_paper_preset_refuses_strokes_without_their_text(tmp_path, capsys):
    data = _write_set(tmp_path / "iam-ondb")
    for f in sorted((data / "ascii").rglob("*.txt")):
        f.unlink()
    assert _run(data, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "iam-ondb" in err[0] and "ascii" in err[0]


def test_a_folder_given_is_never_replaced_by_the_synthetic_lines(tmp_path):
    """--data with the embedded-default presets: a folder without IAM-OnDB is refused (it once trained on the
    synthetic lines without a word), and the generated sources take no folder."""
    import re

    import pytest

    from lnedu.data.download import DataUnavailable
    from lnedu.data.handwriting import load_handwriting

    nothing = tmp_path / "not-iam"
    nothing.mkdir()
    for preset in ("small", "medium"):
        assert hw.PRESETS[preset].data == "auto"
        with pytest.raises(DataUnavailable, match="^iam-ondb: .*" + re.escape(str(nothing))):
            hw.build(dataclasses.replace(hw.PRESETS[preset], data_path=str(nothing)), "ln", 0)
    with pytest.raises(ValueError, match="path: expected no path with source='synthetic'"):
        load_handwriting("synthetic", nothing)
