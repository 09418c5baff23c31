"""Regressions found in review: argument checks, complete optimizer state, resumable logs, file modes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lnedu.functional as F
from lnedu import nn, optim
from lnedu._io import atomic_write_text
from lnedu.experiments.runner import _truncate_log

ROOT = Path(__file__).resolve().parents[1]


def test_linear_and_conv_refuse_mixed_dtypes():
    x = np.ones((2, 3), np.float32) * np.float32(0.5)
    with pytest.raises(TypeError, match="W: expected dtype float32"):
        F.linear(x, np.full((3, 4), 0.1))
    with pytest.raises(TypeError, match="b: expected dtype float32"):
        F.linear(x, np.full((3, 4), 0.1, np.float32), np.full(4, 0.2))
    img = np.full((1, 1, 4, 4), 0.3, np.float32)
    with pytest.raises(TypeError, match="b: expected dtype float32"):
        F.conv2d(img, np.full((1, 3, 3, 2), 0.1, np.float32), np.full(2, 0.1))


def test_layer_norm_2d_names_a_missing_gain():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    with pytest.raises(TypeError, match="gain: expected a floating-point array"):
        F.layer_norm_2d(x, None, np.zeros(3))


def test_batchnorm2d_momentum_is_checked_like_batchnorm():
    with pytest.raises(ValueError, match=r"momentum: expected a number in \(0, 1\]"):
        nn.BatchNorm2d(3, momentum=5.0)


def test_adam_refuses_state_missing_buffers():
    rng = np.random.default_rng(1)
    model = nn.Linear(3, 2, rng=rng, dtype=np.float64)
    opt = optim.Adam(model, lr=1e-2)
    model.grads["W"][...] = rng.normal(size=(3, 2))
    opt.step()
    state = opt.state_dict()
    only_m = {k: v for k, v in state.items() if not k.startswith("v:")}
    with pytest.raises(ValueError, match="expected a 'v' buffer for every parameter after 1 steps"):
        optim.Adam(model, lr=1e-2).load_state_dict(only_m)
    optim.Adam(model, lr=1e-2).load_state_dict(state)  # the complete state still loads


def test_truncate_log_skips_a_record_cut_off_mid_write(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text(json.dumps({"step": 1}) + "\n" + json.dumps({"step": 2}) + "\n" + '{"step": 3, "lo')
    _truncate_log(log, 2)
    assert [json.loads(ln)["step"] for ln in log.read_text().splitlines()] == [1, 2]


def test_atomic_write_keeps_the_file_mode(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    os.chmod(p, 0o644)
    atomic_write_text(p, "new")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644 and p.read_text() == "new"


def test_cli_rejects_zero_jobs():
    res = subprocess.run([sys.executable, "-m", "lnedu", "run", "text8_grid", "--preset", "tiny", "--jobs", "0"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and "--jobs: expected a positive number" in res.stderr
