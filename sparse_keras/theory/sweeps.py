"""The data of Fig. 2 and 3: theory curves and simulated points over a swept variable.

`figure2_sweep` and `figure3_sweeps` return one `Sweep` per panel, which
`sparse_keras.theory.figures` draws. tqdm (progress bars) is imported by the function
that uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from sparse_keras import validation
from sparse_keras.theory.estimate import estimate_scalar_match_probability
from sparse_keras.theory.exact import match_probability
from sparse_keras.theory.simulate import (
    MatchEstimate,
    simulate_binary_matches,
    simulate_scalar_matches,
)

#: Marker for "a = n / 2" (a dense vector) in the `a_values` of the figure sweeps.
DENSE = "dense"

# Default sweeps of the two figures (SPEC §1).
FIGURE_A_VALUES: tuple[int | str, ...] = (24, 32, 48, 64, 128, 256, DENSE)
# Simulated points; the theory curves are drawn on a finer grid between the same ends.
# Fig. 2 spans the n of the authors' plot (300..3500), Fig. 3 theirs (250..2500), as in
# numenta/nupic.research projects/sdr_math.
FIGURE2_N_VALUES: tuple[int, ...] = tuple(range(100, 3501, 200))
FIGURE3_N_VALUES: tuple[int, ...] = tuple(range(100, 2501, 200))
FIGURE3_SCALES: tuple[float, ...] = tuple(float(s) for s in range(1, 11))
FIGURE3_SCALE_A_VALUES: tuple[int, ...] = (24, 32, 48, 64, 128, 256)


@dataclasses.dataclass
class Sweep:
    """One panel of a figure: curves of P(match) against one swept variable.

    Attributes:
        title: Panel title.
        x_label: Name of the swept variable.
        labels: One legend label per curve.
        x: Swept values where the simulation ran.
        simulated: Per curve, per `x`, a `MatchEstimate`, or None where the point does
            not exist (e.g. a > n).
        theory_x: Swept values of the theory curves (usually a finer grid).
        theory: Array (curves × `theory_x`) of exact (Eq. 3) or estimated (Eq. 4)
            values; NaN where the point does not exist.
        theory_label: What `theory` is, for the legend.
    """

    title: str
    x_label: str
    labels: list[str]
    x: np.ndarray
    simulated: list[list[MatchEstimate | None]]
    theory_x: np.ndarray
    theory: np.ndarray
    theory_label: str


def _a_label(a: int | str) -> str:
    return "a = n/2 (dense)" if a == DENSE else f"a = {a}"


def _a_values_for(a: int | str, n: np.ndarray) -> np.ndarray:
    if a == DENSE:
        return n // 2
    return np.full(n.shape, validation.integers("a", a))


def _fine_grid(values: np.ndarray, points: int = 200) -> np.ndarray:
    return np.unique(np.round(np.linspace(values.min(), values.max(), points)).astype(np.int64))


def _progress(total: int, enabled: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=description, unit="point")


def _curves_against_n(
    n_values: np.ndarray,
    a_values: Sequence[int | str],
    fixed: int,
    theory: Callable[[np.ndarray, np.ndarray], np.ndarray],
    simulate: Callable[[int, int, int, int], MatchEstimate],
    bar,
) -> tuple[np.ndarray, np.ndarray, list[list[MatchEstimate | None]]]:
    """One panel against n: theory curves on a fine grid, simulated points at `n_values`.

    Args:
        n_values: Vector lengths to simulate.
        a_values: Non-zeros of the random vector, one per curve; `DENSE` means a = n // 2.
        fixed: Non-zeros of the fixed vector (`w` or `k`). Points where it or a exceeds
            n do not exist: NaN in the theory, None in the simulation.
        theory: Maps arrays `(n, a)` to P(match).
        simulate: Maps `(i, j, n, a)` to the `MatchEstimate` of curve i at `n_values[j]`.
        bar: Progress bar, advanced once per simulated point.

    Returns:
        `(theory_x, theory, simulated)`, the fields of a `Sweep`.
    """
    theory_n = _fine_grid(n_values)
    curves = np.full((len(a_values), len(theory_n)), np.nan)
    simulated: list[list[MatchEstimate | None]] = []
    for i, a_spec in enumerate(a_values):
        a_fine = _a_values_for(a_spec, theory_n)
        valid = (a_fine <= theory_n) & (fixed <= theory_n)
        curves[i, valid] = theory(theory_n[valid], a_fine[valid])
        row: list[MatchEstimate | None] = []
        for j, (n, a) in enumerate(zip(n_values, _a_values_for(a_spec, n_values), strict=True)):
            row.append(None if a > n or fixed > n else simulate(i, j, int(n), int(a)))
            bar.update()
        simulated.append(row)
    return theory_n, curves, simulated


def figure2_sweep(
    n_values: Sequence[int] = FIGURE2_N_VALUES,
    a_values: Sequence[int | str] = FIGURE_A_VALUES,
    w: int = 24,
    theta: int = 12,
    trials: int = 1_000_000,
    seed: int = 0,
    progress: bool = True,
) -> Sweep:
    """Computes Fig. 2: exact P(match) (Eq. 3) and simulated frequencies against n.

    Args:
        n_values: Vector lengths to simulate; the exact curves use a fine grid between
            the smallest and largest.
        a_values: On-bits of the random vectors; `DENSE` ("dense") means a = n // 2.
            Points with a > n are skipped.
        w: On-bits of the fixed vector.
        theta: Match threshold.
        trials: Simulated vectors per point (see `simulate_binary_matches`).
        seed: Base seed; point (curve i, n index j) uses `default_rng([seed, i, j])`.
        progress: Show a tqdm progress bar over the simulated points.

    Returns:
        A `Sweep`.

    Example:

    >>> sweep = figure2_sweep(n_values=[100, 200], a_values=[24], trials=1000, progress=False)
    >>> sweep.labels, sweep.x.tolist(), sweep.simulated[0][0].trials
    (['a = 24'], [100, 200], 1000)
    """
    n_values = np.asarray([validation.integers("n", n, minimum=1) for n in n_values])
    with _progress(len(a_values) * len(n_values), progress, "Fig. 2") as bar:
        theory_n, theory, simulated = _curves_against_n(
            n_values,
            a_values,
            w,
            lambda n, a: match_probability(n, a, w, theta),
            lambda i, j, n, a: simulate_binary_matches(n, a, w, theta, trials, seed=[seed, i, j]),
            bar,
        )
    return Sweep(
        title=f"Binary vectors: |x| = {w}, θ = {theta}",
        x_label="n (vector length)",
        labels=[_a_label(a) for a in a_values],
        x=n_values,
        simulated=simulated,
        theory_x=theory_n,
        theory=theory,
        theory_label="Eq. 3 (exact)",
    )


def figure3_sweeps(
    n_values: Sequence[int] = FIGURE3_N_VALUES,
    a_values: Sequence[int | str] = FIGURE_A_VALUES,
    k: int = 32,
    scales: Sequence[float] = FIGURE3_SCALES,
    scale_n: int = 1000,
    scale_a_values: Sequence[int | str] = FIGURE3_SCALE_A_VALUES,
    trials: int = 1_000_000,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Sweep, Sweep]:
    """Computes Fig. 3: simulated and Eq. 4-estimated scalar match probabilities.

    Args:
        n_values: Vector lengths simulated in the left panel (scale 1); its estimator
            curves use a fine grid between the smallest and largest.
        a_values: Input non-zeros of the left panel; `DENSE` means a = n // 2.
        k: Non-zeros of the weight vector.
        scales: Input scales S of the right panel (one estimator table each).
        scale_n: Vector length of the right panel.
        scale_a_values: Input non-zeros of the right panel.
        trials: Simulated vector pairs per point (see `simulate_scalar_matches`).
        seed: Base seed (left point (i, j): `[seed, 0, i, j]`; right: `[seed, 1, i, j]`;
            the estimator: `seed`).
        progress: Show a tqdm progress bar over the simulated points.

    Returns:
        `(left, right)` `Sweep`s: P against n at S = 1, and P against S at n = `scale_n`.
    """
    n_values = np.asarray([validation.integers("n", n, minimum=1) for n in n_values])
    scales = np.asarray([validation.positive_number("scale", s) for s in scales])
    scale_n = validation.integers("scale_n", scale_n, minimum=1)
    total = len(a_values) * len(n_values) + len(scale_a_values) * len(scales)
    with _progress(total, progress, "Fig. 3") as bar:
        theory_n, left_theory, left_sim = _curves_against_n(
            n_values,
            a_values,
            k,
            lambda n, a: estimate_scalar_match_probability(n, a, k, 1.0, seed=seed).probability,
            lambda i, j, n, a: simulate_scalar_matches(n, a, k, 1.0, trials, seed=[seed, 0, i, j]),
            bar,
        )
        right_theory = np.full((len(scale_a_values), len(scales)), np.nan)
        right_sim: list[list[MatchEstimate | None]] = []
        for i, a_spec in enumerate(scale_a_values):
            a = int(_a_values_for(a_spec, np.asarray(scale_n)))
            row: list[MatchEstimate | None] = []
            for j, s in enumerate(scales):
                if a > scale_n or k > scale_n:
                    row.append(None)
                else:
                    right_theory[i, j] = estimate_scalar_match_probability(
                        scale_n, a, k, float(s), seed=seed
                    ).probability
                    row.append(
                        simulate_scalar_matches(
                            scale_n, a, k, float(s), trials, seed=[seed, 1, i, j]
                        )
                    )
                bar.update()
            right_sim.append(row)
    left = Sweep(
        title=f"Scalar vectors, S = 1 (k = {k})",
        x_label="n (vector length)",
        labels=[_a_label(a) for a in a_values],
        x=n_values,
        simulated=left_sim,
        theory_x=theory_n,
        theory=left_theory,
        theory_label="Eq. 4 estimator",
    )
    right = Sweep(
        title=f"Scalar vectors, n = {scale_n} (k = {k})",
        x_label="S (input scale)",
        labels=[_a_label(a) for a in scale_a_values],
        x=scales,
        simulated=right_sim,
        theory_x=scales,
        theory=right_theory,
        theory_label="Eq. 4 estimator",
    )
    return left, right
