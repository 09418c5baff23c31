"""What a run logs besides its loss: the mechanism the papers argue from.

* :func:`grad_norm`: the global gradient norm of the last update, whether or not the optimizer clips.
* :func:`recurrent_stats`: per time step, for every recurrent layer of a model, what its last forward did:
  the mean and standard deviation of the gate pre-activations, the fraction of saturated gates, and the
  spread of the hidden state. The LN paper argues that layer norm gives "much more stable hidden-to-hidden
  dynamics" (Ba et al. 2016, §3.1); these are the numbers that show it or not.
* :func:`train_mode_forward`: run a forward in training mode (batch norm with the batch's own statistics)
  without changing anything the run keeps (running averages), for the statistics above and for batch norm's
  train-mode vs eval-mode gap.
* :func:`due`: at which evaluations a task logs the per-time-step statistics ("a few points in training").

A gate value ``s = sigmoid(a)`` is *saturated* when ``s < 0.1`` or ``s > 0.9`` (the thresholds of Karpathy,
Johnson & Fei-Fei 2015, "Visualizing and Understanding Recurrent Networks", §4.2): its gradient
``s (1 - s)`` is then below 0.09, against 0.25 at ``a = 0``.
"""

from __future__ import annotations

import numpy as np

from ..backend import to_numpy
from ..optim import global_norm

__all__ = ["SATURATION", "grad_norm", "gate_stats", "recurrent_stats", "train_mode_forward", "due",
           "stats_record"]

SATURATION = (0.1, 0.9)  # a sigmoid gate outside this range counts as saturated
_CLIP = 1e-6  # gate values are clipped this far from 0 and 1 before inverting the sigmoid (float32 rounds to 1)


def grad_norm(task):
    """The global norm ``sqrt(sum of squared gradient entries)`` of the task's last update, before any clipping:
    the optimizer's ``last_grad_norm`` where its step computed one (to clip, or to refuse NaN/inf), else computed
    from the gradients the update used (they stay in place until the next ``zero_grad``). ``None`` for a task
    without ``opt``."""
    opt = getattr(task, "opt", None)
    if opt is None:
        return None
    if getattr(opt, "last_grad_norm", None) is not None:
        return float(opt.last_grad_norm)
    return float(global_norm([g for m in opt.modules for _, _, g in m.named_parameters()]))


def gate_stats(gates, n_sigmoid: int) -> dict:
    """Statistics of one time step's gates ``(B, K)`` whose first ``n_sigmoid`` columns are sigmoid gates and
    the rest tanh (an LSTM: f, i, o then g, ``n_sigmoid = 3H``; a GRU: z, r, all sigmoid).

    The pre-activations are recovered by inverting the nonlinearities in float64 (``log(s / (1 - s))``,
    ``artanh(g)``), with the gates clipped ``1e-6`` inside their range, so a unit saturated beyond float
    precision counts as about ±13.8 (its magnitude is understated, never its saturation). Returns
    ``{"preact_mean", "preact_std", "gate_saturation"}`` (the last over the sigmoid gates only)."""
    g = np.asarray(to_numpy(gates), dtype=np.float64)
    if g.ndim != 2 or not 0 < n_sigmoid <= g.shape[1]:
        raise ValueError(f"gates: expected (B, K) with 0 < n_sigmoid <= K, got shape {g.shape} and "
                         f"n_sigmoid={n_sigmoid}")
    s = np.clip(g[:, :n_sigmoid], _CLIP, 1 - _CLIP)
    a = [np.log(s / (1 - s)).ravel()]
    if n_sigmoid < g.shape[1]:
        a.append(np.arctanh(np.clip(g[:, n_sigmoid:], -1 + _CLIP, 1 - _CLIP)).ravel())
    a = np.concatenate(a)
    sat = (g[:, :n_sigmoid] < SATURATION[0]) | (g[:, :n_sigmoid] > SATURATION[1])
    return {"preact_mean": float(a.mean()), "preact_std": float(a.std()), "gate_saturation": float(sat.mean())}


def _layers(model, prefix=""):
    for name, m in model.children():
        yield prefix + name, m
        yield from _layers(m, prefix + name + ".")


def recurrent_stats(model) -> dict:
    """Per recurrent layer of ``model`` (every descendant whose last forward kept a time loop's cache, from
    :mod:`lnedu.nn.recurrent`), per time step: ``preact_mean``, ``preact_std``, ``gate_saturation``
    (:func:`gate_stats`) and ``h_std`` (the standard deviation of the hidden state ``h_t`` over cases and
    units). Returns ``{layer name: {stat: [value at t = 1..T]}}``; a layer whose cache holds no gates (a fused
    GPU step keeps its own) is left out."""
    out = {}
    for name, layer in _layers(model):
        cache, mask = layer.cache, None
        if isinstance(cache, tuple) and cache and hasattr(cache[0], "caches"):  # a layer's (loop cache, T, B, mask, ..)
            cache, mask = cache[0], (cache[3] if len(cache) > 3 else None)
        caches, hs = getattr(cache, "caches", None), getattr(cache, "Hs", None)
        if not caches or hs is None or getattr(caches[0], "gates", None) is None:
            continue
        H = int(getattr(layer, "hidden_size", caches[0].gates.shape[1]))
        n_sig = 3 * H if caches[0].gates.shape[1] == 4 * H else caches[0].gates.shape[1]
        mask = None if mask is None else np.asarray(to_numpy(mask), dtype=bool)
        hs = np.asarray(to_numpy(hs), dtype=np.float64)
        per_t, h_std = [], []
        for t, c in enumerate(caches):
            rows = slice(None) if mask is None else mask[t]  # padded positions are left out
            if not np.any(np.ones(len(hs[t + 1]), bool)[rows]):
                break
            per_t.append(gate_stats(to_numpy(c.gates)[rows], n_sig))
            h_std.append(float(hs[t + 1][rows].std()))
        stats = {k: [p[k] for p in per_t] for k in per_t[0]} if per_t else {}
        stats["h_std"] = h_std
        out[name] = stats
    return out


def train_mode_forward(model, forward):
    """Call ``forward()`` with ``model`` in training mode and give back what it returns; afterwards the model's
    buffers (batch norm's running averages) are as before and its mode is restored, so the run goes on exactly
    as if nothing had happened."""
    saved = {name: (m, {k: v.copy() for k, v in m.buffers.items()}) for name, m in [("", model), *_layers(model)]}
    was_training = model.training
    model.train()
    try:
        return forward()
    finally:
        for m, bufs in saved.values():
            m.buffers.update(bufs)
        model.train(was_training)


def due(t: int, steps: int, eval_every: int, points: int = 4) -> bool:
    """Whether the evaluation at update ``t`` logs the per-time-step statistics: before training, after the last
    update, and at the first evaluation at or after each ``k / points`` of the run (k = 1 .. points-1)."""
    if t in (0, steps):
        return True
    return any(t - eval_every < k * steps / points <= t for k in range(1, points))


def stats_record(model, forward, prefix: str = "diag") -> dict:
    """The per-time-step statistics of :func:`recurrent_stats` after a training-mode ``forward()`` (see
    :func:`train_mode_forward`), flattened for a metrics record: ``{"diag/LAYER/STAT": [per time step]}``."""
    stats = train_mode_forward(model, lambda: (forward(), recurrent_stats(model))[1])
    return {f"{prefix}/{layer}/{k}": v for layer, d in stats.items() for k, v in d.items()}
