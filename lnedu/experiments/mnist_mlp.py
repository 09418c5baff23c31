"""Permutation-invariant MNIST: baseline vs batch norm vs layer norm at batch sizes 128 and 4.

The paper (Ba et al. 2016, §6.6, Figure 6): a 784-1000-1000-10 network trained with Adam on 55,000 images;
LN on the hidden layers only (not the logits, "where the prediction confidence is determined by the scale of
the logits"), BN on all layers, with the unbiased variance at batch size 4. Claim: LN is robust to the
batch size and trains faster than BN, which suffers at batch size 4. The paper gives curves, not numbers,
and does not state the nonlinearity, learning rate or initialization: we use ReLU, Adam at 1e-3 and He
initialization, and say so.

Our small run: the embedded 8x8 digits (or real MNIST when it is on disk), a 64-256-256-10 network. The
``medium`` preset runs the paper's network (1000-1000 hidden units) and 60 epochs on the same data, about 30
minutes on one CPU core; the ``paper`` preset needs the real MNIST (``python -m lnedu data fetch mnist``, or
``--data FOLDER``) and refuses to run without it. It trains on 55,000 images as the paper does: the last 55,000 of
MNIST's 60,000, leaving out the first 5,000 (the validation split of TensorFlow's MNIST tutorial reader; the paper
does not say which 5,000 it left out, nor whether it used them).

Batch norm, ours: on the hidden layers, where LN is, not on the logits (``Config.bn_logits=True`` adds it: the
paper says BN is "applied to all layers", which may include them; a BN on the logits fixes their scale and puts a
floor under BN's training NLL, so the two methods would differ in more than their statistics). The paper does not
say how BN was evaluated at batch size 4; running averages with momentum 0.1 remember ~10 batches (~40 images
there), so by default (``bn_eval="population"``) every evaluation re-estimates the statistics over the training
set, as Ioffe & Szegedy (2015, Algorithm 2) do, and logs the running-average figures beside
(``test_error_running``). Each variant trains at its own learning rate (``lr_by_variant``, from
``python -m lnedu tune mnist``).

The settings, the paper's beside our presets' (``settings_table``; a differing row says why):

| setting | paper | `paper` preset | `medium` preset | `small` preset |
|---|---|---|---|---|
| data | MNIST, pixels as one vector (§6.6) | mnist | auto | auto |
| training images | 55,000 (§6.6); which 5,000 are left out is not stated | the last 55,000 of 60,000 (the first 5,000 left out: TensorFlow's validation split) | all (1,348 of the 8x8 digits), or the last 2,000 of MNIST's 60,000 | all (1,348 of the 8x8 digits, or MNIST's 60,000) |
| test images | not stated (MNIST's test set: 10,000) | the data set's test set | the data set's test set | the data set's test set |
| network | 784-1000-1000-10 (§6.6) | 784-1000-1000-10 | (64 or 784)-1000-1000-10 | (64 or 784)-256-256-10 |
| nonlinearity | not stated | ReLU | ReLU | ReLU |
| initialization | not stated | He (hidden layers), Xavier (logits) | He (hidden layers), Xavier (logits) | He (hidden layers), Xavier (logits) |
| layer norm | hidden layers only, not the logits (§6.6) | hidden layers, before the ReLU | hidden layers, before the ReLU | hidden layers, before the ReLU |
| batch norm | 'applied to all layers' (§6.6) | hidden layers (as layer norm) (differs: we read 'all layers' as the hidden layers, where layer norm is: a batch norm on the logits puts a floor under its training NLL; bn_logits=True adds it) | hidden layers (as layer norm) | hidden layers (as layer norm) |
| batch norm's variance at batch 4 | unbiased (§6.6) | unbiased (below batch 32) | unbiased (below batch 32) | unbiased (below batch 32) |
| batch norm at evaluation | not stated | population | population | population |
| optimizer | Adam (§6.6) | Adam | Adam | Adam |
| learning rate | not stated | 0.001 | baseline-bs128: 0.01; bn-bs128: 0.01; ln-bs128: 0.003; baseline-bs4: 0.0003; bn-bs4: 0.001; ln-bs4: 0.001 | baseline-bs128: 0.01; bn-bs128: 0.01; ln-bs128: 0.003; baseline-bs4: 0.0003; bn-bs4: 0.001; ln-bs4: 0.001 |
| batch sizes | 128 and 4 (§6.6) | 128 and 4 | 128 and 4 | 128 and 4 |
| epochs | not stated; Figure 6 spans 60 | 60 | 60 | 8 |
| evaluations per epoch | not stated (Figure 6: curves over epochs) | 1 | 1 | 1 |
| metrics | NLL (log axis) and test error (Figure 6) | train NLL on the first 2,000 training images, test error (eval mode) | train NLL on the first 2,000 training images, test error (eval mode) | train NLL on the first 2,000 training images, test error (eval mode) |
"""

