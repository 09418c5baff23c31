"""Permutation-invariant MNIST (LN §6.6): the schedule its config sets is the one the run follows (issue 20 item 11),
and a run killed inside an epoch resumes from its last checkpoint to the uninterrupted run's results."""

from __future__ import annotations

import dataclasses

import pytest

from lnedu import experiments
from lnedu.experiments import convnet, mnist_mlp
from lnedu.experiments.runner import run_one

CFG = dataclasses.replace(mnist_mlp.PRESETS["tiny"], epochs=0.2)  # 67 updates at batch 4, less than an epoch


@pytest.mark.parametrize("exp, variant", [(mnist_mlp, "ln-bs4"), (mnist_mlp, "bn-bs128"), (convnet, "ln")])
def test_the_task_takes_checkpoint_every_and_eval_per_epoch_from_its_config(exp, variant):
    """Before, ClassifierTask checkpointed once an epoch whatever the config said (its own default)."""
    cfg = dataclasses.replace(exp.PRESETS["tiny"], checkpoint_every=7, eval_per_epoch=3)
    task = exp.build(cfg, variant, 0)
    assert task.checkpoint_every == 7
    assert task.eval_every == task.steps_per_epoch // 3
    assert task.steps == round(cfg.epochs * task.steps_per_epoch)
    with pytest.raises(ValueError, match="checkpoint_every: expected a positive integer"):
        exp.build(dataclasses.replace(cfg, checkpoint_every=0), variant, 0)


def test_a_run_killed_inside_an_epoch_resumes_from_the_configured_checkpoint(tmp_path):
    cfg = dataclasses.replace(CFG, checkpoint_every=10)
    whole = run_one(mnist_mlp, cfg, "bn-bs4", 1, tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_one(mnist_mlp, cfg, "bn-bs4", 1, tmp_path / "b", progress=False, stop_after=25)
    saved = experiments.load_task(mnist_mlp, tmp_path / "b", cfg, "bn-bs4", 1)
    assert saved.t == 20  # the config's checkpoint_every, inside the first epoch (before: none, the epoch was lost)
    resumed = run_one(mnist_mlp, cfg, "bn-bs4", 1, tmp_path / "b", resume=True, progress=False)
    assert resumed.untimed() == whole.untimed()


# ---- batch norm's placement and evaluation statistics (issue 19 item 4) ----------------------------------


def test_bn_sits_where_ln_sits_unless_asked_for_the_logits():
    import numpy as np

    from lnedu import nn

    rng = np.random.default_rng(0)
    for variant in ("bn-bs4", "bn-bs128", "ln-bs4"):
        mods = list(mnist_mlp.build_model(variant, 64, 10, 16, 2, rng))
        assert isinstance(mods[-1], nn.Linear) and "b" in mods[-1].params  # the logits: a biased Linear, no norm
        norms = [m for m in mods if isinstance(m, (nn.BatchNorm, nn.LayerNorm))]
        assert len(norms) == 2  # one per hidden layer
    mods = list(mnist_mlp.build_model("bn-bs4", 64, 10, 16, 2, rng, bn_logits=True))
    assert isinstance(mods[-1], nn.BatchNorm) and mods[-1].unbiased and "b" not in mods[-2].params
    assert mnist_mlp.PRESETS["small"].bn_logits is False and mnist_mlp.PRESETS["paper"].bn_logits is False


def _direct_test_metrics(task):
    import numpy as np

    from lnedu import functional as F

    task.model.eval()
    logits = task.model.forward(task._xte)
    nll, _ = F.softmax_cross_entropy(logits, task._yte)
    err = float(np.mean(logits.argmax(axis=-1) != task._yte))
    task.model.train()
    return nll, err


def test_bn_at_batch_4_is_evaluated_with_population_statistics_and_the_run_keeps_its_own():
    import numpy as np

    from lnedu.experiments.common import population_statistics

    cfg = dataclasses.replace(CFG, epochs=0.05)
    task = mnist_mlp.build(cfg, "bn-bs4", 3)
    assert task.bn_eval == "population"
    for _ in range(15):
        task.step()
    before = {k: v.copy() for k, v in task.model.state_dict().items()}
    running_nll, running_err = _direct_test_metrics(task)
    out = task.evaluate()
    after = task.model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # evaluating changed nothing the run keeps
    assert out["test_nll_running"] == pytest.approx(running_nll, rel=1e-6)
    assert out["test_error_running"] == pytest.approx(running_err)
    population_statistics(task.model, task._xtr, 4)  # now by hand: the training set's batches of 4
    pop_nll, pop_err = _direct_test_metrics(task)
    assert out["test_nll"] == pytest.approx(pop_nll, rel=1e-6) and out["test_error"] == pytest.approx(pop_err)
    assert out["test_nll"] != pytest.approx(out["test_nll_running"], rel=1e-3)  # the two estimates differ


def test_running_statistics_on_request_and_nothing_extra_without_bn():
    cfg = dataclasses.replace(CFG, epochs=0.05, bn_eval="running")
    task = mnist_mlp.build(cfg, "bn-bs4", 3)
    for _ in range(5):
        task.step()
    out = task.evaluate()
    assert "test_error_running" not in out
    assert out["test_nll"] == pytest.approx(_direct_test_metrics(task)[0], rel=1e-6)
    ln = mnist_mlp.build(dataclasses.replace(CFG, epochs=0.05), "ln-bs4", 3)
    assert "test_error_running" not in ln.evaluate()
    with pytest.raises(ValueError, match="bn_eval"):
        mnist_mlp.build(dataclasses.replace(CFG, bn_eval="batch"), "bn-bs4", 3)


def test_every_update_logs_its_gradient_norm():
    task = mnist_mlp.build(CFG, "baseline-bs128", 0)
    rec = task.step()
    import numpy as np

    direct = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for _, _, g in task.model.named_parameters()))
    assert rec["grad_norm"] == pytest.approx(direct, rel=1e-6) and rec["grad_norm"] > 0


