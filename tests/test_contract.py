"""The experiment contract (lnedu.experiments.contract): every module fills it, the registry refuses one that does not
and names what is missing, every task carries the schedule its config sets, one load_task, one section order."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
import types

import pytest

from lnedu import experiments
from lnedu.experiments import contract, runner
from lnedu.experiments.common import CheckpointedTask
from lnedu.experiments.contract import ContractError, check_experiment, check_task
from lnedu.experiments.settings import Setting

NAMES = experiments.names()
SECTIONS = ("model", "data", "task", "build", "verdict", "plot")  # the order of lnedu/experiments/__init__.py


def _fake(**drop_or_change):
    """An experiment module that fills the contract, with some members removed (value ``None``) or changed."""

    @dataclasses.dataclass
    class Config:
        steps: int = 3
        eval_every: int = 1
        checkpoint_every: int = 2
        data_path: str = ""

    m = types.ModuleType("fake_experiment")
    members = {
        "NAME": "fake", "TITLE": "A fake", "PAPER": "nowhere §0", "CLAIM": "nothing", "Config": Config,
        "PRESETS": {"tiny": Config(), "small": Config(), "medium": Config(), "paper": Config()},
        "VARIANTS": ("a", "b"), "SETTINGS": (Setting("steps", "3 (§0)", "steps"),),
        "build": lambda config, variant, seed: None, "verdict": lambda results: None, "plot": lambda results: None,
        "standin": lambda config: config,
    }
    members.update(drop_or_change)
    for k, v in members.items():
        if v is not None:
            setattr(m, k, v)
    return m


def test_the_protocol_names_what_the_runner_and_report_use():
    assert contract.members(contract.Experiment) == ["NAME", "TITLE", "PAPER", "CLAIM", "Config", "PRESETS",
                                                    "VARIANTS", "SETTINGS", "build", "verdict", "plot", "standin"]
    assert check_experiment(_fake()).NAME == "fake"


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_experiment_fills_the_contract(name):
    exp = experiments.get(name)
    assert check_experiment(exp, name) is exp


@pytest.mark.parametrize("missing", ["plot", "verdict", "PRESETS", "CLAIM", "Config", "build", "SETTINGS", "standin"])
def test_a_module_missing_a_member_is_refused_with_its_name(missing):
    with pytest.raises(ContractError, match=rf"fake_experiment: does not fill the experiment contract.*\b{missing} "
                                            r"\(missing\)"):
        check_experiment(_fake(**{missing: None}))


def test_every_missing_member_is_named_at_once():
    with pytest.raises(ContractError) as err:
        check_experiment(_fake(plot=None, TITLE=None))
    assert "TITLE (missing)" in str(err.value) and "plot (missing)" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"VARIANTS": ["a", "b"]}, "VARIANTS (expected a non-empty tuple of distinct names"),
        ({"VARIANTS": ("a", "a")}, "VARIANTS (expected a non-empty tuple of distinct names"),
        ({"NAME": ""}, "NAME (expected a non-empty string"),
        ({"Config": dict}, "Config (expected a dataclass"),
        ({"PRESETS": {"tiny": None}}, "PRESETS (expected the presets ['tiny', 'small', 'medium', 'paper'], lacks"),
        ({"SETTINGS": ()}, "SETTINGS (expected a non-empty tuple of Setting rows, got tuple)"),
        ({"SETTINGS": ("hidden",)}, "SETTINGS (expected a non-empty tuple of Setting rows"),
        ({"standin": lambda: None}, "standin (expected a function of 1 positional argument"),
        ({"Config": dataclasses.make_dataclass("C", [("steps", int, 1)])}, "Config (expected a data_path field"),
        ({"build": lambda config, variant: None}, "build (expected a function of 3 positional arguments"),
        ({"plot": "a figure"}, "plot (expected a function, got str)"),
        ({"GRID": "yes"}, "GRID (expected a bool"),
    ],
)
def test_wrong_members_are_named(change, message):
    with pytest.raises(ContractError, match=re.escape(message)):
        check_experiment(_fake(**change))


def test_the_registry_checks_a_module_when_it_hands_it_out(monkeypatch):
    monkeypatch.setitem(sys.modules, "fake_experiment", _fake(verdict=None))
    monkeypatch.setitem(experiments.EXPERIMENTS, "fake", "fake_experiment")
    with pytest.raises(ContractError, match=r"verdict \(missing\)"):
        experiments.get("fake")
    monkeypatch.setitem(sys.modules, "fake_experiment", _fake(NAME="other"))
    with pytest.raises(ContractError, match=r"NAME \(expected 'fake', the name it is registered under, got 'other'\)"):
        experiments.get("fake")


def test_register_refuses_a_module_that_does_not_fill_the_contract(monkeypatch):
    monkeypatch.setattr(experiments, "EXPERIMENTS", dict(experiments.EXPERIMENTS))
    monkeypatch.setitem(sys.modules, "fake_experiment", _fake(plot=None))
    with pytest.raises(ContractError, match=r"plot \(missing\)"):
        experiments.register("fake", "fake_experiment")
    assert "fake" not in experiments.EXPERIMENTS
    monkeypatch.setitem(sys.modules, "fake_experiment", _fake())
    assert experiments.register("fake", "fake_experiment").NAME == "fake"
    assert experiments.get("fake") is sys.modules["fake_experiment"]


# ---- the task and its schedule -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_task_carries_the_schedule_its_config_sets(name):
    """The runner reads steps, eval_every and checkpoint_every from the task. Every one of them that a Config has
    reaches the task (before: mnist, convnet and draw kept placeholder fields that their tasks ignored)."""
    exp = experiments.get(name)
    cfg = exp.PRESETS["tiny"]
    check_task(exp.build(cfg, exp.VARIANTS[-1], 0), cfg)
    fields = {f.name for f in dataclasses.fields(cfg)} & set(contract.SCHEDULE)
    assert "checkpoint_every" in fields, "every experiment lets its config choose how often to checkpoint"
    changed = dataclasses.replace(cfg, **{k: getattr(cfg, k) + 1 for k in fields})
    task = check_task(exp.build(changed, exp.VARIANTS[-1], 0), changed)
    assert all(getattr(task, k) == getattr(changed, k) for k in fields)
    for preset in exp.PRESETS.values():  # no placeholder (steps = 0) left in any preset
        assert all(getattr(preset, k) > 0 for k in fields), preset


def test_a_task_without_a_schedule_is_named():
    class NoSchedule:
        def step(self):
            return {}

        evaluate = state_dict = step

        def load_state_dict(self, state):
            pass

    with pytest.raises(ContractError, match=r"NoSchedule: .*steps \(missing\); eval_every \(missing\); "
                                            r"checkpoint_every \(missing\)"):
        check_task(NoSchedule())
    task = NoSchedule()
    task.steps, task.eval_every, task.checkpoint_every = 5, 0, 2
    with pytest.raises(ContractError, match=r"eval_every \(expected a positive integer, got 0\)"):
        check_task(task)
    task.eval_every = 1
    with pytest.raises(ContractError, match=r"checkpoint_every \(expected the config's 3, got 2\)"):
        check_task(task, types.SimpleNamespace(checkpoint_every=3))


def test_set_schedule_refuses_what_is_not_a_positive_count():
    task = CheckpointedTask()
    task.set_schedule(10, 2, 5)
    assert (task.steps, task.eval_every, task.checkpoint_every) == (10, 2, 5)
    with pytest.raises(ValueError, match=r"checkpoint_every: expected a positive integer \(a number of updates\), "
                                         r"got 0"):
        task.set_schedule(10, 2, 0)
    with pytest.raises(ValueError, match="steps: expected a positive integer"):
        task.set_schedule(2.5, 2, 1)


def test_the_reader_task_is_a_checkpointed_task():
    from lnedu.experiments import attentive_reader as ar

    task = ar.build(ar.PRESETS["tiny"], "bn-everywhere", 0)
    assert isinstance(task, CheckpointedTask) and "state_dict" not in vars(ar.ReaderTask)
    task.step()
    state = task.state_dict()
    assert int(state["t"]) == 1 and any(k.startswith("opt/") for k in state)
    assert any("running_mean_ym" in k for k in state)  # bn-everywhere's buffers are checkpointed
    again = ar.build(ar.PRESETS["tiny"], "bn-everywhere", 0)
    again.load_state_dict(state)
    assert again.t == 1 and again.step()["loss"] == task.step()["loss"]


# ---- one load_task -----------------------------------------------------------------------------------------------


def test_one_load_task_and_the_old_names_delegate_to_it(monkeypatch):
    from lnedu.experiments import attentive_reader, draw, handwriting

    assert experiments.load_task is runner.load_task
    calls = []

    def fake_load_task(exp, out, config, variant, seed):
        calls.append((exp, out, config, variant, seed))
        return types.SimpleNamespace(model="the model")

    for mod in (attentive_reader, draw, handwriting):
        monkeypatch.setattr(mod, "load_task", fake_load_task)
    cfg = object()
    assert attentive_reader.load_trained("out", cfg, "lstm", 1).model == "the model"
    assert handwriting.load_trained("out", cfg, "ln", 2).model == "the model"
    assert draw.load_trained(cfg, "ln", 3, "out") == "the model"  # draw's old signature, returning the model
    assert calls == [(attentive_reader, "out", cfg, "lstm", 1), (handwriting, "out", cfg, "ln", 2),
                     (draw, "out", cfg, "ln", 3)]


# ---- one layout --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_experiment_module_follows_the_section_order(name):
    """Section banners (``# ---`` then ``# part``) appear in the order the package's docstring states, and the
    contract's members in that order too: constants, Config, PRESETS, build, verdict, plot."""
    exp = experiments.get(name)
    lines = inspect.getsource(exp).splitlines()
    banners = [lines[i + 1][2:].split(":")[0].strip() for i, ln in enumerate(lines[:-1])
               if re.fullmatch(r"# -{20,}", ln) and lines[i + 1].startswith("# ")]
    assert banners, f"{name}: no section banners"
    assert all(b in SECTIONS for b in banners), banners
    assert banners == sorted(banners, key=SECTIONS.index) and len(set(banners)) == len(banners), banners
    at = {}
    for i, ln in enumerate(lines):
        m = re.match(r"(?:def|class) (\w+)|(\w+) = ", ln)
        key = m and (m.group(1) or m.group(2))
        if key in ("NAME", "Config", "PRESETS", "build", "verdict", "plot") and key not in at:
            at[key] = i
    assert list(at) == ["NAME", "Config", "PRESETS", "build", "verdict", "plot"], at


def test_the_docstring_states_the_order():
    doc = experiments.__doc__
    positions = [doc.index(f"**{s}**") for s in SECTIONS]
    assert positions == sorted(positions)


def test_text8_grid_imports_no_private_name():
    src = inspect.getsource(importlib.import_module("lnedu.experiments.text8_grid"))
    imports = [ln for ln in src.splitlines() if ln.startswith(("from ", "import "))]
    assert not any(re.search(r"import .*\b_\w", ln) for ln in imports), imports