# ruff: noqa: E501 (the settings table above has one row a line, as settings_table writes it)

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .. import nn, optim
from ..data.mnist import last_training_images, load_digits_dataset
from ..viz.experiments import COLORS, plot_band, seed_curves
from . import verdicts as V
from .common import ClassifierTask, hold_out, lr_for
from .settings import Setting
from .verdicts import Verdict

NAME = "mnist"
TITLE = "Permutation-invariant MNIST"
PAPER = "LN §6.6, Figure 6"
CLAIM = "LN is robust to the batch size and converges faster than BN; BN suffers at batch size 4"
VARIANTS = ("baseline-bs128", "bn-bs128", "ln-bs128", "baseline-bs4", "bn-bs4", "ln-bs4")


@dataclass
class Config:
    hidden: int = 256
    layers: int = 2
    epochs: float = 10
    lr: float = 1e-3
    data: str = "auto"  # "auto" (real MNIST if on disk), "mnist" (real MNIST or a refusal), "digits", "standin"
    data_path: str = ""  # a folder holding MNIST's four IDX files; "" = the cache (lnedu.data.cache_dir())
    train_images: int = 0  # > 0: train on the last this-many training images only (0: all)
    eval_per_epoch: int = 1  # evaluations per epoch (the schedule counts epochs: equal epochs at every batch size)
    checkpoint_every: int = 100  # updates between checkpoints
    # learning rate per variant (the rest use lr), chosen on validation by `python -m lnedu tune mnist`
    lr_by_variant: dict = field(default_factory=dict)
    bn_logits: bool = False  # True: BN on the logits too (one reading of the paper's "BN applied to all layers")
    bn_eval: str = "population"  # BN's evaluation statistics: "population" (re-estimated, Ioffe & Szegedy Alg. 2)
    # or "running" (momentum-0.1 running averages: ~40 examples at batch 4)
    holdout: int = 0  # > 0: evaluate on this many held-out training images instead of the test set (tuning)


# rates per variant, from `python -m lnedu tune mnist` (on validation; tuned/mnist-small.json)
SMALL_RATES = {"baseline-bs128": 0.01, "bn-bs128": 0.01, "ln-bs128": 0.003,
               "baseline-bs4": 0.0003, "bn-bs4": 0.001, "ln-bs4": 0.001}
