"""``--plan``: the measured and projected cost of a run (lnedu.experiments.plan), and the CLI's --data / --set."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import numpy as np
import pytest

from lnedu import experiments
from lnedu.__main__ import main
from lnedu.data.download import DataUnavailable, RealDataSet
from lnedu.experiments import plan as P

SET = RealDataSet("fakeset", "a fake set (3 files)", "nowhere, a test", "`make fake`", "a.txt, b.txt")


@dataclass
class Config:
    hidden: int = 4
    steps: int = 7
    data: str = "real"
    data_path: str = ""
    rates: tuple = (0.1, 0.2)
    on: bool = False
    clip: float | None = None
    cap: int | None = 5
    lr_by_variant: dict = field(default_factory=dict)


class FakeTask:
    """A task whose update multiplies a (hidden x hidden) matrix: FLOPs known exactly."""

    examples_per_update = 5
    eval_every = 3

    def __init__(self, config):
        self.config, self.steps = config, config.steps
        self.calls = {"step": 0, "evaluate": 0}
        self.model = type("M", (), {"num_parameters": lambda s: config.hidden ** 2})()

    def step(self):
        self.calls["step"] += 1
        return {"loss": 1.0}

    def evaluate(self):
        self.calls["evaluate"] += 1
        return {"nll": 1.0}

    def flops_per_update(self):
        return 3 * 2.0 * self.config.hidden ** 3


class FakeExperiment:
    __name__ = "fake"
    NAME, TITLE, PAPER = "fake", "Fake", "nowhere"
    VARIANTS = ("a", "b")
    SEEDS = {"paper": (0, 1, 2)}
    PRESETS = {"paper": Config(hidden=64)}
    built: list = []

    @classmethod
    def build(cls, config, variant, seed):
        if config.data == "real" and not config.data_path:
            raise SET.missing([config.data_path or "/nowhere"])
        task = FakeTask(config)
        cls.built.append((config, variant, seed, task))
        return task

    @staticmethod
    def standin(config):
        return dataclasses.replace(config, data="standin")


def test_plan_measures_each_variant_and_projects_from_its_own_figures():
    FakeExperiment.built = []
    p = P.plan(FakeExperiment, "paper", config=dataclasses.replace(Config(hidden=64), data_path="here"), timed=3)
    assert [v.variant for v in p.variants] == ["a", "b"] and p.seeds == (0, 1, 2) and p.runs == 6
    tasks = [t for (_, _, _, t) in FakeExperiment.built[1:]]  # the first build only probes for the data
    assert [t.calls for t in tasks] == [{"step": 4, "evaluate": 2}] * 2  # one warm-up + 3 timed; the same for eval
    for v in p.variants:
        assert v.params == 64 ** 2 and v.updates == 7 and v.examples_per_update == 5 and v.timed_updates == 3
        assert v.flops_per_update == 6 * 64 ** 3 and v.seconds_per_update > 0
        assert v.evaluations == 1 + 2 + 1  # step 0, steps 3 and 6, the last step 7
        assert v.seconds == pytest.approx(v.seconds_per_update * 7 + v.seconds_per_evaluation * 4)
    assert p.measured_seconds == pytest.approx(3 * sum(v.seconds for v in p.variants))
    assert p.total_flops == 3 * 2 * 7 * 6 * 64 ** 3
    rate = P.GPU["peak_tflops"] * 1e12 * P.GPU["sustained_fraction"]
    assert p.gpu_seconds == pytest.approx(p.total_flops / rate)
    assert "the preset's own data" in p.data
    text = p.to_text()
    assert "6 runs" in text and "assumed" in text and "A100" in text and p.cpu_gflops > 0


def test_plan_measures_on_the_standin_when_the_real_set_is_missing_and_says_so():
    FakeExperiment.built = []
    p = P.plan(FakeExperiment, "paper", timed=1, evaluate=False)
    assert all(c.data == "standin" for (c, _, _, _) in FakeExperiment.built)
    assert "stand-in" in p.data and "fakeset" in p.data
    assert all(v.seconds_per_evaluation is None for v in p.variants)
    assert "evaluations not measured" in p.to_text()


def test_plan_without_a_standin_passes_the_refusal_on():
    bare = type("Bare", (), {k: getattr(FakeExperiment, k) for k in ("NAME", "VARIANTS", "SEEDS", "PRESETS", "build")})
    with pytest.raises(DataUnavailable, match="fakeset: a fake set .* --data PATH"):
        P.plan(bare, "paper")


def test_plan_refuses_a_bad_number_of_timed_updates():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="timed: expected a positive number"):
            P.plan(FakeExperiment, "paper", timed=bad)


def test_overrides_are_parsed_with_each_fields_type_and_refused_by_name():
    c = P.with_overrides(Config(), {"hidden": "1_024", "on": "yes", "rates": "0.5, 1e-3", "data": "x"})
    assert (c.hidden, c.on, c.rates, c.data) == (1024, True, (0.5, 1e-3), "x")
    c = P.with_overrides(Config(), {"clip": "10", "cap": "None"})  # an optional field: its type, or None
    assert (c.clip, type(c.clip), c.cap) == (10.0, float, None)
    assert P.with_overrides(c, {"cap": "7"}).cap == 7
    for field_, value, msg in (("hidden", "4.5", r"--set hidden: expected a value like 4 \(int\), got '4.5'"),
                               ("on", "maybe", "--set on: expected a value like False"),
                               ("lr_by_variant", "a", "--set lr_by_variant: expected a value like {}"),
                               ("nope", "1", r"--set: expected a field of Config \(.*data_path.*\), got 'nope'")):
        with pytest.raises(ValueError, match=msg):
            P.with_overrides(Config(), {field_: value})


def test_cli_plan_on_a_real_experiment_prints_every_variant(capsys):
    assert main(["run", "mnist", "--preset", "tiny", "--plan", "--plan-updates", "1", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    for v in experiments.get("mnist").VARIANTS:
        assert re.search(rf"^\s+{re.escape(v)}\s+[\d,]+ ", out, re.M), v
    assert "x 1 seeds (0) = 6 runs" in out and "projected, this machine" in out


def test_cli_set_and_data_reach_the_run(tmp_path, capsys):
    code = main(["run", "mnist", "--preset", "tiny", "--seeds", "0", "--variants", "ln-bs128", "--out",
                 str(tmp_path), "--set", "hidden=8", "epochs=0.25"])
    assert code == 0, capsys.readouterr().err
    import json

    s = json.loads((tmp_path / "tiny" / "mnist" / "summary.json").read_text())
    assert s["config"]["hidden"] == 8 and s["config"]["epochs"] == 0.25
    assert main(["run", "order_embeddings", "--preset", "tiny", "--data", str(tmp_path / "absent")]) == 2
    assert "--data: expected the folder or file of order_embeddings's data set" in capsys.readouterr().err
    assert main(["run", "mnist", "--preset", "tiny", "--set", "hidden"]) == 2
    assert "--set: expected FIELD=VALUE, got 'hidden'" in capsys.readouterr().err


def test_durations_read_naturally():
    assert [P._duration(s) for s in (5, 300, 3 * 3600, 5 * 86400)] == ["5 s", "5 min", "3.0 h", "5.0 days"]


def test_cpu_matmul_rate_is_a_plausible_rate():
    r = P.cpu_matmul_rate(256, repeats=2)
    assert 0.1 < r < 1e5 and np.isfinite(r)


@pytest.mark.parametrize("name", experiments.names())
def test_every_experiment_plans_its_tiny_preset_with_flops_and_examples(name):
    exp = experiments.get(name)
    variants = exp.VARIANTS[:1] + exp.VARIANTS[-1:]
    p = P.plan(exp, "tiny", variants=variants, seeds=(0,), timed=1, evaluate=False)
    for v in p.variants:
        assert v.flops_per_update is not None and v.examples_per_update is not None
        assert v.params > 0 and v.updates > 0 and v.examples_per_update > 0
        # a count claiming more work than this CPU can do in the measured time would be wrong
        assert 0 < v.flops_per_update and v.achieved_gflops < 2 * p.cpu_gflops, (v, p.cpu_gflops)


def test_a_sampled_plan_projects_the_unmeasured_variants_at_the_measured_mean():
    many = type("Many", (FakeExperiment,), {"VARIANTS": tuple("abcdefg")})
    many.built = []
    p = P.plan(many, "paper", config=dataclasses.replace(Config(hidden=64), data_path="x"), sample=3, evaluate=False)
    assert [v.variant for v in p.variants] == ["a", "d", "g"] and p.all_variants == tuple("abcdefg")
    assert p.runs == 7 * 3
    assert p.measured_seconds == pytest.approx(sum(v.seconds for v in p.variants) / 3 * 7 * 3)
    assert p.total_flops == 7 * 3 * 7 * 6 * 64 ** 3
    assert "measured 3 of the 7 variants" in p.to_text()
    with pytest.raises(ValueError, match="sample: expected a positive number of variants, got 0"):
        P.plan(many, "paper", sample=0)


def test_the_readme_cost_table_has_a_measured_row_for_every_experiment_and_preset():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- plan-table: begin -->")[1].split("<!-- plan-table: end -->")[0]
    rows = {tuple(c.strip(" `") for c in line.split("|")[1:3]) for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| experiment")}
    want = {(n, p) for n in experiments.names() for p in ("tiny", "small", "medium", "paper")}
    assert rows == want, f"rerun benchmarks/plan_table.py --write README.md: missing {sorted(want - rows)}"
    paper = [line for line in table.splitlines() if "| `paper` |" in line]
    assert all(line.rstrip(" |").endswith(("stand-in", "embedded/real")) for line in paper)
