"""Figures of the DRAW notebook: the learning curves of Figure 4, a filterbank, and canvas sequences.

Each function returns a matplotlib ``Figure`` and displays nothing. Inputs are plain arrays and the runner's
results, so the figures can be drawn from a finished run without the model.
"""

from __future__ import annotations

import numpy as np

from ..backend import to_numpy
from .experiments import COLORS

__all__ = ["plot_bound_curves", "plot_filterbank", "plot_canvas_sequence", "window_boxes"]


def _mean_band(runs, key):
    m = min(len(r.eval) for r in runs)
    vals = np.array([[e[key] for e in r.eval[:m]] for r in runs], dtype=float)
    epochs = np.array([e["epoch"] for e in runs[0].eval[:m]], dtype=float)
    return epochs, vals.mean(axis=0), vals.min(axis=0), vals.max(axis=0)


def plot_bound_curves(results: dict, *, keys=("test_bound", "test_kl")):
    """Figure 4's layout: the test bound (nats per image) against epochs, one line per variant (mean over
    seeds) with a min-max band; a second panel shows the KL part of the bound (how much the latents carry).

    ``results``: ``{variant: [RunResult, ...]}`` as :func:`lnedu.experiments.run` returns.
    """
    import matplotlib.pyplot as plt

    labels = {"test_bound": "test bound (nats)", "test_kl": "KL term of the bound (nats)",
              "test_reconstruction": "reconstruction term (nats)"}
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, (variant, runs) in enumerate(results.items()):
            epochs, mean, lo, hi = _mean_band(runs, key)
            color = COLORS.get(variant, f"C{i}")
            ax.plot(epochs, mean, color=color, label=f"{variant} ({len(runs)} seeds)")
            if len(runs) > 1:
                ax.fill_between(epochs, lo, hi, color=color, alpha=0.2, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(labels.get(key, key))
        if key == "test_bound":  # the first epochs are far above the rest: zoom on where the variants differ
            bands = [_mean_band(runs, key) for runs in results.values()]
            lo = min(b[2].min() for b in bands)
            hi = max(b[1][min(1, len(b[1]) - 1):].max() for b in bands)
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    axes[0, 0].legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def plot_filterbank(Fx, Fy, image=None, glimpse=None, *, centres=None, title=None):
    """One read: the filters ``F_X`` as curves over the columns, the grid of filter centres on the image, and
    the N x N glimpse. ``Fx`` (N, A), ``Fy`` (N, B) of one example; ``image`` (B, A); ``glimpse`` (N, N);
    ``centres``: ``(mu_X (N,), mu_Y (N,))`` in pixel coordinates 1..A, 1..B."""
    import matplotlib.pyplot as plt

    Fx, Fy = to_numpy(Fx), to_numpy(Fy)
    n_panels = 1 + (image is not None) + (glimpse is not None)
    fig, axes = plt.subplots(1, n_panels, figsize=(3.4 * n_panels, 3.0), squeeze=False)
    axes = list(axes[0])
    ax = axes.pop(0)
    cols = np.arange(1, Fx.shape[1] + 1)
    for i, row in enumerate(Fx):
        ax.plot(cols, row, marker=".", label=f"$F_X[{i + 1}, a]$")
    ax.set_xlabel("column a")
    ax.set_ylabel("weight")
    ax.set_title("filters along x (rows sum to 1)", fontsize="medium")
    if Fx.shape[0] <= 6:
        ax.legend(frameon=False, fontsize="x-small")
    if image is not None:
        ax = axes.pop(0)
        ax.imshow(to_numpy(image), cmap="gray_r", vmin=0, vmax=1,
                  extent=(0.5, image.shape[1] + 0.5, image.shape[0] + 0.5, 0.5))
        if centres is not None:
            mx, my = (to_numpy(c) for c in centres)
            gx, gy = np.meshgrid(mx, my)
            ax.scatter(gx.ravel(), gy.ravel(), s=30, color="tab:red", label="filter centres")
        ax.set_title("image and the grid", fontsize="medium")
        ax.set_xticks([])
        ax.set_yticks([])
    if glimpse is not None:
        ax = axes.pop(0)
        ax.imshow(to_numpy(glimpse), cmap="gray_r", vmin=0)
        ax.set_title(r"glimpse $\gamma F_Y x F_X^\top$", fontsize="medium")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def window_boxes(windows):
    """Squares ``(left, top, side)`` in imshow's data coordinates (pixel ``k`` spans ``k - 0.5 .. k + 0.5``) from
    windows ``(g_X, g_Y, N delta)`` in the paper's 1-based pixel units (the grid's centre and its side)."""
    w = np.asarray(windows, dtype=float)
    side = w[..., 2]
    return np.stack([w[..., 0] - 1 - side / 2, w[..., 1] - 1 - side / 2, side], axis=-1)


def plot_canvas_sequence(canvases, windows=None, *, target=None, every: int = 1, title=None):
    """Rows: samples; columns: ``sigmoid(c_t)`` for ``t = every, 2 every, ..., T`` (always ending at ``T``).

    ``canvases``: (T, n, B, A) as :meth:`lnedu.experiments.draw.DRAW.generate` returns; ``windows`` (T, n, 3)
    (optional): the write windows ``(g_X, g_Y, N delta)``, drawn as red squares, every panel's frame widened
    to hold them (a window may grow past the image); ``target`` (n, B, A) (optional): the images being
    redrawn, shown in a last column.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    canvases = np.asarray(canvases)
    T, n, B, A = canvases.shape
    steps = list(range(every - 1, T, every))
    if steps[-1] != T - 1:
        steps.append(T - 1)
    cols = len(steps) + (target is not None)
    fig, axes = plt.subplots(n, cols, figsize=(0.9 * cols + 0.4, 0.9 * n + 0.4), squeeze=False)
    xlim, ylim = (-0.5, A - 0.5), (B - 0.5, -0.5)
    boxes = None
    if windows is not None:
        boxes = window_boxes(windows)[steps]
        xlim = (min(xlim[0], boxes[..., 0].min()) - 0.3, max(xlim[1], (boxes[..., 0] + boxes[..., 2]).max()) + 0.3)
        ylim = (max(ylim[0], (boxes[..., 1] + boxes[..., 2]).max()) + 0.3, min(ylim[1], boxes[..., 1].min()) - 0.3)
    for r in range(n):
        for c, t in enumerate(steps):
            ax = axes[r, c]
            ax.imshow(canvases[t, r], cmap="gray_r", vmin=0, vmax=1)
            if boxes is not None:
                left, top, side = boxes[c, r]
                ax.add_patch(Rectangle((left, top), side, side, fill=False, color="tab:red", lw=1))
                ax.add_patch(Rectangle((-0.5, -0.5), A, B, fill=False, color="0.6", lw=0.5))
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
            if r == 0:
                ax.set_title(f"t={t + 1}", fontsize="small")
        if target is not None:
            ax = axes[r, -1]
            ax.imshow(np.asarray(target)[r].reshape(B, A), cmap="gray_r", vmin=0, vmax=1)
            if r == 0:
                ax.set_title("x", fontsize="small")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(boxes is None)
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout(pad=0.3)
    return fig
