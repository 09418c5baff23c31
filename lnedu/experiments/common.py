"""Pieces shared by the experiments: the checkpointed task with its schedule, deterministic epoch batches, and a
supervised classification task."""

from __future__ import annotations

import numpy as np

from .. import backend
from .. import functional as F
from ..backend import to_numpy
from .runner import rng_state, set_rng_state

__all__ = ["CheckpointedTask", "ClassifierTask", "epoch_batches", "epoch_schedule"]


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


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The mini-batches (index arrays) of one epoch: a permutation fixed by ``(seed, epoch)``.

    Deriving the order from the epoch number, not from a running generator, makes the data position a
    function of the step alone, so a resumed run sees exactly the batches it would have seen.
    The last incomplete batch is dropped (batch norm needs whole batches).
    """
    order = np.random.default_rng([int(seed), int(epoch), 0xDA7A]).permutation(n)
    return [order[i: i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


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


class ClassifierTask(CheckpointedTask):
    """Train ``model`` (an :class:`lnedu.nn.Module` mapping rows to logits) with ``optimizer``.

    ``data`` is an :class:`lnedu.data.Dataset`. One ``step`` is one mini-batch update; ``evaluate`` gives
    the NLL and error on the training set and the test set (the model in eval mode, so batch norm uses
    its running statistics). The schedule counts epochs at this batch size: ``steps`` is ``epochs`` full
    passes, an evaluation comes ``eval_per_epoch`` times an epoch; ``checkpoint_every`` is in updates
    (``None``: once an epoch).
    """

    def __init__(self, model, optimizer, data, *, batch_size: int, epochs: float, seed: int, eval_per_epoch=1,
                 checkpoint_every=None, eval_train_max=2000):
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
        idx = epoch_batches(len(self.data.y_train), self.batch_size, self.seed, epoch)[k]
        self.model.train()
        logits = self.model.forward(self._xtr[idx])
        loss, cache = F.softmax_cross_entropy(logits, self._ytr[idx])
        self.opt.zero_grad()
        self.model.backward(F.softmax_cross_entropy_backward(1.0, cache))
        self.opt.step()
        self.t += 1
        return {"loss": loss, "epoch": self.t / self.steps_per_epoch}

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
        self.model.eval()
        out = self._metrics(self._xtr[: self._eval_train], self._ytr[: self._eval_train], "train")
        out.update(self._metrics(self._xte, self._yte, "test"))
        out["epoch"] = self.t / self.steps_per_epoch
        self.model.train()
        return out