PRESETS = {
    "tiny": Config(hidden=32, epochs=1, data="digits"),
    "small": Config(hidden=256, epochs=8, lr_by_variant=SMALL_RATES),
    # medium: the paper's width and its 60 epochs on the embedded digits (the small preset's rates, not re-tuned
    # at this width). Sized from the CPU time of an update with OPENBLAS_NUM_THREADS=1 (time.process_time over 150
    # `task.step()`s of each variant built from this preset, plus one `task.evaluate()`, 2026-12-02): 6.6-7.5 ms at
    # batch 4 (Adam over 1.07M weights dominates), 16-19 ms at batch 128, 0.05-0.35 s an evaluation; 60 epochs of
    # the 1,348 digits are 20,220 updates at batch 4 and 600 at batch 128, 61 evaluations each: 3 seeds x 6
    # variants = ~25 CPU minutes. With real MNIST on disk ("auto"), train_images caps the training set at 2,000
    # images (784 inputs: ~1 hour).
    "medium": Config(hidden=1000, epochs=60, lr_by_variant=SMALL_RATES, train_images=2000, checkpoint_every=1000),
    # the paper's setting where it states one (§6.6); the rate is Adam's default, ours (not stated)
    "paper": Config(hidden=1000, epochs=60, data="mnist", train_images=55000, checkpoint_every=1000),
}


# settings: the paper's (LN §6.6) beside our presets'
def _network(c: Config) -> str:
    inputs = "784" if c.data in ("mnist", "standin") else "(64 or 784)"
    return "-".join([inputs, *[f"{c.hidden}"] * c.layers, "10"])


def _training_images(c: Config) -> str:
    if c.data in ("mnist", "standin") and c.train_images:
        return f"the last {c.train_images:,} of 60,000 (the first 5,000 left out: TensorFlow's validation split)"
    if c.train_images:
        return f"all (1,348 of the 8x8 digits), or the last {c.train_images:,} of MNIST's 60,000"
    return "all (1,348 of the 8x8 digits, or MNIST's 60,000)"


SETTINGS = (
    Setting("data", "MNIST, pixels as one vector (§6.6)", "data"),
    Setting("training images", "55,000 (§6.6); which 5,000 are left out is not stated", _training_images),
    Setting("test images", "not stated (MNIST's test set: 10,000)", lambda c: "the data set's test set"),
    Setting("network", "784-1000-1000-10 (§6.6)", _network),
    Setting("nonlinearity", "not stated", lambda c: "ReLU"),
    Setting("initialization", "not stated", lambda c: "He (hidden layers), Xavier (logits)"),
    Setting("layer norm", "hidden layers only, not the logits (§6.6)", lambda c: "hidden layers, before the ReLU"),
    Setting("batch norm", "'applied to all layers' (§6.6)",
            lambda c: "hidden layers and logits" if c.bn_logits else "hidden layers (as layer norm)",
            differs="we read 'all layers' as the hidden layers, where layer norm is: a batch norm on the logits puts "
                    "a floor under its training NLL; bn_logits=True adds it"),
    Setting("batch norm's variance at batch 4", "unbiased (§6.6)", lambda c: "unbiased (below batch 32)"),
    Setting("batch norm at evaluation", "not stated", "bn_eval"),
    Setting("optimizer", "Adam (§6.6)", lambda c: "Adam"),
    Setting("learning rate", "not stated", lambda c: c.lr_by_variant or c.lr),
    Setting("batch sizes", "128 and 4 (§6.6)", lambda c: "128 and 4"),
    Setting("epochs", "not stated; Figure 6 spans 60", "epochs"),
    Setting("evaluations per epoch", "not stated (Figure 6: curves over epochs)", "eval_per_epoch"),
    Setting("metrics", "NLL (log axis) and test error (Figure 6)",
            lambda c: "train NLL on the first 2,000 training images, test error (eval mode)"),
)


# ---------------------------------------------------------------------------------------------------------
# model


