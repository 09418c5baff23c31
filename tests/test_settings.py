"""The settings tables (lnedu.experiments.settings): read from the presets, pasted in each module's docstring."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lnedu import experiments
from lnedu.experiments.settings import Setting, settings_table


@dataclass
class Config:
    hidden: int = 4
    lr: float = 1e-3
    data: str = "auto"
    rates: tuple = ()


class Fake:
    __name__ = "fake"
    NAME, TITLE, PAPER = "fake", "Fake experiment", "§0"
    PRESETS = {"tiny": Config(), "small": Config(hidden=1500), "medium": Config(hidden=2000, rates=(1, 2)),
               "paper": Config(hidden=4000, lr=0.01, data="real|set")}
    SETTINGS = (
        Setting("hidden units", "4000 (§0)", "hidden"),
        Setting("learning rate", "not stated", lambda c: c.lr * 10, differs="the paper is silent; 0.1 is ours"),
        Setting("data", "the real set", "data"),
        Setting("rates", "-", "rates"),
    )


def test_the_table_reads_every_preset_and_marks_what_differs():
    t = settings_table(Fake)
    assert t.header == ("setting", "paper", "`paper` preset", "`medium` preset", "`small` preset")
    assert t.rows[0] == ("hidden units", "4000 (§0)", "4,000", "2,000", "1,500")
    assert t.rows[1] == ("learning rate", "not stated", "0.1 (differs: the paper is silent; 0.1 is ours)", "0.01",
                         "0.01")
    assert t.rows[3][2:] == ("-", "1, 2", "-")
    md = t.to_markdown().splitlines()
    assert md[0] == "| setting | paper | `paper` preset | `medium` preset | `small` preset |"
    assert md[4] == r"| data | the real set | real\|set | auto | auto |"  # a | in a value is escaped
    assert "<table>" in t._repr_html_() and t._repr_markdown_().startswith("**Fake experiment")


def test_bad_rows_and_tables_are_refused_by_name():
    with pytest.raises(ValueError, match="name: expected a non-empty string"):
        Setting("", "x", "hidden")
    with pytest.raises(ValueError, match="value: expected a Config field name"):
        Setting("a", "x", "not a field")
    with pytest.raises(ValueError, match="value: expected a field of Config, got 'hiden'"):
        Setting("a", "x", "hiden").read(Config())
    bare = type("Bare", (), {"__name__": "bare", "NAME": "bare", "PRESETS": Fake.PRESETS})
    with pytest.raises(ValueError, match="SETTINGS: expected Bare to define"):
        settings_table(bare)
    few = type("Few", (Fake,), {"PRESETS": {"paper": Config()}})
    with pytest.raises(ValueError, match=r"presets: expected presets of fake \(\['paper'\]\), got \['medium'"):
        settings_table(few)


@pytest.mark.parametrize("name", experiments.names())
def test_each_experiment_states_its_settings_and_its_docstring_holds_the_same_table(name):
    exp = experiments.get(name)  # the contract requires SETTINGS
    table = settings_table(exp).to_markdown()
    assert table in exp.__doc__, (f"{exp.__name__}'s docstring does not hold its settings table; paste "
                                  f"settings_table(module).to_markdown():\n{table}")
