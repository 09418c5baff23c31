"""Pieces shared by the experiments: the checkpointed task with its schedule, deterministic epoch batches, and a
supervised classification task."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .. import backend
from .. import functional as F
from ..backend import to_numpy
from .diagnostics import grad_norm
from .runner import rng_state, set_rng_state

__all__ = ["CheckpointedTask", "ClassifierTask", "epoch_batch", "epoch_batches", "epoch_schedule", "lr_for", "hold_out",
           "population_statistics"]


class CheckpointedTask:
    """What a task's checkpoint holds: ``self.model``, ``self.opt``, the update count ``self.t``, and the
    random generators named in ``rng_attrs`` (their bit-generator states), so a resumed run continues
    exactly. Tasks keep everything else (data position included) a function of these.

    A task also carries its schedule (:class:`lnedu.experiments.contract.Task`), which the runner reads:
    ``steps``, ``eval_every`` and ``checkpoint_every``, set by :meth:`set_schedule` (or
    :meth:`schedule_from` a config that has the three fields)."""

    rng_attrs: tuple = ()

    def set_schedule(self, steps, eval_every, checkpoint_every) -> None:
        """The run's length and how often to evaluate and to checkpoint, in updates: positive integers."""
        for name, value in (("steps", steps), ("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer (a number of updates), got {value!r}")
        self.steps, self.eval_every, self.checkpoint_every = int(steps), int(eval_every), int(checkpoint_every)

    def schedule_from(self, config) -> None:
        """:meth:`set_schedule` with the config's ``steps``, ``eval_every`` and ``checkpoint_every``."""
        self.set_schedule(config.steps, config.eval_every, config.checkpoint_every)

    def state_dict(self) -> dict:
        state = {f"model/{k}": to_numpy(v) for k, v in self.model.state_dict().items()}
        state.update({f"opt/{k}": v for k, v in self.opt.state_dict().items()})
        state["t"] = np.array(self.t)
        for name in self.rng_attrs:
            state[f"rng/{name}"] = rng_state(getattr(self, name))
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model/")})
        self.opt.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("opt/")})
        self.t = int(state["t"])
        for name in self.rng_attrs:
            set_rng_state(getattr(self, name), state[f"rng/{name}"])


