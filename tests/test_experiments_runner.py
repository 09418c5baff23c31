"""The experiment runner: logs, atomic checkpoints, resume with identical results, the CLI and the report."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lnedu import experiments
from lnedu.experiments import mnist_mlp
from lnedu.experiments.common import epoch_batches
from lnedu.experiments.runner import run_one

ROOT = Path(__file__).resolve().parents[1]
CFG = dataclasses.replace(mnist_mlp.PRESETS["tiny"], epochs=0.2)  # 67 steps at batch 4


def _final_state(folder):
    with np.load(folder / "checkpoint.npz") as z:
        return {k: z[k] for k in z.files}


def test_run_interrupted_before_any_checkpoint_restarts_to_identical_results(tmp_path):
    cfg = CFG  # the task checkpoints once per epoch: 67 steps end before the first one
    whole = run_one(mnist_mlp, cfg, "ln-bs4", 3, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(mnist_mlp, cfg, "ln-bs4", 3, tmp_path / "b", progress=False, stop_after=30)
    folder_b = tmp_path / "b" / "mnist" / "ln-bs4-seed3"
    assert not (folder_b / "checkpoint.npz").exists() and not (folder_b / "result.json").exists()
    resumed = run_one(mnist_mlp, cfg, "ln-bs4", 3, tmp_path / "b", resume=True, progress=False)
    assert resumed.train == whole.train
    assert resumed.eval == whole.eval
    a, b = _final_state(tmp_path / "a" / "mnist" / "ln-bs4-seed3"), _final_state(folder_b)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    steps = [json.loads(ln)["step"] for ln in (folder_b / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps), "a resumed log must not repeat or reorder steps"


def test_resume_mid_epoch_from_checkpoint(tmp_path, monkeypatch):
    """Interrupt after a checkpoint inside the run, resume, and match the uninterrupted run bit for bit."""
    orig = mnist_mlp.build

    def build_small_ckpt(config, variant, seed):
        task = orig(config, variant, seed)
        task.checkpoint_every = 10
        return task

    monkeypatch.setattr(mnist_mlp, "build", build_small_ckpt)
    whole = run_one(mnist_mlp, CFG, "bn-bs4", 1, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(mnist_mlp, CFG, "bn-bs4", 1, tmp_path / "b", progress=False, stop_after=25)
    saved = _final_state(tmp_path / "b" / "mnist" / "bn-bs4-seed1")
    assert int(saved["__step__"]) == 20
    resumed = run_one(mnist_mlp, CFG, "bn-bs4", 1, tmp_path / "b", resume=True, progress=False)
    assert resumed.train == whole.train and resumed.eval == whole.eval


def test_tiny_preset_learns(tmp_path):
    cfg = dataclasses.replace(CFG, epochs=1)
    res = run_one(mnist_mlp, cfg, "ln-bs4", 0, tmp_path, progress=False)
    first, last = res.eval[0]["test_error"], res.eval[-1]["test_error"]
    assert last < 0.5 * first, (first, last)
    losses = [r["loss"] for r in res.train]
    assert np.mean(losses[-20:]) < np.mean(losses[:20])


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    a = epoch_batches(50, 8, seed=1, epoch=2)
    b = epoch_batches(50, 8, seed=1, epoch=2)
    c = epoch_batches(50, 8, seed=1, epoch=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert len(a) == 6 and sorted(np.concatenate(a).tolist()) == sorted(set(np.concatenate(a).tolist()))


def test_run_and_report_write_summary_table_and_plot(tmp_path):
    runs = tmp_path / "runs"
    experiments.run(mnist_mlp, config=CFG, seeds=(0, 1), variants=["bn-bs4", "ln-bs4", "bn-bs128", "ln-bs128"],
                    out=runs, progress=False)
    summary = json.loads((runs / "mnist" / "summary.json").read_text())
    assert summary["held"] in (True, False)
    assert "bs4:" in summary["our_figure"]
    from lnedu.experiments.report import write_report

    rows = write_report(runs, tmp_path / "rep")
    assert [r["name"] for r in rows] == ["mnist"]
    assert (tmp_path / "rep" / "mnist.png").stat().st_size > 1000
    md = (tmp_path / "rep" / "claims.md").read_text()
    assert "| Permutation-invariant MNIST | LN §6.6, Figure 6 |" in md


def test_unknown_preset_and_variant_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="preset: expected one of"):
        experiments.run(mnist_mlp, "huge", out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="variants: expected names from"):
        experiments.run(mnist_mlp, "tiny", variants=["ln-bs5"], out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="name: expected one of"):
        experiments.get("imagenet")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "imagenet"], "invalid choice: 'imagenet'"),
        (["run", "mnist", "--preset", "huge"], "--preset: expected one of"),
        (["run", "mnist", "--preset", "tiny", "--seeds", "x"], "invalid int value"),
        (["report", "--runs", "RUNS"], "runs: no finished experiments"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, argv, message):
    argv = [a.replace("RUNS", str(tmp_path / "none")) for a in argv]
    res = subprocess.run([sys.executable, "-m", "lnedu", *argv], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_cli_run_tiny_and_list(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "lnedu", "run", "mnist", "--preset", "tiny", "--seeds", "0", "--variants", "ln-bs128",
         "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    assert "verdict: undecided" in res.stdout
    listing = subprocess.run([sys.executable, "-m", "lnedu", "list"], capture_output=True, text=True, cwd=ROOT)
    assert "mnist" in listing.stdout and "claim:" in listing.stdout


@pytest.mark.parametrize("name", experiments.names())
def test_every_experiment_runs_its_tiny_preset_and_decides(name, tmp_path):
    exp = experiments.get(name)
    assert exp.NAME == name and exp.CLAIM and exp.PAPER and set(exp.PRESETS) == {"tiny", "small", "paper"}
    results = experiments.run(exp, "tiny", seeds=(0,), out=tmp_path, progress=False)
    assert set(results) == set(exp.VARIANTS)
    summary = json.loads((tmp_path / name / "summary.json").read_text())
    assert summary["held"] in (True, False, None) and summary["our_figure"]
    import matplotlib

    matplotlib.use("Agg")
    fig = exp.plot(results)
    assert fig.axes
