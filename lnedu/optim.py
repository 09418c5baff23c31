"""Optimizers that update parameters in place: SGD with momentum and Adam, with global-norm clipping
and exponential learning-rate decay.

An optimizer takes a list of modules (or one module); it reads ``named_parameters()`` from them, so
nested modules are covered. ``step()`` clips (if asked), updates, and counts; ``zero_grad()`` clears.
Its ``state_dict()`` holds the step count and the moment buffers, so training resumes exactly.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import get_array_module, to_numpy
from .nn.module import Module

__all__ = ["clip_grad_norm", "global_norm", "Optimizer", "SGD", "Adam"]


def global_norm(grads) -> float:
    """The L2 norm of all gradients taken together, as one vector."""
    total = 0.0
    for g in grads:
        xp = get_array_module(g)
        total += float(xp.vdot(g.ravel(), g.ravel()).real)
    return math.sqrt(total)


def clip_grad_norm(grads, max_norm: float) -> float:
    """Scale all gradients in place so that their global norm is at most ``max_norm``.

    Returns the norm before clipping (useful to log). Directions are kept; only the length shrinks.
    """
    grads = list(grads)
    norm = global_norm(grads)
    if norm > max_norm > 0:
        scale = max_norm / (norm + 1e-12)
        for g in grads:
            g *= scale
    return norm


class Optimizer:
    """Base class: collects ``(name, param, grad)`` triples, clips, decays the learning rate."""

    def __init__(self, modules, lr: float, *, clip: float | None = None, lr_decay: float = 0.0):
        if isinstance(modules, Module):
            modules = [modules]
        modules = list(modules)
        if not modules or not all(isinstance(m, Module) for m in modules):
            raise TypeError("modules: expected an lnedu.nn.Module or a non-empty list of them")
        if not (float(lr) > 0):
            raise ValueError(f"lr: expected a learning rate > 0, got {lr!r}")
        if clip is not None and not (float(clip) > 0):
            raise ValueError(f"clip: expected None or a norm > 0, got {clip!r}")
        if not (float(lr_decay) >= 0):
            raise ValueError(f"lr_decay: expected a decay rate >= 0, got {lr_decay!r}")
        self.modules = modules
        self.base_lr = float(lr)
        self.clip = None if clip is None else float(clip)
        self.lr_decay = float(lr_decay)
        self.t = 0
        self.last_grad_norm = None

    def _triples(self):
        for i, m in enumerate(self.modules):
            for name, p, g in m.named_parameters():
                yield f"{i}/{name}", m, name, p, g

    @property
    def lr(self) -> float:
        """Current learning rate: ``base_lr * exp(-lr_decay * t)`` (exponential decay per update)."""
        return self.base_lr * math.exp(-self.lr_decay * self.t)

    def zero_grad(self):
        for m in self.modules:
            m.zero_grad()

    def step(self):
        grads = [g for *_, g in self._triples()]
        if self.clip is not None:
            self.last_grad_norm = clip_grad_norm(grads, self.clip)
        lr = self.lr
        self.t += 1
        for key, m, name, p, g in self._triples():
            self._update(key, m, name, p, g, lr)

    def _update(self, key, module, name, p, g, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    # state: step count and per-parameter buffers, host arrays, for checkpoints
    def _buffers(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        state = {"t": np.asarray(self.t)}
        for slot, bufs in self._buffers().items():
            for key, v in bufs.items():
                state[f"{slot}:{key}"] = to_numpy(v).copy()
        return state

    def load_state_dict(self, state: dict):
        self.t = int(state["t"])
        refs = {key: p for key, _, _, p, _ in self._triples()}
        for slot, bufs in self._buffers().items():
            bufs.clear()
            for k, v in state.items():
                if k.startswith(slot + ":"):
                    key = k[len(slot) + 1:]
                    if key not in refs:
                        raise KeyError(f"state[{k!r}]: no parameter {key!r} in this optimizer's modules")
                    bufs[key] = get_array_module(refs[key]).asarray(v, dtype=refs[key].dtype)
        return self


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum: ``v = mu v - lr g;  p += v``."""

    def __init__(self, modules, lr=0.01, *, momentum=0.0, clip=None, lr_decay=0.0):
        super().__init__(modules, lr, clip=clip, lr_decay=lr_decay)
        if not 0 <= float(momentum) < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.velocity: dict = {}

    def _buffers(self):
        return {"velocity": self.velocity}

    def _update(self, key, module, name, p, g, lr):
        if self.momentum:
            v = self.velocity.get(key)
            if v is None:
                v = self.velocity[key] = get_array_module(p).zeros_like(p)
            v *= self.momentum
            v -= lr * g
            p += v
        else:
            p -= lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, updating in place.

    ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``, ``p -= lr * m_hat / (sqrt(v_hat) + eps)``.
    """

    def __init__(self, modules, lr=1e-3, *, betas=(0.9, 0.999), eps=1e-8, clip=None, lr_decay=0.0):
        super().__init__(modules, lr, clip=clip, lr_decay=lr_decay)
        b1, b2 = (float(b) for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
        if not float(eps) > 0:
            raise ValueError(f"eps: expected a number > 0, got {eps!r}")
        self.b1, self.b2, self.eps = b1, b2, float(eps)
        self.m: dict = {}
        self.v: dict = {}

    def _buffers(self):
        return {"m": self.m, "v": self.v}

    def _update(self, key, module, name, p, g, lr):
        xp = get_array_module(p)
        if key not in self.m:
            self.m[key] = xp.zeros_like(p)
            self.v[key] = xp.zeros_like(p)
        m, v = self.m[key], self.v[key]
        m *= self.b1
        m += (1 - self.b1) * g
        v *= self.b2
        v += (1 - self.b2) * (g * g)
        denom = xp.sqrt(v)
        denom /= math.sqrt(1 - self.b2**self.t)
        denom += self.eps
        p -= (lr / (1 - self.b1**self.t)) * m / denom
