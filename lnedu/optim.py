"""Optimizers that update parameters in place: SGD with momentum and Adam, with global-norm clipping
and exponential learning-rate decay.

An optimizer takes a list of modules (or one module); it reads ``named_parameters()`` from them, so
nested modules are covered. ``step()`` clips (if asked), updates, and counts; ``zero_grad()`` clears.
Its ``state_dict()`` holds the step count and the moment buffers, so training resumes exactly.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import check_positive
from .backend import get_array_module, to_numpy
from .nn.module import Module

__all__ = ["clip_grad_norm", "global_norm", "Optimizer", "SGD", "Adam"]


def _check_in(name: str, value, low: float, high: float) -> float:
    """Check that ``value`` is a real number in ``[low, high)``; return it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number in [{low:g}, {high:g}), got {type(value).__name__}")
    v = float(value)
    if not low <= v < high:
        raise ValueError(f"{name}: expected a number in [{low:g}, {high:g}), got {value!r}")
    return v


def global_norm(grads) -> float:
    """The L2 norm of all gradients taken together, as one vector.

    The squared norms are added in float64 on the arrays' own device and read back once: on a GPU, one
    synchronization per step rather than one per parameter (and the same sum, in the same order, as
    adding them up on the host). Only if that overflows (a float32 gradient whose entries pass ~1e19) are
    the squares taken again from float64 copies, so a large but finite gradient has a finite norm.
    """
    grads = list(grads)
    squares = [get_array_module(g).vdot(g.ravel(), g.ravel()).real.astype(np.float64) for g in grads]
    total = float(sum(squares)) if squares else 0.0
    if not math.isfinite(total):
        wide = [g.ravel().astype(np.float64) for g in grads]
        total = float(sum(get_array_module(w).vdot(w, w).real for w in wide))
    return math.sqrt(total)


def _nonfinite_message(norm, names=None, grads=None) -> str:
    where = ""
    if names is not None:
        bad = [n for n, g in zip(names, grads) if not bool(get_array_module(g).isfinite(g).all())]
        if bad:
            where = f" in {', '.join(repr(n) for n in bad[:5])}{' ...' if len(bad) > 5 else ''}"
    return (
        f"grads: expected finite gradients, got a global norm of {norm}{where}; nothing was updated "
        f"(a NaN/inf loss or an overflow upstream; pass error_if_nonfinite=False to go on regardless)"
    )


def clip_grad_norm(grads, max_norm: float, *, error_if_nonfinite: bool = True) -> float:
    """Scale all gradients in place so that their global norm is at most ``max_norm``.

    Returns the norm before clipping (useful to log). Directions are kept; only the length shrinks:
    ``g <- g * max_norm / (norm + 1e-12)`` when ``norm > max_norm``.

    A NaN or infinite norm cannot be clipped: scaling would turn every gradient into 0 (inf norm) or NaN.
    With ``error_if_nonfinite=True`` (the default here) that raises ``ValueError`` and leaves the gradients
    untouched. With ``False`` it does what ``torch.nn.utils.clip_grad_norm_`` does by default (PyTorch's
    ``error_if_nonfinite`` defaults to ``False``): it scales anyway, by ``max_norm / (norm + eps)``, so an
    inf norm zeroes the finite entries and NaN spreads; the returned norm tells you.
    """
    max_norm = check_positive("max_norm", max_norm)
    if not isinstance(error_if_nonfinite, bool):
        raise TypeError(f"error_if_nonfinite: expected True or False, got {type(error_if_nonfinite).__name__}")
    grads = list(grads)
    norm = global_norm(grads)
    if not math.isfinite(norm) and error_if_nonfinite:
        raise ValueError(_nonfinite_message(norm))
    _scale_to(grads, max_norm, norm)
    return norm


def _scale_to(grads, max_norm, norm):
    """``g <- g * max_norm / (norm + 1e-12)`` if ``norm > max_norm``; a NaN norm scales by NaN, as PyTorch."""
    if norm > max_norm or math.isnan(norm):
        scale = max_norm / (norm + 1e-12)  # 0 for an inf norm
        for g in grads:
            g *= scale


