"""benchmarks/bench_gpu.py without a GPU: its arguments, byte model, table and verdicts, the no-GPU exit, and a
dry run of the whole measurement on the CPU (NumPy arrays, the fused kernels run by the CUDA emulator,
PyTorch on "cpu"), so that everything but the device itself has run before the script meets one.

No speed is asserted: the numbers of a dry run are CPU and emulator times, meaningless as GPU timings.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lnedu.backend import gpu_available

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------
# the command line


@pytest.mark.skipif(gpu_available(), reason="a GPU is present: the script would run the benchmark")
def test_without_a_gpu_it_says_so_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "results.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no usable CUDA device" in proc.stderr and "nothing was measured" in proc.stderr
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_default_and_quick_arguments(bench):
    args = bench.parse_args([])
    assert args.shapes == [(4096, 1024), (32768, 512), (8192, 4096)]
    assert args.dtypes == ["float32", "float16", "bfloat16"]
    assert args.rounds is None and not args.quick and not args.no_torch and not args.no_lstm
    assert Path(args.json) == ROOT / "benchmarks" / "results" / "bench_gpu.json"
    quick = bench.parse_args(["--quick"])
    assert quick.quick and quick.shapes == [(4096, 1024)]
    custom = bench.parse_args(["--quick", "--shapes", "8x16,2x3x4", "--dtypes", "float16,float32", "--rounds", "5",
                               "--json", "x.json", "--no-torch", "--no-lstm"])
    assert custom.shapes == [(8, 16), (2, 3, 4)] and custom.dtypes == ["float16", "float32"]
    assert (custom.rounds, custom.json, custom.no_torch, custom.no_lstm) == (5, "x.json", True, True)


@pytest.mark.parametrize("argv, message", [
    (["--shapes", "64by256"], "expected a shape like 4096x1024"),
    (["--shapes", "0x8"], "expected a shape like 4096x1024"),
    (["--dtypes", "float32,int8"], "expected a comma-separated list of float32, float16, bfloat16"),
    (["--rounds", "0"], "--rounds: expected a positive count"),
])
def test_bad_arguments_are_refused(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# the byte model


def test_byte_model_counts_what_each_design_moves(bench):
    rows, n, s = 4096, 1024, 4
    full = rows * n * s
    # fused forward: x in, y and xhat out (3 arrays), one float32 rstd per row, gain and bias in
    assert bench.traffic_bytes("lnedu-fused", "fwd", rows, n, s) == 3 * full + 4 * rows + 2 * n * s
    # fused backward: dy and xhat in, dx out; rstd in; gain in, dgain and dbias out
    assert bench.traffic_bytes("lnedu-fused", "bwd", rows, n, s) == 3 * full + 4 * rows + 3 * n * s
    # PyTorch keeps mean and rstd instead of xhat: one array less forward, two per-row vectors
    assert bench.traffic_bytes("torch", "fwd", rows, n, s) == 2 * full + 8 * rows + 2 * n * s
    assert bench.traffic_bytes("torch", "bwd", rows, n, s) == 3 * full + 8 * rows + 3 * n * s
    for name in ("lnedu-fused", "lnedu-portable", "torch"):
        both = bench.traffic_bytes(name, "fwd+bwd", rows, n, s)
        assert both == sum(bench.traffic_bytes(name, p, rows, n, s) for p in ("fwd", "bwd"))
    per = {name: bench.bytes_per_element(name, "fwd+bwd", 4) for name in ("lnedu-fused", "lnedu-portable", "torch")}
    assert per == {"lnedu-fused": 24, "lnedu-portable": 128, "torch": 20}
    assert bench.bytes_per_element("lnedu-fused", "fwd", 2) == 6  # float16: half the bytes
    with pytest.raises(ValueError, match="contender, phase"):
        bench.traffic_bytes("cudnn", "fwd", rows, n, s)


def test_large_shapes_are_the_two_past_the_l2_cache(bench):
    assert [bench.is_large(s) for s in bench.DEFAULT_SHAPES] == [False, True, True]


# --------------------------------------------------------------------------------------------------
# the table and the verdicts, from a results dict


def _timing(ms):
    return {"median_ms": ms, "best_ms": ms, "samples_ms": [ms], "calls_per_sample": 1}


def _case(bench, shape, dtype, times, *, agrees=None, errors=()):
    """A layer-norm record as measure_layer_norm writes it, with ``times[name] = (fwd, bwd, both)`` ms."""
    rows, n = int(np.prod(shape[:-1])), shape[-1]
    contenders = {}
    for name, (fwd, bwd, both) in times.items():
        contenders[name] = {
            "error": None, "max_rel_diff": {"y": 1e-7, "dx": 2e-7, "dgain": 1e-7, "dbias": 1e-7},
            "agrees": (agrees or {}).get(name, True),
            "bytes": {p: bench.traffic_bytes(name, p, rows, n, bench.itemsize_of(dtype)) for p in bench.PHASES},
            "timings": {"fwd": _timing(fwd), "bwd": _timing(bwd), "fwd+bwd": _timing(both)},
        }
    for name in errors:
        contenders[name] = {"error": "CompileException: no such kernel"}
    return {"shape": list(shape), "dtype": dtype, "large": bench.is_large(shape), "contenders": contenders,
            "notes": []}


def _payload(bench, cases, lstm=None):
    return {"device": {"name": "Test GPU"}, "config": {"rounds": 15},
            "copy": {"nbytes": 2**30, "bytes_moved": 2**31, "timing": _timing(1.0), "gbps": 2000.0},
            "layer_norm": cases, "lstm": lstm}


def _row(text, shape, name):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(shape))
    return next(line for line in lines[start:] if f" {name} " in f" {line} ")


def test_report_shows_ratios_bandwidth_and_met_targets(bench):
    # (8192, 4096) float32: the fused pair moves 805,453,824 bytes; in 0.5 ms that is 1611 GB/s, 81% of 2000
    cases = [
        _case(bench, (4096, 1024), "float32", {"lnedu-fused": (0.02, 0.03, 0.06), "lnedu-portable": (0.1, 0.2, 0.3),
                                               "torch": (0.02, 0.03, 0.05)}),
        _case(bench, (8192, 4096), "float32", {"lnedu-fused": (0.25, 0.25, 0.5), "lnedu-portable": (2.0, 3.0, 5.0),
                                               "torch": (0.2, 0.28, 0.48)}),
        _case(bench, (8192, 4096), "bfloat16", {"torch": (0.1, 0.15, 0.25)}),
    ]
    cases[2]["notes"].append("lnedu: no bfloat16 here (install ml_dtypes); PyTorch alone, as context")
    lstm = {"sizes": {"T": 100, "B": 64, "D": 1024, "H": 1024}, "dtype": "float32", "check_rel_diff_float64": 3e-15,
            "first_loss": {"lnedu-fused": 0.5, "lnedu-portable": 0.5, "torch": 0.5},
            "contenders": {"lnedu-fused": {"timing": _timing(90.0)}, "lnedu-portable": {"timing": _timing(150.0)},
                           "torch": {"timing": _timing(100.0)}}}
    text = bench.format_report(_payload(bench, cases, lstm))

    assert "Layer norm forward + backward on Test GPU; copy bandwidth 2000 GB/s" in text
    fused = _row(text, "8192x4096   float32", "lnedu-fused").split()
    assert fused[:8] == ["8192x4096", "float32", "lnedu-fused", "0.250", "0.250", "0.500", "1.04x", "1.00x"]
    assert fused[8:] == ["24", "1611", "81/81/81", "2e-07"]
    portable = _row(text, "8192x4096   float32", "lnedu-portable").split()
    assert portable[:7] == ["lnedu-portable", "2.000", "3.000", "5.000", "10.42x", "10.00x", "128"]  # no label
    assert "note: lnedu: no bfloat16" in text
    assert "!" not in text  # every result agreed

    lines = text.splitlines()
    verdicts = lines[lines.index("targets") + 1:]
    assert len(verdicts) == 3 and all(v.startswith("MET ") for v in verdicts), verdicts
    assert "8192x4096 float32 1.04x" in verdicts[0] and "4096x1024" not in verdicts[0]  # large shapes only
    assert "8192x4096 float32 81%" in verdicts[1]
    assert verdicts[2].endswith(": 0.90x")
    lstm_rows = lines[next(i for i, line in enumerate(lines) if line.startswith("LN-LSTM training step")):]
    assert lstm_rows[2].split() == ["lnedu-fused", "90.00", "0.90x", "0.500000"]
    assert lstm_rows[5].endswith("T=6 B=4 D=8 H=16: 3.0e-15")


def test_report_flags_wrong_results_errors_and_missed_targets(bench):
    cases = [
        _case(bench, (32768, 512), "float32", {"lnedu-fused": (0.3, 0.3, 0.6), "torch": (0.2, 0.28, 0.48)}),
        _case(bench, (8192, 4096), "float16", {"lnedu-fused": (0.1, 0.1, 0.2), "torch": (0.1, 0.1, 0.2)},
              agrees={"lnedu-fused": False}, errors=("lnedu-portable",)),
    ]
    text = bench.format_report(_payload(bench, cases))
    assert "lnedu-portable  error: CompileException: no such kernel" in text
    assert _row(text, "8192x4096   float16", "lnedu-fused").endswith("2e-07!")
    assert "! disagrees with the float64 reference" in text
    targets = bench.evaluate_targets(_payload(bench, cases))
    assert [t["status"] for t in targets] == ["not met", "not met", "not checked"]
    assert "32768x512 float32 1.25x" in targets[0]["detail"]
    assert "8192x4096 float16 1.00x (wrong results)" in targets[0]["detail"]  # fast but wrong: not met
    assert "LN-LSTM training step: not run" in text


def test_without_torch_the_ratio_target_is_not_checked(bench):
    cases = [_case(bench, (8192, 4096), "float32", {"lnedu-fused": (0.25, 0.25, 0.5)})]
    targets = bench.evaluate_targets(_payload(bench, cases))
    assert [t["status"] for t in targets] == ["not checked", "met", "not checked"]
    text = bench.format_report(_payload(bench, cases))
    assert _row(text, "8192x4096", "lnedu-fused").split()[6:8] == ["-", "1.00x"]


# --------------------------------------------------------------------------------------------------
# a dry run of the measurements on the CPU


def _cpu_backend(bench):
    """NumPy arrays, lnedu.cuda's fused functions called directly, their kernels run by the CPU emulator."""
    from lnedu.cuda import norms as CN

    return bench.Backend("numpy", np, lambda: None, "cpu", fused_forward=CN.layer_norm,
                         fused_backward=CN.layer_norm_backward, device={"name": "CPU, emulated kernels"})


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch (the [bench] extra) is not installed")
def test_dry_run_on_the_cpu_with_emulated_kernels(bench, emulator, tmp_path):
    """Rows of 40 units (one item per thread, blocks of 64), the three dtypes, a tiny LSTM, the JSON round trip."""
    payload = bench.run(_cpu_backend(bench), bench.bench_rnn.load_torch(), shapes=[(6, 40)],
                        dtypes=["float32", "float16", "bfloat16"], rounds=1, warmup=0, min_time=1e-4,
                        copy_bytes=1 << 16, lstm_sizes=dict(T=3, B=2, D=5, H=7), log=lambda s: None)
    launched = {expr for expr, _, _ in emulator.launches}
    assert {"norm_forward<float, 1, true>", "norm_backward<lnedu_half, 1, true>"} <= launched

    f32, f16, bf16 = payload["layer_norm"]
    for case in (f32, f16):
        assert list(case["contenders"]) == ["lnedu-fused", "lnedu-portable", "torch"]
    if "bfloat16" in bench.LNEDU_DTYPES:  # ml_dtypes installed (the [gpu] extra): lnedu runs bfloat16 too
        assert list(bf16["contenders"]) == ["lnedu-fused", "lnedu-portable", "torch"] and not bf16["notes"]
        assert "norm_forward<lnedu_bf16, 1, true>" in launched
    else:
        assert list(bf16["contenders"]) == ["torch"] and "no bfloat16" in bf16["notes"][0]
    for case in payload["layer_norm"]:
        for name, entry in case["contenders"].items():
            assert entry["error"] is None and entry["agrees"], (case["dtype"], name, entry)
            assert set(entry["timings"]) == {"fwd", "bwd", "fwd+bwd"}
            assert entry["derived"]["gbps"]["fwd+bwd"] > 0
    lstm = payload["lstm"]
    assert list(lstm["contenders"]) == ["lnedu-fused", "lnedu-portable", "torch"]
    assert lstm["check_rel_diff_float64"] < 1e-10  # the device check: the same model as the PyTorch peer
    losses = list(lstm["first_loss"].values())
    assert max(losses) - min(losses) < 1e-5 * abs(losses[0])  # the same weights: the same first loss
    assert [t["status"] for t in payload["targets"]][:2] == ["not checked", "not checked"]  # no large shape
    assert payload["targets"][2]["status"] in ("met", "not met")

    path = tmp_path / "r.json"
    bench.write_json(str(path), payload)
    text = bench.format_report(json.loads(path.read_text()))
    bf16_rows = "bfloat16" in bench.LNEDU_DTYPES  # lnedu's own bfloat16 rows, with ml_dtypes
    assert "on CPU, emulated kernels" in text
    assert ("6x40        bfloat16 lnedu-fused" if bf16_rows else "6x40        bfloat16 torch") in text
    assert "T=3 B=2 D=5 H=7" in text and text.count("lnedu-portable") == (4 if bf16_rows else 3)



def test_dry_run_without_torch(bench, emulator):
    """No peer: lnedu's contenders alone, a dtype nobody here runs is said so, no target can be judged."""
    bare = bench.run(_cpu_backend(bench), None, shapes=[(6, 40)], dtypes=["float32", "bfloat16"], rounds=1,
                     warmup=0, min_time=1e-4, copy_bytes=1 << 16, lstm_sizes=None, log=lambda s: None)
    assert list(bare["layer_norm"][0]["contenders"]) == ["lnedu-fused", "lnedu-portable"]
    if "bfloat16" in bench.LNEDU_DTYPES:
        assert list(bare["layer_norm"][1]["contenders"]) == ["lnedu-fused", "lnedu-portable"]
    else:
        assert bare["layer_norm"][1]["contenders"] == {} and "nothing to run" in bare["layer_norm"][1]["notes"][-1]
    assert bare["lstm"] is None and [t["status"] for t in bare["targets"]] == ["not checked"] * 3
    assert "LN-LSTM training step: not run" in bench.format_report(bare)