def build_model(variant: str, n_in: int, n_out: int, hidden: int, layers: int, rng, dtype=np.float32, *,
                bn_logits: bool = False):
    """The MLP of one variant: ``baseline``, ``bn`` (hidden layers, unbiased variance at batch 4; with
    ``bn_logits`` the logits too) or ``ln`` (hidden layers only, as the paper says). By default BN and LN sit at
    the same places, so the two differ only in where their statistics come from; a BN on the logits would put
    a floor under BN's training NLL (the logits' scale is fixed by its gain, not learned freely)."""
    norm, bs = variant.split("-bs")
    mods, d = [], n_in
    for _ in range(layers):
        mods.append(nn.Linear(d, hidden, init="he", rng=rng, dtype=dtype, bias=(norm == "baseline")))
        if norm == "bn":
            mods.append(nn.BatchNorm(hidden, unbiased=int(bs) < 32, dtype=dtype))
        elif norm == "ln":
            mods.append(nn.LayerNorm(hidden, dtype=dtype))
        mods.append(nn.ReLU())
        d = hidden
    mods.append(nn.Linear(d, n_out, init="xavier", rng=rng, dtype=dtype, bias=not (norm == "bn" and bn_logits)))
    if norm == "bn" and bn_logits:
        mods.append(nn.BatchNorm(n_out, unbiased=int(bs) < 32, dtype=dtype))
    return nn.Sequential(*mods)


# ---------------------------------------------------------------------------------------------------------
# build


class MLPTask(ClassifierTask):
    """The classifier task of this experiment, with what ``--plan`` reads: ``examples_per_update`` (images in
    one mini-batch) and :meth:`flops_per_update`."""

    @property
    def examples_per_update(self) -> int:
        return self.batch_size

    def flops_per_update(self) -> float:
        """Floating-point operations of one update, counting the matrix products only: each ``Linear`` of
        ``k`` inputs and ``n`` outputs on a batch of ``m`` costs ``2*m*k*n`` forward (a multiply-add is 2 FLOPs)
        and twice that backward (``dX = dY W^T`` and ``dW = X^T dY``, the first layer's ``dX`` included, as
        it is computed): ``6*m*k*n``. Not counted: the normalizations, ReLUs, softmax and Adam's elementwise
        update (each linear in the number of units or weights)."""
        return float(sum(6 * self.batch_size * mod.in_features * mod.out_features
                         for mod in self.model if isinstance(mod, nn.Linear)))


def load_data(config: Config):
    """The data set ``config`` asks for (:func:`lnedu.data.load_digits_dataset` with ``config.data_path``), its
    training set cut to ``config.train_images`` and, for tuning, ``config.holdout`` images held out."""
    data = load_digits_dataset(config.data, config.data_path or None)
    return hold_out(last_training_images(data, config.train_images), config.holdout)


def build(config: Config, variant: str, seed: int) -> MLPTask:
    data = load_data(config)
    rng = np.random.default_rng(seed)
    model = build_model(variant, data.x_train.shape[1], data.num_classes, config.hidden, config.layers, rng,
                        bn_logits=config.bn_logits)
    opt = optim.Adam(model, lr=lr_for(config, variant))
    batch = int(variant.split("-bs")[1])
    return MLPTask(model, opt, data, batch_size=batch, epochs=config.epochs, seed=seed,
                   eval_per_epoch=config.eval_per_epoch, checkpoint_every=config.checkpoint_every,
                   bn_eval=config.bn_eval)


def standin(config: Config) -> Config:
    """``config`` on random 28x28 images of MNIST's shapes and split sizes (``data="standin"``): what ``--plan``
    times a paper-size update on where the real MNIST is absent."""
    return dataclasses.replace(config, data="standin", data_path="")


# ---------------------------------------------------------------------------------------------------------
# verdict

SEEDS = {"tiny": (0, 1, 2), "small": (0, 1, 2, 3, 4), "medium": (0, 1, 2), "paper": (0, 1, 2)}  # five at small
PAPER_NUMBERS = "curves only: Figure 6 (test error 0.005-0.025 over 60 epochs; LN §6.6 gives no table)"
LEARN_MARGIN = 0.05  # "not tested" guard: an arm's mean test error must fall 5 points below its first evaluation