def test_plot_has_figure_6s_layout():
    """Train NLL (log axis) over test error, one column per batch size, a line per variant with its colour, the
    x axis in epochs (a mutation run found every one of these could change unnoticed)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from lnedu.experiments.runner import RunResult
    from lnedu.viz.experiments import COLORS

    def run(variant, seed):
        ev = [{"step": 10 * i, "epoch": float(i), "train_nll": 1.0 / (i + 1) + seed, "test_error": 0.5 / (i + 1)}
              for i in range(4)]
        return RunResult(variant, seed, [], ev)
    results = {v: [run(v, s) for s in (0, 1)] for v in mnist_mlp.VARIANTS}
    fig = mnist_mlp.plot(results)
    axes = np.array(fig.axes).reshape(2, 2)
    assert tuple(fig.get_size_inches()) == (9, 6)
    assert [ax.get_title() for ax in axes[0]] == ["batch size 128", "batch size 4"]
    assert [ax.get_yscale() for ax in axes.ravel()] == ["log", "log", "linear", "linear"]
    assert [axes[1, c].get_xlabel() for c in (0, 1)] == ["epoch", "epoch"] and axes[0, 0].get_xlabel() == ""
    ylabels = (axes[0, 0].get_ylabel(), axes[1, 0].get_ylabel(), axes[0, 1].get_ylabel())
    assert ylabels == ("train NLL", "test error", "")
    assert axes[0, 0].get_shared_x_axes().joined(axes[0, 0], axes[1, 0])
    assert not axes[0, 0].get_shared_x_axes().joined(axes[0, 0], axes[0, 1])
    for row, key in enumerate(("train_nll", "test_error")):
        for col, bs in enumerate((128, 4)):
            lines = axes[row, col].get_lines()
            assert [ln.get_label() for ln in lines] == ["baseline", "bn", "ln"]
            assert [ln.get_color() for ln in lines] == [COLORS[n] for n in ("baseline", "bn", "ln")]
            mean = np.mean([[e[key] for e in r.eval] for r in results[f"ln-bs{bs}"]], axis=0)
            np.testing.assert_allclose(lines[2].get_ydata(), mean)
            np.testing.assert_allclose(lines[2].get_xdata(), [0, 1, 2, 3])
    legend = axes[0, 0].get_legend()
    assert legend is not None and not legend.get_frame_on() and axes[1, 1].get_legend() is None


# ---- issue 18: what --plan reads, the medium preset, the settings table -------------------------------------


def test_flops_per_update_is_the_hand_count_of_the_matrix_products():
    """tiny: 64-32-32-10 at batch 4; each Linear (k in, n out) costs 2*4*k*n forward and twice that backward."""
    task = mnist_mlp.build(mnist_mlp.PRESETS["tiny"], "ln-bs4", 0)
    assert task.examples_per_update == 4
    assert task.flops_per_update() == 3 * 2 * 4 * (64 * 32 + 32 * 32 + 32 * 10) == 81_408
    wide = dataclasses.replace(mnist_mlp.PRESETS["tiny"], hidden=10, layers=3)
    task = mnist_mlp.build(wide, "baseline-bs128", 0)
    assert task.examples_per_update == 128
    assert task.flops_per_update() == 6 * 128 * (64 * 10 + 10 * 10 + 10 * 10 + 10 * 10) == 721_920


def test_standin_keeps_the_sizes_and_puts_mnists_shapes_in_place_of_the_data():
    paper = dataclasses.replace(mnist_mlp.PRESETS["paper"], hidden=8)
    cfg = mnist_mlp.standin(paper)
    assert cfg.data == "standin" and dataclasses.replace(cfg, data="mnist") == paper
    task = mnist_mlp.build(cfg, "bn-bs128", 0)
    assert task.data.x_train.shape == (55000, 784) and task.data.x_test.shape == (10000, 784)
    assert task.model[0].in_features == 784 and task.steps == 60 * (55000 // 128)
    assert task.flops_per_update() == 6 * 128 * (784 * 8 + 8 * 8 + 8 * 10)


def test_medium_preset_is_the_papers_network_and_epochs_on_the_embedded_data():
    medium, small = mnist_mlp.PRESETS["medium"], mnist_mlp.PRESETS["small"]
    assert (medium.hidden, medium.layers, medium.epochs, medium.data) == (1000, 2, 60, "auto")
    assert medium.lr_by_variant == small.lr_by_variant and medium.train_images == 2000
    assert len(mnist_mlp.SEEDS["medium"]) >= 3


def test_the_settings_table_is_in_the_docstring_and_marks_the_one_difference():
    from lnedu.experiments.settings import settings_table

    table = settings_table(mnist_mlp)
    assert table.to_markdown() in mnist_mlp.__doc__
    differing = [row[0] for row in table.rows if "(differs:" in row[2]]
    assert differing == ["batch norm"]  # the paper's "all layers", read as the hidden layers
    rows = {row[0]: row for row in table.rows}
    assert rows["network"][2] == "784-1000-1000-10" and rows["epochs"][2] == "60"
    assert rows["training images"][2].startswith("the last 55,000 of 60,000")
