"""The paper's Fig. 5: noisy example images (5A) and accuracy against noise level (5B).

Figures are bare matplotlib `Figure`s (no pyplot), so they work headless and leave
pyplot's global state alone; `fig.savefig(path)` saves one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from sparse_keras import noise
from sparse_keras.data import mnist
from sparse_keras.robustness.report import NoiseReport, _new_axes


def plot_reports(reports: Sequence[NoiseReport], ax=None, title: str | None = None):
    """The paper's Fig. 5B: accuracy against noise level, one line per model.

    Args:
        reports: Reports to compare (usually the same dataset and seed).
        ax: Axes to draw on; a new figure's axes if None.
        title: Axes title; defaults to one naming the dataset(s).

    Returns:
        The matplotlib axes (`ax.figure.savefig(path)` saves it).

    Example:

    >>> report = NoiseReport("m", "mnist", (0.0, 0.5), (990, 800), 1000, 0)
    >>> plot_reports([report]).get_title()
    'Accuracy under noise (mnist); legend: noise score'
    """
    if not reports:
        raise ValueError("plot_reports needs at least one NoiseReport.")
    ax = _new_axes() if ax is None else ax
    for report in reports:
        report.plot(ax=ax)
    datasets = sorted({report.dataset for report in reports})
    ax.set_title(title or f"Accuracy under noise ({', '.join(datasets)}); legend: noise score")
    return ax


def noise_examples_figure(
    images: np.ndarray | tf.Tensor,
    levels: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    seed: int = 0,
):
    """The paper's Fig. 5A: example images (rows) at each noise level (columns).

    The noise is the paper's MNIST pixel noise (`sparse_keras.data.mnist.add_noise`).

    Args:
        images: `[N, 28, 28]` or `[N, 28, 28, 1]`, floats in `[0, 1]` or uint8.
        levels: Noise levels, one column each.
        seed: Noise seed.

    Returns:
        A matplotlib `Figure` (`fig.savefig(path)` saves it).
    """
    from matplotlib.figure import Figure

    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images / 255.0
    images = images.astype(np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(
            f"images must be [N, height, width] with N >= 1, got shape {images.shape}."
        )
    levels = [noise.check_level(level) for level in levels]
    if not levels:
        raise ValueError("levels must name at least one noise level.")
    fig = Figure(figsize=(1.3 * len(levels), 1.4 * len(images) + 0.3), layout="constrained")
    axes = fig.subplots(len(images), len(levels), squeeze=False)
    for col, level in enumerate(levels):
        noisy = mnist.add_noise(images, level, seed).numpy()
        for row in range(len(images)):
            ax = axes[row, col]
            ax.imshow(noisy[row], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"η = {level:.2f}", fontsize=9)
    return fig
