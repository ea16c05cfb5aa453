"""Match statistics of random sparse vectors: Eq. 1–3 of the paper, Monte-Carlo, Fig. 2 and 3.

Section 2 of "How Can We Be So Dense?" asks how likely a random vector is to match a
fixed one, i.e. to have a dot product at or above a threshold θ. For binary vectors
the answer is a hypergeometric tail (Eq. 1–3), computed here exactly, with integers
or in log space, for any n. For scalar vectors (Fig. 3) there is no closed form; this
package simulates it and adds an estimator the paper only sketches (Eq. 4): the exact
distribution of the overlap times a simulated match probability per overlap size,
which reaches probabilities far below what plain simulation can see.

One module per job; every name below is imported from `sparse_keras.theory`:

- `exact`: Eq. 1–3, exact and in log space;
- `simulate`: Monte-Carlo simulation of binary and scalar vectors;
- `estimate`: the Eq. 4 estimator for scalar vectors;
- `sweeps`: the data of Fig. 2 and 3;
- `figures`: the plots.

Only NumPy and the standard library are needed at runtime; matplotlib (plots) and
tqdm (progress bars) are imported by the functions that use them.

Example:

>>> from sparse_keras import theory
>>> theory.overlap_set_size(n=4, w=2, b=1, a=2)
4
>>> theory.match_probability(n=1000, a=24, w=24, theta=12)  # Eq. 3, exact
3.2668597803087046e-15
"""

from sparse_keras.theory.estimate import (
    OverlapEstimate,
    estimate_scalar_match_probability,
    overlap_match_probabilities,
)
from sparse_keras.theory.exact import (
    log_match_probability,
    log_overlap_set_size,
    match_probability,
    overlap_distribution,
    overlap_set_size,
)
from sparse_keras.theory.figures import figure2, figure3, save_figure
from sparse_keras.theory.simulate import (
    MatchEstimate,
    scalar_threshold,
    simulate_binary_matches,
    simulate_scalar_matches,
)
from sparse_keras.theory.sweeps import (
    DENSE,
    FIGURE2_N_VALUES,
    FIGURE3_N_VALUES,
    FIGURE3_SCALE_A_VALUES,
    FIGURE3_SCALES,
    FIGURE_A_VALUES,
    Sweep,
    figure2_sweep,
    figure3_sweeps,
)

__all__ = [
    "DENSE",
    "FIGURE2_N_VALUES",
    "FIGURE3_N_VALUES",
    "FIGURE3_SCALES",
    "FIGURE3_SCALE_A_VALUES",
    "FIGURE_A_VALUES",
    "MatchEstimate",
    "OverlapEstimate",
    "Sweep",
    "estimate_scalar_match_probability",
    "figure2",
    "figure2_sweep",
    "figure3",
    "figure3_sweeps",
    "log_match_probability",
    "log_overlap_set_size",
    "match_probability",
    "overlap_distribution",
    "overlap_match_probabilities",
    "overlap_set_size",
    "save_figure",
    "scalar_threshold",
    "simulate_binary_matches",
    "simulate_scalar_matches",
]