def verdict(results) -> Verdict:
    """The claim in four parts, each decided by :func:`lnedu.experiments.verdicts.compare` on per-seed final
    test errors (paired by seed): (1) at batch 4, LN's error is below BN's; (2) going from batch 128 to batch 4,
    LN's error rises less than BN's (robust to the batch size; BN suffers); (3, 4) at each batch size, LN reaches
    the common test-error target in fewer updates than BN (:func:`~lnedu.experiments.verdicts.speed`).
    Not tested if an LN or BN arm's test error never fell 5 points below its first evaluation."""
    need = {"bn-bs128", "ln-bs128", "bn-bs4", "ln-bs4"}
    if not need <= set(results):
        return V.Verdict(None, "needs bn and ln at both batch sizes", "", outcome=V.UNDECIDED)
    err = {v: V.per_seed(runs, V.final("test_error", 100)) for v, runs in results.items()}
    fig = "; ".join(f"bs{bs}: " + ", ".join(f"{n} {V.arm_figure(err[f'{n}-bs{bs}'], '.1f', '%')}"
                                             for n in ("baseline", "bn", "ln") if f"{n}-bs{bs}" in err)
                    for bs in (128, 4))
    updates = max((e["step"] for r in results["ln-bs128"] for e in r.eval), default=0)
    note = (f"{int(updates):,} updates a run at batch 128 (sizes and data: the settings table); the paper's 60 epochs "
            "on 55,000 images separate the curves more")
    axis = "final test error; updates to a test-error target"
    for v in sorted(need):
        ok, why = V.learned(results[v], "test_error", margin=LEARN_MARGIN)
        if not ok:
            part = V.not_tested("every compared arm learned", "test error", v, v, {v: err[v]}, f"{v}: {why}")
            return V.Verdict.of([part], f"final test error: {fig}", note, axis=axis, arms=err)
    rise = {n: {s: err[f"{n}-bs4"][s] - err[f"{n}-bs128"][s] for s in err[f"{n}-bs4"] if s in err[f"{n}-bs128"]}
            for n in ("ln", "bn")}
    parts = [
        V.compare("LN below BN at batch 4", "final test error (%)", "ln-bs4", err["ln-bs4"], "bn-bs4", err["bn-bs4"],
                  fmt=".2f"),
        V.compare("LN's error rises less than BN's from batch 128 to 4", "rise in final test error (points)",
                  "ln", rise["ln"], "bn", rise["bn"], fmt=".2f"),
    ]
    for bs in (128, 4):
        sp = V.speed(results, (f"ln-bs{bs}", f"bn-bs{bs}"), "test_error")
        parts += V.speed_parts(sp, f"ln-bs{bs}", f"bn-bs{bs}", f"LN reaches the test-error target before BN at "
                               f"batch {bs} ({sp.target_text()})")
    return V.Verdict.of(parts, f"final test error: {fig}", note, axis=axis, arms=err)


def describe(results) -> str:
    """Markdown for the notebook: the verdict, each part with mean ± sd (n) and the per-seed values."""
    return V.describe_parts(verdict(results), paper=PAPER_NUMBERS)


# ---------------------------------------------------------------------------------------------------------
# plot


def plot(results):
    """Figure 6's layout: train NLL (log axis) and test error against epochs, one panel per batch size."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex="col")
    for col, bs in enumerate((128, 4)):
        for variant, runs in results.items():
            if not variant.endswith(f"-bs{bs}"):
                continue
            norm = variant.split("-")[0]
            for row, key in enumerate(("train_nll", "test_error")):
                plot_band(axes[row, col], *seed_curves(runs, key, x="epoch"), color=COLORS[norm], label=norm)
        axes[0, col].set_title(f"batch size {bs}")
        axes[0, col].set_yscale("log")
        axes[1, col].set_xlabel("epoch")
    axes[0, 0].set_ylabel("train NLL")
    axes[1, 0].set_ylabel("test error")
    axes[0, 0].legend(frameon=False)
    fig.tight_layout()
    return fig