@functools.lru_cache(maxsize=4)
def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of ``range(n)`` for ``(seed, epoch)``, read-only (kept: every update of an epoch reads it)."""
    order = np.random.default_rng([seed, epoch, 0xDA7A]).permutation(n)
    order.flags.writeable = False
    return order


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The mini-batches (index arrays) of one epoch: a permutation fixed by ``(seed, epoch)``.

    Deriving the order from the epoch number, not from a running generator, makes the data position a
    function of the step alone, so a resumed run sees exactly the batches it would have seen.
    The last incomplete batch is dropped (batch norm needs whole batches).
    """
    order = _epoch_order(int(n), int(seed), int(epoch))
    return [order[i: i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def epoch_batch(n: int, batch_size: int, seed: int, epoch: int, k: int) -> np.ndarray:
    """``epoch_batches(n, batch_size, seed, epoch)[k]``, the batch of one update, without slicing out the
    epoch's other batches (at batch size 4 that list cost more than the update's arithmetic)."""
    if not 0 <= k < n // batch_size:
        raise IndexError(f"k: expected a batch number in [0, {n // batch_size}), got {k}")
    return _epoch_order(int(n), int(seed), int(epoch))[k * batch_size: (k + 1) * batch_size]


def epoch_schedule(epochs: float, steps_per_epoch: int, eval_per_epoch: int, checkpoint_every=None) -> tuple:
    """``(steps, eval_every, checkpoint_every)`` in updates of a run that counts epochs: ``epochs`` passes of
    ``steps_per_epoch`` updates, ``eval_per_epoch`` evaluations an epoch, a checkpoint every
    ``checkpoint_every`` updates (``None``: once an epoch)."""
    if isinstance(eval_per_epoch, bool) or not isinstance(eval_per_epoch, (int, np.integer)) or eval_per_epoch < 1:
        raise ValueError(f"eval_per_epoch: expected a positive integer, got {eval_per_epoch!r}")
    if not epochs > 0:
        raise ValueError(f"epochs: expected a number > 0, got {epochs!r}")
    return (max(1, int(round(epochs * steps_per_epoch))), max(1, steps_per_epoch // int(eval_per_epoch)),
            steps_per_epoch if checkpoint_every is None else checkpoint_every)


def lr_for(config, variant: str) -> float:
    """The learning rate ``variant`` trains at: ``config.lr_by_variant[variant]`` when the config has one for it
    (chosen per variant on validation by :mod:`lnedu.experiments.tune`), else ``config.lr``."""
    rates = getattr(config, "lr_by_variant", None) or {}
    if not isinstance(rates, dict):
        raise TypeError(f"lr_by_variant: expected a dict {{variant: learning rate}}, got {type(rates).__name__}")
    lr = rates.get(variant, config.lr)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr_by_variant[{variant!r}]: expected a learning rate > 0, got {lr!r}")
    return float(lr)


def hold_out(data, n: int, *, train: str = "x_train", labels: str | None = "y_train", test: str = "x_test",
             test_labels: str | None = "y_test"):
    """A copy of the dataclass ``data`` whose evaluation ("test") set is ``n`` examples taken out of its training
    set (a fixed random choice, the same for every run), for choosing settings on validation data, never on the
    test set. ``n = 0``: ``data`` itself."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"holdout: expected a number of training examples >= 0, got {n!r}")
    if n == 0:
        return data
    x = getattr(data, train)
    if n >= len(x):
        raise ValueError(f"holdout: expected fewer than the {len(x)} training examples, got {n}")
    order = np.random.default_rng(0x7A11D).permutation(len(x))
    keep, held = np.sort(order[n:]), np.sort(order[:n])
    pick = (lambda a, i: a[i]) if isinstance(x, np.ndarray) else (lambda a, i: [a[j] for j in i])
    changes = {train: pick(x, keep), test: pick(x, held)}
    if labels is not None:
        y = getattr(data, labels)
        changes.update({labels: pick(y, keep), test_labels: pick(y, held)})
    if hasattr(data, "description"):
        changes["description"] = f"{data.description}; {n} training examples held out for validation"
    return dataclasses.replace(data, **changes)


def _batch_norms(model):
    """The modules of ``model`` that keep batch norm's running averages (``running_mean``/``running_var``)."""
    found, todo = [], [model]
    while todo:
        m = todo.pop()
        if {"running_mean", "running_var"} <= set(m.buffers) and hasattr(m, "momentum"):
            found.append(m)
        todo.extend(child for _, child in m.children())
    return found


def population_statistics(model, x, batch_size: int) -> bool:
    """Set the running statistics of every batch norm in ``model`` to their population estimate over the rows of
    ``x``: the average of the mini-batch means and unbiased variances over the batches of ``batch_size`` rows of
    ``x`` in a fixed shuffled order (Ioffe & Szegedy 2015, Algorithm 2, step 10: E[x] = E_B[mu_B],
    Var[x] = m/(m-1) E_B[sigma_B^2]). Forwards in training mode, nothing else changes. Returns whether the model
    has a batch norm at all.

    Why: running averages with momentum 0.1 remember about the last 10 batches, which at batch size 4 is ~40
    examples; an evaluation with them measures a poor estimate as much as the trained network."""
    bns = _batch_norms(model)
    if not bns:
        return False
    xp = backend.get_array_module(x)
    order = xp.asarray(np.random.default_rng(0xB4).permutation(len(x)))
    momenta, was_training = [bn.momentum for bn in bns], model.training
    model.train()
    try:
        for k, i in enumerate(range(0, len(x) - batch_size + 1, batch_size)):
            for bn in bns:
                bn.momentum = 1.0 / (k + 1)  # the running value becomes the plain mean of the k + 1 batches so far
            model.forward(x[order[i: i + batch_size]])
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.train(was_training)
    return True


class ClassifierTask(CheckpointedTask):
    """Train ``model`` (an :class:`lnedu.nn.Module` mapping rows to logits) with ``optimizer``.

    ``data`` is an :class:`lnedu.data.Dataset`. One ``step`` is one mini-batch update; ``evaluate`` gives
    the NLL and error on the training set and the test set (the model in eval mode, so batch norm uses
    its running statistics). The schedule counts epochs at this batch size: ``steps`` is ``epochs`` full
    passes, an evaluation comes ``eval_per_epoch`` times an epoch; ``checkpoint_every`` is in updates
    (``None``: once an epoch).

    ``bn_eval``: which statistics batch norm evaluates with. ``"running"``: its running averages;
    ``"population"``: re-estimated over the training set before each evaluation
    (:func:`population_statistics`), with the running-average figures logged beside as ``test_error_running``
    and ``test_nll_running``; the run's state is left as it was either way. Every record also carries
    ``grad_norm``, the global gradient norm of the update.
    """

    def __init__(self, model, optimizer, data, *, batch_size: int, epochs: float, seed: int, eval_per_epoch=1,
                 checkpoint_every=None, eval_train_max=2000, bn_eval: str = "running"):
        if bn_eval not in ("running", "population"):
            raise ValueError(f"bn_eval: expected 'running' or 'population', got {bn_eval!r}")
        self.bn_eval = bn_eval
        self.model, self.opt, self.data = model, optimizer, data
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.steps_per_epoch = len(data.y_train) // self.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size: expected at most {len(data.y_train)} (the training set), got {batch_size}")
        self.set_schedule(*epoch_schedule(epochs, self.steps_per_epoch, eval_per_epoch, checkpoint_every))
        self.t = 0
        xp = backend.xp()
        self._xtr, self._ytr = xp.asarray(data.x_train), xp.asarray(data.y_train)
        self._xte, self._yte = xp.asarray(data.x_test), xp.asarray(data.y_test)
        self._eval_train = min(len(data.y_train), int(eval_train_max))

    def step(self) -> dict:
        epoch, k = divmod(self.t, self.steps_per_epoch)
        idx = epoch_batch(len(self.data.y_train), self.batch_size, self.seed, epoch, k)
        self.model.train()
        logits = self.model.forward(self._xtr[idx])
        loss, cache = F.softmax_cross_entropy(logits, self._ytr[idx])
        self.opt.zero_grad()
        self.model.backward(F.softmax_cross_entropy_backward(1.0, cache), input_grad=False)  # the images' is unused
        self.opt.step()
        self.t += 1
        return {"loss": loss, "epoch": self.t / self.steps_per_epoch, "grad_norm": grad_norm(self)}

    def _metrics(self, x, y, prefix) -> dict:
        nll, err, n = 0.0, 0.0, len(y)
        for i in range(0, n, 1000):
            logits = self.model.forward(x[i: i + 1000])
            loss, _ = F.softmax_cross_entropy(logits, y[i: i + 1000])
            m = len(y[i: i + 1000])
            nll += loss * m
            err += float(to_numpy((logits.argmax(axis=-1) != y[i: i + 1000]).sum()))
        return {f"{prefix}_nll": nll / n, f"{prefix}_error": err / n}

    def evaluate(self) -> dict:
        out, saved = {}, []
        bns = _batch_norms(self.model) if self.bn_eval == "population" else []
        if bns:  # first the running averages' figures, then the population's; the run keeps its running averages
            saved = [dict(bn.buffers) for bn in bns]
            self.model.eval()
            running = self._metrics(self._xte, self._yte, "test")
            out.update({f"{k}_running": v for k, v in running.items()})
            population_statistics(self.model, self._xtr, self.batch_size)
        self.model.eval()
        out.update(self._metrics(self._xtr[: self._eval_train], self._ytr[: self._eval_train], "train"))
        out.update(self._metrics(self._xte, self._yte, "test"))
        out["epoch"] = self.t / self.steps_per_epoch
        for bn, bufs in zip(bns, saved):
            bn.buffers.update(bufs)
        self.model.train()
        return out

