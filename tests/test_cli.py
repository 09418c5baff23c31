"""The command line (``python -m lnedu``): every bad argument, damaged file or busy folder is one line on stderr
and exit status 2, before anything is written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lnedu.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _cli(*argv):
    return subprocess.run([sys.executable, "-m", "lnedu", *argv], capture_output=True, text=True, cwd=ROOT)


def _main(capsys, *argv):
    """``main(argv)`` in this process (a fresh interpreter costs seconds per case): ``(exit status, stderr)``;
    argparse's own errors leave through ``SystemExit``, as they would from ``python -m lnedu``."""
    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def test_a_cli_error_is_one_line_from_the_real_entry_point(tmp_path):
    """One error through ``python -m lnedu`` itself; the cases below call ``main`` in-process."""
    res = _cli("run", "imagenet")
    assert res.returncode == 2 and "invalid choice: 'imagenet'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "imagenet"], "invalid choice: 'imagenet'"),
        (["run", "mnist", "--preset", "huge"], "--preset: expected one of"),
        (["run", "mnist", "--preset", "tiny", "--seeds", "x"], "invalid int value"),
        (["report", "--runs", "RUNS"], "runs: no finished experiments"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("RUNS", str(tmp_path / "none")) for a in argv]
    code, err = _main(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err


def test_cli_run_tiny_and_list(tmp_path):
    res = _cli("run", "mnist", "--preset", "tiny", "--seeds", "0", "--variants", "ln-bs128", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "verdict: undecided (within seed noise)" in res.stdout  # one seed: no estimate of the noise
    assert (tmp_path / "tiny" / "mnist" / "summary.json").exists()  # runs/PRESET/NAME, as the notebooks read
    listing = _cli("list")
    assert "mnist" in listing.stdout and "claim:" in listing.stdout


def test_cli_rejects_zero_jobs(capsys):
    code, err = _main(capsys, "run", "text8_grid", "--preset", "tiny", "--jobs", "0")
    assert code == 2 and "--jobs: expected a positive number" in err


@pytest.mark.parametrize("seeds, message", [(["0", "0"], "seeds: expected distinct seeds"),
                                            (["-1"], "seeds: expected non-negative integers, got -1"),
                                            (["2", "1", "2"], "got 2 more than once")])
def test_bad_seeds_are_refused_before_any_folder(tmp_path, capsys, seeds, message):
    out = tmp_path / "runs"
    assert main(["run", "mnist", "--preset", "tiny", "--seeds", *seeds, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("verb", [["reproduce"], ["notebooks", "--execute-in-place"]])
@pytest.mark.parametrize("timeout", ["-5", "0", "soon"])
def test_timeout_must_be_positive(tmp_path, capsys, verb, timeout):
    code, err = _main(capsys, *verb, "--out" if verb == ["reproduce"] else "--folder", str(tmp_path / "out"),
                      "--timeout", timeout)
    assert code == 2 and "--timeout: expected a positive integer" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_reproduce_without_the_lab_extra_names_the_extra(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nbconvert" else real(name, *a))
    assert main(["reproduce", "--out", str(tmp_path / "out"), "--notebooks", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "reproduce: needs the [lab] extra (nbconvert not installed)" in err and 'pip install "lnedu[lab]"' in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_damaged_checkpoint_is_one_line_then_restart_damaged_starts_over(tmp_path, capsys):
    args = ["run", "mnist", "--preset", "tiny", "--seeds", "0", "--variants", "ln-bs128", "--out", str(tmp_path)]
    assert main(args) == 0
    ckpt = tmp_path / "tiny" / "mnist" / "ln-bs128-seed0" / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    (ckpt.parent / "result.json").unlink()
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lnedu: {ckpt}: ") and "--restart-damaged" in err and len(err.strip().splitlines()) == 1
    assert main([*args, "--resume", "--restart-damaged"]) == 0
    assert (ckpt.parent / "result.json").exists()


def test_a_grid_run_takes_restart_damaged_too(tmp_path, capsys):
    """The damaged-file message says --restart-damaged; a grid experiment (--jobs) used to refuse the flag."""
    args = ["run", "text8_grid", "--preset", "tiny", "--seeds", "0", "--variants", "lstm-ln-xavier", "--jobs", "1",
            "--out", str(tmp_path)]
    assert main(args) == 0
    ckpt = tmp_path / "tiny" / "text8_grid" / "lstm-ln-xavier-seed0" / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    (ckpt.parent / "result.json").unlink()
    capsys.readouterr()
    assert main([*args, "--resume"]) != 0
    assert "--restart-damaged" in capsys.readouterr().err
    assert main([*args, "--resume", "--restart-damaged"]) == 0
    assert (ckpt.parent / "result.json").exists()


def test_the_notebook_runner_and_reproduce_keep_their_old_import_paths():
    from lnedu import notebooks
    from lnedu.reproduce import reproduce

    assert notebooks.reproduce is reproduce  # lnedu.notebooks.reproduce, for one release
    assert notebooks.atomic_write_text.__module__ == "lnedu._io"


@pytest.mark.parametrize("name", ["summary.json", "ln-bs128-seed0/result.json"])
def test_report_refuses_a_damaged_file_by_name(tmp_path, capsys, name):
    runs = tmp_path / "runs"
    args = ["run", "mnist", "--preset", "tiny", "--seeds", "0", "--variants", "ln-bs128", "--out", str(runs)]
    assert main(args) == 0
    path = runs / "tiny" / "mnist" / name
    path.write_bytes(path.read_bytes()[:40])
    capsys.readouterr()
    assert main(["report", "--runs", str(runs), "--preset", "tiny", "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lnedu: {path}: expected ") and len(err.strip().splitlines()) == 1


def test_a_notebook_shows_a_command_line_run_without_retraining(tmp_path, monkeypatch):
    """One run layout (issue 19 item 8): `run NAME --out DIR` writes DIR/PRESET/NAME, where notebook_run (with
    LNEDU_RUNS=DIR) finds it; the notebook then builds no task, so nothing is trained again."""
    from lnedu import experiments
    from lnedu.experiments import convnet

    args = ["run", "convnet", "--preset", "tiny", "--seeds", "0", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    summary = json.loads((tmp_path / "tiny" / "convnet" / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["verdict"] and summary["paper_numbers"] == convnet.PAPER_NUMBERS

    def no_training(*a, **k):
        raise AssertionError("the notebook trained again instead of showing the command line's runs")
    monkeypatch.setattr(convnet, "build", no_training)
    monkeypatch.setenv("LNEDU_RUNS", str(tmp_path))
    monkeypatch.setenv("LNEDU_PRESET", "tiny")
    monkeypatch.setenv("LNEDU_SEEDS", "0 1")
    exp, preset, results = experiments.notebook_run("convnet", progress=False)
    assert preset == "tiny" and {r.seed for runs in results.values() for r in runs} == {0, 1}
    assert set(results) == set(convnet.VARIANTS)
    assert main(["report", "--runs", str(tmp_path), "--preset", "tiny", "--out", str(tmp_path / "rep")]) == 0
    assert "Convolutional networks" in (tmp_path / "rep" / "claims.md").read_text()


def test_run_defaults_to_the_experiments_own_seeds(tmp_path, capsys):
    from lnedu.experiments import convnet

    assert main(["run", "convnet", "--preset", "tiny", "--variants", "ln", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "tiny" / "convnet" / "summary.json").read_text())
    assert tuple(summary["seeds"]) == convnet.SEEDS["tiny"]


def test_a_paper_run_without_its_data_is_refused_in_one_line_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LNEDU_DATA", str(tmp_path / "empty-cache"))
    out = tmp_path / "runs"
    assert main(["run", "mnist", "--preset", "paper", "--seeds", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnedu: mnist: ") and "--data PATH" in err[0], err
    assert not (out / "paper" / "mnist").exists()  # no empty run folder, no lock


def test_data_fetch_knows_binarized_mnist_and_refuses_offline_in_one_line(tmp_path, monkeypatch, capsys):
    import urllib.request

    def offline(*a, **k):
        raise OSError("no network in this test")

    monkeypatch.setenv("LNEDU_DATA", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["data", "fetch", "binarized_mnist"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lnedu: ") and "download failed" in err[0], err
