"""The model layer's base class and a sequential container.

A :class:`Module` owns ``params`` (name -> array) and ``grads`` (the same names), keeps the caches of its
last ``forward`` and, in ``backward(dout)``, *accumulates* into ``grads`` and returns the gradient of its
input. Child modules are registered with :meth:`Module.add_module`; :meth:`named_parameters` walks the
tree with dotted names (``"0.W"``, ``"cell.g_x"``), which is what optimizers and gradient checks use.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from .. import backend
from .._io import save_npz_atomic  # lives in lnedu._io; importable from here for one release
from ..backend import get_array_module, to_numpy

__all__ = ["Module", "Sequential", "save_npz_atomic"]


class Module:
    """Base class: parameters, their gradients, buffers (non-trained state), children, train/eval mode."""

    def __init__(self):
        self.params: dict = {}
        self.grads: dict = {}
        self.buffers: dict = {}
        self._modules: dict = {}
        self.training = True

    # ---- what the last forward kept for the backward ---------------------------------------------
    @property
    def cache(self):
        """What the last ``forward`` kept for ``backward`` (opaque), or ``None`` (no forward yet, or dropped).

        A module remembers one forward. A caller that runs several forwards before their backwards (DRAW
        advances its encoder and decoder one time step at a time) takes each forward's ``cache`` and assigns
        it back before that forward's backward; assigning ``None`` drops it (evaluation needs no backward).
        """
        return getattr(self, "_cache", None)

    @cache.setter
    def cache(self, value):
        self._cache = value

    # ---- registration ----------------------------------------------------------------------------
    def add_param(self, name: str, value):
        """Register a trainable array and a zero gradient of the same shape; returns the array."""
        self.params[name] = value
        self.grads[name] = get_array_module(value).zeros_like(value)
        return value

    def add_buffer(self, name: str, value):
        """Register state that is saved and loaded but not trained (running statistics, say)."""
        self.buffers[name] = value
        return value

    def add_module(self, name: str, module: Module) -> Module:
        if not isinstance(module, Module):
            raise TypeError(f"module: expected an lnedu.nn.Module, got {type(module).__name__}")
        self._modules[str(name)] = module
        return module

    def children(self):
        return self._modules.items()

    # ---- traversal ----------------------------------------------------------------------------------
    def named_parameters(self, prefix: str = ""):
        """Yield ``(dotted_name, param, grad)`` for this module and all its children."""
        for k, p in self.params.items():
            yield prefix + k, p, self.grads[k]
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def named_buffers(self, prefix: str = ""):
        for k, b in self.buffers.items():
            yield prefix + k, b
        for name, m in self._modules.items():
            yield from m.named_buffers(prefix + name + ".")

    def _owner(self, dotted: str):
        """The module and local name a dotted name refers to."""
        *path, leaf = dotted.split(".")
        m = self
        for p in path:
            if p not in m._modules:
                raise KeyError(dotted)
            m = m._modules[p]
        return m, leaf

    def num_parameters(self) -> int:
        return int(sum(p.size for _, p, _ in self.named_parameters()))

    # ---- state ----------------------------------------------------------------------------------------
    def zero_grad(self):
        for _, _, g in self.named_parameters():
            g[...] = 0

    def train(self, mode: bool = True):
        self.training = bool(mode)
        for m in self._modules.values():
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def astype(self, dtype):
        """Cast every parameter, gradient and floating buffer to ``dtype`` in place (float64 for gradient checks)."""
        for m in self._all_modules():
            for d in (m.params, m.grads, m.buffers):
                for k, v in d.items():
                    if hasattr(v, "dtype") and v.dtype.kind == "f":
                        d[k] = v.astype(dtype)
        return self

    def to_backend(self, name: str | None = None):
        """Move every array to the backend ``name`` (default: the current one): ``'numpy'`` or ``'cupy'``.

        Naming a backend also makes it the default (:func:`lnedu.backend.use`). An optimizer's buffers are
        not moved: build the optimizer after moving the model (or move before the first step).
        """
        mod = backend.use(name) if name is not None else backend.xp()
        for m in self._all_modules():
            for d in (m.params, m.grads, m.buffers):
                for k, v in d.items():
                    if hasattr(v, "dtype"):
                        d[k] = mod.asarray(to_numpy(v)) if mod is not np else to_numpy(v)
        return self

    def _all_modules(self):
        yield self
        for m in self._modules.values():
            yield from m._all_modules()

    def state_dict(self) -> dict:
        """Parameters and buffers as host (NumPy) arrays, by dotted name."""
        out = {k: to_numpy(p).copy() for k, p, _ in self.named_parameters()}
        out.update({"buffer:" + k: to_numpy(b).copy() for k, b in self.named_buffers()})
        return out

    def load_state_dict(self, state: dict):
        """Load arrays saved by :meth:`state_dict`; names and shapes must match exactly.

        Everything is checked before anything is written, so a failed load leaves the model as it was.
        A parameter's old name (a module's ``renamed_params``, old -> new) still loads, with a warning.
        """
        state = self._current_names(state)
        expected = {k: p.shape for k, p, _ in self.named_parameters()}
        expected.update({"buffer:" + k: b.shape for k, b in self.named_buffers()})
        if set(expected) != set(state):
            missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
            raise ValueError(f"state: expected the keys of this model; missing {missing}, unexpected {extra}")
        for key, value in state.items():
            if tuple(expected[key]) != tuple(np.shape(value)):
                raise ValueError(
                    f"state[{key!r}]: expected shape {tuple(expected[key])}, got {tuple(np.shape(value))}"
                )
        for key, value in state.items():
            is_buf = key.startswith("buffer:")
            m, leaf = self._owner(key[len("buffer:"):] if is_buf else key)
            target = m.buffers if is_buf else m.params
            old = target[leaf]
            xp = get_array_module(old)
            target[leaf] = xp.array(np.asarray(value), dtype=old.dtype)  # a copy: never alias the caller's arrays
            if not is_buf:
                m.grads[leaf] = xp.zeros_like(target[leaf])
        return self

    #: parameter names this module's class used before (old -> new): still accepted by load_state_dict
    renamed_params: dict = {}

    def _current_names(self, state: dict) -> dict:
        """``state`` with the old parameter names of this module and its children replaced by the new ones."""
        renames = {}
        for prefix, m in [("", self)] + [(k + ".", m) for k, m in self._named_descendants()]:
            renames.update({prefix + old: prefix + new for old, new in m.renamed_params.items()})
        old = [k for k in state if k in renames and renames[k] not in state]
        if not old:
            return state
        warnings.warn(f"state: old parameter names {old} load as {[renames[k] for k in old]} (the old names "
                      "are accepted for one release)", DeprecationWarning, stacklevel=3)
        return {renames[k] if k in old else k: v for k, v in state.items()}

    def _named_descendants(self, prefix: str = ""):
        for name, m in self._modules.items():
            yield prefix + name, m
            yield from m._named_descendants(prefix + name + ".")

    def save(self, path):
        """Save :meth:`state_dict` to an .npz file, atomically."""
        save_npz_atomic(path, self.state_dict())

    def load(self, path):
        with np.load(os.fspath(path)) as z:
            return self.load_state_dict({k: z[k] for k in z.files})

    # ---- computation ----------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dout):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()})"
        if not self._modules:
            return head
        body = "\n".join(f"  ({k}): " + repr(m).replace("\n", "\n  ") for k, m in self._modules.items())
        return f"{type(self).__name__}(\n{body}\n)"


class Sequential(Module):
    """Modules applied in order; ``backward`` runs them in reverse. Children are named ``"0"``, ``"1"``, ..."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def forward(self, x):
        for m in self._modules.values():
            x = m.forward(x)
        return x

    def backward(self, dout, *, input_grad: bool = True):
        """Backprop through the modules in reverse; returns the input's gradient. ``input_grad=False`` (a model
        whose input is the data, as a classifier's is): returns ``None``, and a first module that can
        (``skips_input_grad``, e.g. :class:`Linear`) does not compute it; the parameters' gradients are the same."""
        modules = list(self._modules.values())
        for k in range(len(modules) - 1, -1, -1):
            m = modules[k]
            if k == 0 and not input_grad:
                if getattr(m, "skips_input_grad", False):
                    m.backward(dout, input_grad=False)
                else:
                    m.backward(dout)
                return None
            dout = m.backward(dout)
        return dout
