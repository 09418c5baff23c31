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
    assert resumed.train == whole.train and resumed.eval == whole.eval