class Optimizer:
    """Base class: collects ``(name, param, grad)`` triples, clips, decays the learning rate.

    ``error_if_nonfinite`` (default ``True``): before anything is updated, ``step()`` checks that the
    gradients' global norm is finite and raises ``ValueError`` naming the parameters with NaN/inf gradients
    otherwise, so a NaN never silently spreads into the parameters (a teaching run should stop where it
    broke). ``False`` updates regardless, like PyTorch's optimizers (parameters then become NaN).

    ``last_grad_norm``: the global norm of the last step's gradients before clipping, where the step computed it
    (clipping or the check above), else ``None``.
    """

    def __init__(self, modules, lr: float, *, clip: float | None = None, lr_decay: float = 0.0,
                 error_if_nonfinite: bool = True):
        if isinstance(modules, Module):
            modules = [modules]
        modules = list(modules)
        if not modules or not all(isinstance(m, Module) for m in modules):
            raise TypeError("modules: expected an lnedu.nn.Module or a non-empty list of them")
        self.modules = modules
        self.base_lr = check_positive("lr", lr)
        self.clip = None if clip is None else check_positive("clip", clip)
        self.lr_decay = _check_in("lr_decay", lr_decay, 0.0, math.inf)
        if not isinstance(error_if_nonfinite, bool):
            raise TypeError(f"error_if_nonfinite: expected True or False, got {type(error_if_nonfinite).__name__}")
        self.error_if_nonfinite = error_if_nonfinite
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
        triples = list(self._triples())
        grads = [g for *_, g in triples]
        if self.clip is not None or self.error_if_nonfinite:
            norm = global_norm(grads)  # one norm (one sync on a GPU) sees every entry: NaN/inf make it so
            if self.error_if_nonfinite and not math.isfinite(norm):
                raise ValueError(_nonfinite_message(norm, [k for k, *_ in triples], grads))
            if self.clip is not None:
                _scale_to(grads, self.clip, norm)
            self.last_grad_norm = norm  # before clipping: what a run logs, without a second pass over the grads
        lr = self.lr
        self.t += 1
        for key, m, name, p, g in triples:
            self._update(key, m, name, p, g, lr)

    def _update(self, key, module, name, p, g, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    # state: step count and per-parameter buffers, host arrays, for checkpoints
    def _buffers(self) -> dict:
        return {}

    def _stateful(self) -> bool:
        """Whether each update keeps per-parameter buffers (moments, velocity)."""
        return bool(self._buffers())

    def state_dict(self) -> dict:
        state = {"t": np.asarray(self.t)}
        for slot, bufs in self._buffers().items():
            for key, v in bufs.items():
                state[f"{slot}:{key}"] = to_numpy(v).copy()
        return state

    def load_state_dict(self, state: dict):
        """Restore what :meth:`state_dict` returned; everything is checked before anything is written."""
        if "t" not in state:
            raise ValueError(f"state: expected the key 't' (the step count), got keys {sorted(state)}")
        refs = {key: p for key, _, _, p, _ in self._triples()}
        slots = self._buffers()
        loaded = {slot: {} for slot in slots}
        for k, v in state.items():
            if k == "t":
                continue
            slot, sep, key = k.partition(":")
            if not sep or slot not in slots or key not in refs:
                raise ValueError(f"state[{k!r}]: not a buffer of this optimizer for a parameter of its modules")
            if tuple(np.shape(v)) != tuple(refs[key].shape):
                raise ValueError(f"state[{k!r}]: expected shape {tuple(refs[key].shape)}, got {tuple(np.shape(v))}")
            loaded[slot][key] = get_array_module(refs[key]).array(np.asarray(v), dtype=refs[key].dtype)
        t = int(state["t"])
        if t > 0 and self._stateful():  # every update creates every buffer: a resumed run needs them all
            for slot, bufs in loaded.items():
                missing = sorted(set(refs) - set(bufs))
                if missing:
                    raise ValueError(f"state: expected a {slot!r} buffer for every parameter after {t} steps, "
                                     f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        self.t = t
        for slot, bufs in slots.items():
            bufs.clear()
            bufs.update(loaded[slot])
        return self


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum: ``v = mu v - lr g;  p += v``."""

    def __init__(self, modules, lr=0.01, *, momentum=0.0, clip=None, lr_decay=0.0, error_if_nonfinite=True):
        super().__init__(modules, lr, clip=clip, lr_decay=lr_decay, error_if_nonfinite=error_if_nonfinite)
        self.momentum = _check_in("momentum", momentum, 0.0, 1.0)
        self.velocity: dict = {}

    def _buffers(self):
        return {"velocity": self.velocity}

    def _stateful(self) -> bool:
        return self.momentum > 0

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

    def __init__(self, modules, lr=1e-3, *, betas=(0.9, 0.999), eps=1e-8, clip=None, lr_decay=0.0,
                 error_if_nonfinite=True):
        super().__init__(modules, lr, clip=clip, lr_decay=lr_decay, error_if_nonfinite=error_if_nonfinite)
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2) of numbers in [0, 1), got {betas!r}")
        self.b1 = _check_in("betas[0]", betas[0], 0.0, 1.0)
        self.b2 = _check_in("betas[1]", betas[1], 0.0, 1.0)
        self.eps = check_positive("eps", eps)
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
