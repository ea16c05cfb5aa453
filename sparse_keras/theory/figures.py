"""Fig. 2 and 3 drawn from their sweeps, on a bare Agg figure (no pyplot state is touched).

matplotlib is imported by the functions that draw, so the rest of
`sparse_keras.theory` needs only NumPy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sparse_keras.theory.sweeps import Sweep, figure2_sweep, figure3_sweeps

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _plot_sweep(ax, sweep: Sweep) -> None:
    from matplotlib.lines import Line2D

    colours = [f"C{i % 10}" for i in range(len(sweep.labels))]
    for colour, label, theory, simulated in zip(
        colours, sweep.labels, sweep.theory, sweep.simulated, strict=True
    ):
        shown = np.isfinite(theory) & (theory > 0)
        ax.plot(sweep.theory_x[shown], theory[shown], "--", color=colour, lw=1.3, label=label)
        hit_x = [
            x
            for x, e in zip(sweep.x, simulated, strict=True)
            if e is not None and not e.is_upper_bound
        ]
        hit_p = [e.probability for e in simulated if e is not None and not e.is_upper_bound]
        bound_x = [
            x for x, e in zip(sweep.x, simulated, strict=True) if e is not None and e.is_upper_bound
        ]
        bound_p = [e.upper_bound for e in simulated if e is not None and e.is_upper_bound]
        ax.plot(hit_x, hit_p, "o", color=colour, ms=4.5, ls="none")
        ax.plot(bound_x, bound_p, "v", color=colour, mfc="none", ms=5, ls="none", alpha=0.7)
    ax.set_yscale("log")
    ax.set_xlabel(sweep.x_label)
    ax.set_ylabel("P(match)")
    ax.set_title(sweep.title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    handles = [
        *ax.get_legend_handles_labels()[0],
        Line2D([], [], color="0.3", ls="--", label=sweep.theory_label),
        Line2D([], [], color="0.3", marker="o", ls="none", label="simulation"),
        Line2D(
            [], [], color="0.3", marker="v", mfc="none", ls="none", label="0 hits: 95% upper bound"
        ),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _new_figure(width: float, height: float) -> Figure:
    # A bare Figure with an Agg canvas: no pyplot, so no global backend or figure registry
    # is touched, and it renders headless.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure2(sweep: Sweep | None = None, **sweep_kwargs: Any) -> Figure:
    """Draws Fig. 2: P(match) of random binary vectors against n, one curve per a.

    Dashed lines are Eq. 3 (exact), dots simulated frequencies, hollow triangles the
    95% upper bound of points where the simulation saw no match.

    Args:
        sweep: A `figure2_sweep` result; computed with `sweep_kwargs` when None.
        **sweep_kwargs: Passed to `figure2_sweep`.

    Returns:
        A `matplotlib.figure.Figure` (Agg canvas; save it with `save_figure`).

    Example:

    >>> fig = figure2(n_values=[100, 200], a_values=[24], trials=1000, progress=False)
    >>> len(fig.axes)
    1
    """
    sweep = sweep if sweep is not None else figure2_sweep(**sweep_kwargs)
    fig = _new_figure(8.0, 5.0)
    _plot_sweep(fig.add_subplot(), sweep)
    fig.suptitle("Fig. 2: probability that a random vector matches a fixed one", fontsize=11)
    return fig


def figure3(sweeps: tuple[Sweep, Sweep] | None = None, **sweep_kwargs: Any) -> Figure:
    """Draws Fig. 3: scalar match probability against n (left) and the input scale (right).

    Dashed lines are the Eq. 4 estimator, dots simulated frequencies, hollow triangles
    95% upper bounds where the simulation saw no match.

    Args:
        sweeps: A `figure3_sweeps` result; computed with `sweep_kwargs` when None.
        **sweep_kwargs: Passed to `figure3_sweeps`.

    Returns:
        A `matplotlib.figure.Figure` with two axes.
    """
    left, right = sweeps if sweeps is not None else figure3_sweeps(**sweep_kwargs)
    fig = _new_figure(15.0, 5.0)
    _plot_sweep(fig.add_subplot(1, 2, 1), left)
    _plot_sweep(fig.add_subplot(1, 2, 2), right)
    fig.suptitle(
        "Fig. 3: match probability of random scalar vectors (θ = E[x_w·x_w] / 2)", fontsize=11
    )
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Writes a figure to `path` (format from the suffix), creating parent folders.

    Args:
        fig: The figure.
        path: Output file, e.g. `"docs/images/fig2.png"`.
        dpi: Resolution for raster formats.

    Returns:
        The path written, as a `Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
