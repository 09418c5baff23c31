"""The per-variant learning-rate sweep (issue 19 item 4): it runs, it chooses what its own runs say, its table is
stored and shown without training, and every preset trains each variant at the rate the table chose."""

import dataclasses
import json
import math

import numpy as np
import pytest

from lnedu import experiments as E
from lnedu.data.handwriting import StrokeDataset
from lnedu.data.mnist import Dataset
from lnedu.experiments import mnist_mlp, tune
from lnedu.experiments.common import hold_out, lr_for
from lnedu.experiments.runner import load_results


def test_sweep_on_a_tiny_preset_with_two_rates(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "TUNED", tmp_path / "tuned")  # a test never writes into the package
    monkeypatch.setitem(tune.SPECS, "mnist", dataclasses.replace(tune.SPECS["mnist"], overrides={"holdout": 100}))
    tab = tune.sweep("mnist", "tiny", rates=(3e-4, 3e-3), seeds=(100, 101), variants=["bn-bs128", "ln-bs128"],
                     out=tmp_path)
    assert tab.rates == [3e-4, 3e-3] and tab.seeds == [100, 101] and set(tab.results) == {"bn-bs128", "ln-bs128"}
    assert not (tmp_path / "tuned").exists()  # store=False
    for variant in ("bn-bs128", "ln-bs128"):
        means = {}
        for rate in tab.rates:
            runs = load_results(tmp_path / "tiny" / "tune" / "mnist" / f"lr{rate:g}", "mnist")[variant]
            assert sorted(r.seed for r in runs) == [100, 101]  # never the verdict's seeds
            # an independent figure: the held-out NLL of the last 3 evaluations, averaged
            figs = [float(np.mean([e["test_nll"] for e in r.eval][-3:])) for r in sorted(runs, key=lambda r: r.seed)]
            assert tab.results[variant][f"{rate:g}"] == pytest.approx(figs)
            means[rate] = np.mean(figs)
        assert tab.chosen[variant] == min(means, key=means.get)
    n_train = len(mnist_mlp.build(mnist_mlp.PRESETS["tiny"], "ln-bs128", 0).data.y_train)
    assert tab.steps == {v: (n_train - 100) // 128 for v in ("bn-bs128", "ln-bs128")}  # one epoch of the rest
    # the table is written beside the runs and reads back the same
    again = tune.TuneTable.from_json(tmp_path / "tiny" / "tune" / "mnist" / "table.json")
    assert again == tab
    text = tab.to_markdown()
    assert "| bn-bs128 |" in text and "lr 0.003" in text and "held out" in text
    # rerunning reuses the finished runs (no training) and gives the same table; store=True writes it
    assert tune.sweep("mnist", "tiny", rates=(3e-4, 3e-3), seeds=(100, 101), variants=["bn-bs128", "ln-bs128"],
                      out=tmp_path, store=True) == tab
    assert tune.table("mnist", "tiny") == tab


def test_the_sweep_evaluates_on_held_out_training_images(tmp_path):
    config = dataclasses.replace(mnist_mlp.PRESETS["tiny"], holdout=100)
    task = mnist_mlp.build(config, "ln-bs128", 0)
    full = mnist_mlp.build(mnist_mlp.PRESETS["tiny"], "ln-bs128", 0)
    assert len(task.data.y_test) == 100 and len(task.data.y_train) == len(full.data.y_train) - 100
    train_rows = {r.tobytes() for r in full.data.x_train}
    assert all(r.tobytes() in train_rows for r in task.data.x_test)  # validation rows come from the training set
    test_rows = {r.tobytes() for r in full.data.x_test}
    assert not any(r.tobytes() in test_rows for r in task.data.x_train[:50] if r.tobytes() not in train_rows)


def test_hold_out_is_a_fixed_disjoint_split():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    data = Dataset(x, np.arange(20), x[:3], np.arange(3), "digits", (1, 2), "toy")
    a, b = hold_out(data, 5), hold_out(data, 5)
    assert np.array_equal(a.x_test, b.x_test) and len(a.x_test) == 5 and len(a.x_train) == 15
    assert sorted(np.concatenate([a.y_train, a.y_test]).tolist()) == list(range(20))
    np.testing.assert_array_equal(a.x_test[:, 0] / 2, a.y_test)  # rows keep their labels
    assert "5 training examples held out" in a.description
    assert hold_out(data, 0) is data
    lines = StrokeDataset([np.full((3, 3), i, np.float32) for i in range(10)], [], "synthetic", 1.0, "toy")
    h = hold_out(lines, 4, train="train", labels=None, test="test")
    assert len(h.train) == 6 and len(h.test) == 4
    assert sorted(int(s[0, 0]) for s in h.train + h.test) == list(range(10))
    with pytest.raises(ValueError, match="holdout"):
        hold_out(data, 20)
    with pytest.raises(ValueError, match="holdout"):
        hold_out(data, -1)


def test_lr_for_reads_the_variant_rate_else_the_shared_one():
    config = dataclasses.replace(mnist_mlp.PRESETS["tiny"], lr=1e-3, lr_by_variant={"ln-bs4": 3e-4})
    assert lr_for(config, "ln-bs4") == 3e-4 and lr_for(config, "bn-bs4") == 1e-3
    assert mnist_mlp.build(config, "ln-bs4", 0).opt.base_lr == 3e-4
    assert mnist_mlp.build(config, "bn-bs4", 0).opt.base_lr == 1e-3
    with pytest.raises(ValueError, match="lr_by_variant"):
        lr_for(dataclasses.replace(config, lr_by_variant={"ln-bs4": 0.0}), "ln-bs4")
    with pytest.raises(TypeError, match="lr_by_variant"):
        lr_for(dataclasses.replace(config, lr_by_variant=[1e-3]), "ln-bs4")


def test_figure_is_the_mean_of_the_last_three_evaluations():
    run = E.RunResult("v", 0, [], [{"step": s, "split": "eval", "m": float(s)} for s in range(6)])
    assert tune.figure(run, "m") == 4.0
    with pytest.raises(ValueError, match="metric"):
        tune.figure(run, "other")


def test_choose_skips_diverged_rates_and_follows_the_mode():
    res = {"a": {"0.001": [1.0, 3.0], "0.01": [math.nan], "0.1": [1.5, 1.5]}}
    assert tune._choose(res, [1e-3, 1e-2, 1e-1], "min") == {"a": 0.1}
    assert tune._choose(res, [1e-3, 1e-2, 1e-1], "max") == {"a": 0.001}
    with pytest.raises(ValueError, match="no rate"):
        tune._choose({"a": {"0.01": [math.nan]}}, [1e-2], "min")


def test_an_experiment_without_a_sweep_is_named():
    with pytest.raises(ValueError, match="text8_grid"):
        tune.sweep("text8_grid", "tiny")


@pytest.mark.parametrize("name", sorted(tune.SPECS))
def test_every_speed_experiment_has_its_table_and_its_preset_holds_the_choice(name):
    exp = E.get(name)
    tab = tune.table(name, "small")  # stored: a notebook shows it without training
    assert tab.experiment == name and set(tab.results) == set(exp.VARIANTS)
    assert all(s >= 100 for s in tab.seeds)  # never the verdict's seeds
    assert tune.check_preset(name, "small") == []
    config = exp.PRESETS["small"]
    for variant, rate in tab.chosen.items():
        assert rate in tab.rates
        assert lr_for(config, variant) == rate
    data = json.loads(tune.tuned_path(name).read_text())
    assert data["chosen"] == tab.chosen


def test_a_damaged_table_is_refused_naming_it(tmp_path):
    from lnedu._io import DamagedFile

    bad = tmp_path / "x.json"
    bad.write_text('{"experiment": "mnist"}')
    with pytest.raises(DamagedFile, match="x.json"):
        tune.TuneTable.from_json(bad)


def test_the_tune_command_reruns_the_sweep(tmp_path, capsys):
    from lnedu.__main__ import main

    code = main(["tune", "mnist", "--preset", "tiny", "--rates", "3e-4", "3e-3", "--variants", "ln-bs128",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| ln-bs128 |" in out and "lr 0.0003" in out and "lr 0.003" in out
    saved = tune.TuneTable.from_json(tmp_path / "tiny" / "tune" / "mnist" / "table.json")
    assert saved.rates == [3e-4, 3e-3] and set(saved.results) == {"ln-bs128"}
    assert "does not hold these choices" in out  # the tiny preset has no lr_by_variant
    assert main(["tune", "text8_grid", "--preset", "tiny", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "learning-rate sweep" in err
    assert main(["tune", "mnist", "--preset", "huge", "--out", str(tmp_path)]) == 2
    assert "--preset" in capsys.readouterr().err


def test_the_tables_ship_with_the_package():
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    assert "tuned/*.json" in data["lnedu.experiments"]
    assert tune.TUNED == root / "lnedu" / "experiments" / "tuned" and sorted(tune.TUNED.glob("*-small.json"))
