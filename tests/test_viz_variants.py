"""lnedu.viz.variants (notebook 15): the pure functions behind the pictures, and that the figures and explorers
build and react."""

from __future__ import annotations

import numpy as np
import pytest

from lnedu.experiments import which_ln_lstm
from lnedu.nn.recurrent.variants import VARIANTS
from lnedu.viz import variants as V


def test_reduction_groups_share_statistics_as_the_method_says():
    shape = (2, 3, 2, 2)
    ln = V.reduction_groups("NCHW", "CHW", shape)
    assert len(np.unique(ln)) == 2 and np.all(ln[0] == ln[0, 0, 0, 0])  # one group per example
    bn = V.reduction_groups("NCHW", "NHW", shape)
    assert len(np.unique(bn)) == 3 and np.all(bn[:, 1] == bn[0, 1, 0, 0])  # one group per channel
    inst = V.reduction_groups("NCHW", [2, 3], shape)
    assert len(np.unique(inst)) == 6
    last = V.reduction_groups("TNH", -1, (4, 3, 5))
    assert len(np.unique(last)) == 12 and np.all(last[2, 1] == last[2, 1, 0])
    with pytest.raises(ValueError, match="shape"):
        V.reduction_groups("TNH", "H", (2, 3))


def test_hidden_statistics_of_a_variant_with_itself_has_no_gap_and_two_variants_do():
    same = V.hidden_statistics("tfa", "tfa", T=6, B=3, H=4)
    assert np.all(same["gap"] == 0)
    two = V.hidden_statistics("ba2016-appendix", "tfa", T=6, B=3, H=4)
    assert two["gap"][-1] > 1e-3 and two["gap"][0] >= 0
    # TFA carries LN(c): the carried cell's spread over units is ~1 at every step (eps 1e-3 pulls it below)
    assert np.all(np.abs(two["tfa"]["c_std"] - 1) < 0.05)
    assert "c_std" not in V.hidden_statistics("ba2016-eq4", "ba2016-eq4", T=3, B=2, H=3)["ba2016-eq4"]


def test_figures_and_explorers_build_and_react():
    pytest.importorskip("ipywidgets")
    fig = V.variant_diagrams()
    assert len([ax for ax in fig.axes if ax.get_title()]) == len(VARIANTS)
    box = V.divergence_explorer(T=5, B=2, H=3)
    first = box.stats["gap"].copy()
    box.pickers[1].value = "kiros-torch"
    assert not np.array_equal(first, box.stats["gap"]) and box.image.value
    ax = V.axes_explorer("NCHW", ("H", "W"))
    assert ax.choice.name == "instance norm"
    ax.boxes["N"].value = True
    ax.boxes["H"].value = True
    assert ax.choice.name == "batch norm"
    ax.layout_picker.value = "TNH"
    assert ax.choice.name.startswith("layer norm")  # the new layout starts from its last axis


def test_side_by_side_runs_and_gives_one_verdict_per_variant():
    from lnedu.experiments import charlm
    cfg = charlm.PRESETS["tiny"]
    cfg = type(cfg)(**{**cfg.__dict__, "steps": 4, "eval_every": 2})
    res = which_ln_lstm.side_by_side(["ba2016-appendix", "haste"], [0, 1], cfg)
    assert set(res) == {"ba2016-appendix", "haste"} and len(res["haste"][1]["curve"]) == 3
    verdicts = which_ln_lstm.side_by_side_verdicts(res, "ba2016-appendix")
    assert set(verdicts) == {"haste"} and verdicts["haste"].n == 2
