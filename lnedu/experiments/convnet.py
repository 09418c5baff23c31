"""Convolutional networks: baseline vs batch norm vs layer norm (LN paper §6.7).

The paper reports no numbers, only that in preliminary experiments layer norm sped up training over the
un-normalized baseline but batch norm did better, and why: in a fully connected layer the hidden units
tend to contribute similarly to the prediction, so re-centring and re-scaling them together is reasonable;
in a convnet, the many units whose receptive fields lie near the image boundary are rarely turned on and
have very different statistics from the rest, so one shared mean and variance per example fits them badly.
"further research is needed". Beware third-party tables that quote CIFAR numbers for LN: they are not in
the paper.

Our small run: two 3x3 conv layers (im2col by hand) on the 8x8 digits, each followed by the variant's
normalization and ReLU, then a linear classifier. BN is spatial (per channel over batch and positions);
LN normalizes each example over all C*H*W units with a per-channel gain and bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import nn, optim
from ..data import load_digits_dataset
from . import verdicts as V
from .common import ClassifierTask, hold_out, lr_for
from .verdicts import Verdict

NAME = "convnet"
TITLE = "Convolutional networks"
PAPER = "LN §6.7 (no figure; text only)"
CLAIM = "LN speeds up training over the baseline, but BN does better"
VARIANTS = ("baseline", "bn", "ln")


@dataclass
class Config:
    channels: int = 16
    epochs: float = 6
    batch_size: int = 32
    lr: float = 1e-3
    data: str = "auto"
    eval_per_epoch: int = 2  # evaluations per epoch (the schedule counts epochs)
    checkpoint_every: int = 100  # updates between checkpoints
    # learning rate per variant (the others use lr), chosen on validation by `python -m lnedu tune convnet`
    lr_by_variant: dict = field(default_factory=dict)
    holdout: int = 0  # > 0: evaluate on this many held-out training images instead of the test set (tuning)


PRESETS = {
    "tiny": Config(channels=4, epochs=0.5, data="digits"),
    # rates per variant, from `python -m lnedu tune convnet` (on validation; tuned/convnet-small.json)
    "small": Config(channels=16, epochs=6, lr_by_variant={"baseline": 0.01, "bn": 0.01, "ln": 0.01}),
    "paper": Config(channels=64, epochs=30, data="mnist", batch_size=128, checkpoint_every=1000),
}


# ---------------------------------------------------------------------------------------------------------
# model


def build_model(variant: str, image_shape, n_out: int, channels: int, rng, dtype=np.float32):
    """conv3x3(c) - norm - ReLU - conv3x3/2(2c) - norm - ReLU - flatten - linear."""
    h, w = image_shape
    norms = {
        "baseline": lambda c: None,
        "bn": lambda c: nn.BatchNorm2d(c, dtype=dtype),
        "ln": lambda c: nn.LayerNorm2d(c, dtype=dtype),
    }
    mods, c_in = [], 1
    for c_out, stride in ((channels, 1), (2 * channels, 2)):
        mods.append(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=(variant == "baseline"), rng=rng,
                              dtype=dtype))
        norm = norms[variant](c_out)
        if norm is not None:
            mods.append(norm)
        mods.append(nn.ReLU())
        c_in = c_out
        h, w = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    mods += [nn.Flatten(), nn.Linear(c_in * h * w, n_out, init="xavier", rng=rng, dtype=dtype)]
    return nn.Sequential(*mods)


# ---------------------------------------------------------------------------------------------------------
# data


class _ImageView:
    """A Dataset whose rows are reshaped to (1, H, W) images on the fly."""

    def __init__(self, data):
        self.__dict__.update(data.__dict__)
        shape = (1, *data.image_shape)
        self.x_train = data.x_train.reshape(-1, *shape)
        self.x_test = data.x_test.reshape(-1, *shape)


# ---------------------------------------------------------------------------------------------------------
# build


def build(config: Config, variant: str, seed: int) -> ClassifierTask:
    data = hold_out(load_digits_dataset(config.data), config.holdout)
    rng = np.random.default_rng(seed)
    model = build_model(variant, data.image_shape, data.num_classes, config.channels, rng)
    opt = optim.Adam(model, lr=lr_for(config, variant))
    return ClassifierTask(model, opt, _ImageView(data), batch_size=config.batch_size,
                          epochs=config.epochs, seed=seed, eval_per_epoch=config.eval_per_epoch,
                          checkpoint_every=config.checkpoint_every)


# ---------------------------------------------------------------------------------------------------------
# verdict

SEEDS = {"tiny": (0, 1, 2), "small": (0, 1, 2, 3, 4), "paper": (0, 1, 2)}  # cheap runs: five seeds at small
PAPER_NUMBERS = "none: §6.7 reports preliminary experiments in words only"
LEARN_MARGIN = 0.1  # "not tested" guard: an arm's mean train NLL (nats) must fall this far below its first value


def verdict(results) -> Verdict:
    """Two parts, each decided by :func:`lnedu.experiments.verdicts.compare` over per-seed figures paired by
    seed: (1) LN speeds up training over the baseline: LN reaches the common training-NLL target (measured in
    eval mode, BN with running statistics) in fewer updates (:func:`~lnedu.experiments.verdicts.speed`);
    (2) BN does better: BN's final test error is below LN's. Not tested if an arm's training NLL never fell
    0.1 nats below its first evaluation."""
    if not {"baseline", "bn", "ln"} <= set(results):
        return V.Verdict(None, "needs baseline, bn and ln", "", outcome=V.UNDECIDED)
    err = {v: V.per_seed(results[v], V.final("test_error", 100)) for v in ("baseline", "bn", "ln")}
    nll = {v: V.per_seed(results[v], V.final("train_nll")) for v in ("baseline", "bn", "ln")}
    fig = ("final train NLL: " + ", ".join(f"{v} {V.arm_figure(nll[v])}" for v in nll)
           + "; final test error: " + ", ".join(f"{v} {V.arm_figure(err[v], '.1f', '%')}" for v in err))
    note = "8x8 digits have little 'boundary' for the paper's argument to bite on; every setting is ours"
    axis = "updates to a train-NLL target (LN vs baseline); final test error (BN vs LN)"
    for v in ("baseline", "bn", "ln"):
        ok, why = V.learned(results[v], "train_nll", margin=LEARN_MARGIN)
        if not ok:
            return V.Verdict.of([V.not_tested("every arm learned", "train NLL", v, v, {v: nll[v]}, f"{v}: {why}")],
                                fig, note, axis=axis, arms=err)
    sp = V.speed(results, ("ln", "baseline"), "train_nll")
    parts = V.speed_parts(sp, "ln", "baseline", f"LN speeds up training over the baseline ({sp.target_text()})")
    parts.append(V.compare("BN does better than LN", "final test error (%)", "bn", err["bn"], "ln", err["ln"],
                           fmt=".2f"))
    return V.Verdict.of(parts, fig, note, axis=axis, arms=err)


def describe(results) -> str:
    """Markdown for the notebook: the verdict, each part with mean ± sd (n) and the per-seed values."""
    return V.describe_parts(verdict(results), paper=PAPER_NUMBERS)


# ---------------------------------------------------------------------------------------------------------
# plot


def plot(results):
    import matplotlib.pyplot as plt

    from ..viz.experiments import plot_curves

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    plot_curves(results, "train_nll", ax=axes[0], logy=True, ylabel="train NLL")
    plot_curves(results, "test_error", ax=axes[1], ylabel="test error")
    fig.tight_layout()
    return fig
