"""Smoke test of benchmarks/bench_rnn.py: ``--quick`` runs and prints its tables (speed is not asserted)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_rnn.py"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _run(*args, timeout=240):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--rounds", "2", *args], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _summary_rows(out):
    lines = out.splitlines()
    start = lines.index("summary (median per step; memory per step)")
    return lines[start + 1], lines[start + 2:start + 4]


def test_quick_lnedu_only(tmp_path):
    out = _run("--no-torch", "--json", str(tmp_path / "r.json"))
    assert "torch: not used" in out
    for cell in ("LN-LSTM", "LN-GRU"):
        assert f"{cell}: one training step (forward, BPTT, Adam), float32, T=6 B=4 D=8 H=16" in out
    head, rows = _summary_rows(out)
    assert "torch" not in head
    for row, cell in zip(rows, ("LN-LSTM", "LN-GRU")):
        fields = row.split()
        assert fields[0] == cell and len(fields) == 4
        assert all(float(v) > 0 for v in fields[1:])  # ms, peak MiB, kept MiB
    assert out.count("lnedu/lnedu-ref") == 5  # the default step against the reference bodies alone (2 cells, 3 models)
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["sizes"] == {"T": 6, "B": 4, "D": 8, "H": 16} and payload["torch"] is None
    assert [r["cell"] for r in payload["results"]] == ["LN-LSTM", "LN-GRU"]
    assert all(r["ratio_lnedu_over_reference"] > 0 and r["lnedu-ref"]["median_ms"] > 0 for r in payload["results"])
    assert "MNIST-MLP-LN: one update (forward, cross-entropy, backward, Adam), float32" in out
    assert "handwriting LN-LSTM + MDN: one update (forward, MDN NLL, BPTT, clipped Adam), float32" in out
    mlp, hw, bn = payload["models"]
    assert mlp["model"] == "MNIST-MLP-LN" and hw["model"] == "handwriting-LN-LSTM-MDN" and bn["model"] == "BN-LSTM"
    assert all(m["lnedu"]["median_ms"] > 0 and "torch" not in m for m in (mlp, hw, bn))
    assert ("BN-LSTM (the attentive reader's cell): one training step (forward, BPTT, Adam), float32, "
            "T=5 B=4 D=8 H=32") in out
    assert bn["ratio_lnedu_over_reference"] == bn["lnedu"]["median_ms"] / bn["lnedu-ref"]["median_ms"] > 0


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the peer) is not installed")
def test_quick_against_torch():
    out = _run("--threads", "1")
    assert re.search(r"torch \S+, 1 intra-op thread\(s\)", out)
    assert out.count("lnedu/torch") >= 2
    checks = [float(v) for v in re.findall(r"vs torch \(float64\) (\S+)", out)]
    assert len(checks) == 4 and all(c < 1e-10 for c in checks)  # each peer computes the same model (2 cells, 2 models)
    head, rows = _summary_rows(out)
    assert "lnedu/torch" in head and "torch saved MiB" in head
    for row in rows:
        fields = row.split()
        assert len(fields) == 7 and fields[3].endswith("x")
