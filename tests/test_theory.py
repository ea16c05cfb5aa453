"""Tests for `sparse_keras.theory`: Eq. 1–3 exact, Monte-Carlo checks, the Eq. 4 estimator."""

import argparse
import math

import numpy as np
import pytest
from scipy import integrate, stats

from sparse_keras import theory

W, THETA = 24, 12


# --------------------------------------------------------------------------------------
# Eq. 1–3
# --------------------------------------------------------------------------------------


def test_overlap_set_size_hand_computed():
    # n = 4, x = 1100: of the 6 vectors with 2 bits on, 0011 misses x, 1100 is x, and
    # the 4 others share exactly one bit.
    assert [theory.overlap_set_size(4, 2, b, 2) for b in range(3)] == [1, 4, 1]
    assert theory.overlap_set_size(4, 2, 3, 2) == 0  # more overlap than bits on
    assert theory.overlap_set_size(10, 3, 0, 7) == 1  # y must be exactly the complement of x
    assert theory.match_probability(4, 2, 2, 1) == 5 / 6
    assert theory.match_probability(4, 2, 2, 2) == 1 / 6
    np.testing.assert_allclose(theory.overlap_distribution(4, 2, 2), [1 / 6, 4 / 6, 1 / 6])


@pytest.mark.parametrize(
    "n, w, a", [(4, 2, 2), (100, 24, 50), (2000, 24, 1000), (20_000, 24, 10_000), (30, 24, 20)]
)
def test_overlap_set_sizes_sum_to_all_vectors(n, w, a):
    sizes = [theory.overlap_set_size(n, w, b, a) for b in range(min(w, a) + 1)]
    assert all(isinstance(s, int) for s in sizes)
    assert sum(sizes) == math.comb(n, a)


def test_overlap_set_size_arrays_are_exact_ints():
    sizes = theory.overlap_set_size(20_000, W, np.arange(W + 1), 10_000)
    assert sizes.dtype == object and sum(sizes) == math.comb(20_000, 10_000)
    logs = theory.log_overlap_set_size(20_000, W, np.arange(W + 1), 10_000)
    np.testing.assert_allclose(logs, [math.log(s) for s in sizes], rtol=1e-12)


N_GRID = [24, 25, 50, 100, 300, 1000, 2000, 5000, 20_000, 100_000]


def _a_grid(n):
    return sorted(
        {a for a in (0, 1, 11, 12, 24, 32, 64, 256, n // 3, n // 2, n - 30, n) if 0 <= a <= n}
    )


@pytest.mark.parametrize("theta", [0, 1, 6, 12, 24])
def test_eq3_equals_scipy_hypergeometric_tail(theta):
    checked = 0
    for n in N_GRID:
        for a in _a_grid(n):
            expected = stats.hypergeom.sf(theta - 1, n, W, a)
            exact = theory.match_probability(n, a, W, theta)
            log_p = theory.log_match_probability(n, a, W, theta)
            if expected > 1e-300:
                assert exact == pytest.approx(expected, rel=1e-9, abs=0), (n, a, theta)
                assert math.exp(log_p) == pytest.approx(expected, rel=1e-9, abs=0), (n, a, theta)
                checked += 1
            else:
                assert exact < 1e-290
    assert checked > 50


def test_eq3_is_vectorised_over_n_and_a():
    n = np.array([500, 1000, 20_000])[:, None]
    a = np.array([24, 64, 128])[None, :]
    p = theory.match_probability(n, a, W, THETA)
    log_p = theory.log_match_probability(n, a, W, THETA)
    assert p.shape == log_p.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            assert p[i, j] == theory.match_probability(int(n[i, 0]), int(a[0, j]), W, THETA)
    np.testing.assert_allclose(np.exp(log_p), p, rtol=1e-12)
    # Sparse vectors match less and less often as n grows; dense ones do not.
    assert np.all(np.diff(p, axis=0) < 0)
    dense = theory.match_probability(
        np.arange(200, 20_001, 1000), np.arange(200, 20_001, 1000) // 2, W, THETA
    )
    assert dense.min() > 0.55 and dense.max() < 0.6


def test_eq3_tiny_probabilities_down_to_1e_300():
    # Only y = x matches when theta = w = a: P = 1 / C(n, a) exactly.
    n, a = 30_000, 100
    p = theory.match_probability(n, a, a, a)
    assert 1e-300 < p < 1e-280
    assert p == 1 / math.comb(n, a)
    assert theory.log_match_probability(n, a, a, a) == pytest.approx(
        -math.log(math.comb(n, a)), rel=1e-12
    )
    # Far below the float range the log variant still works.
    log_p = theory.log_match_probability(10**6, 200, 200, 200)
    assert log_p == pytest.approx(-math.log(math.comb(10**6, 200)), rel=1e-12)
    assert theory.match_probability(10**6, 200, 200, 200) == 0.0  # underflows, never overflows
    assert theory.log_match_probability(100, 8, W, THETA) == -math.inf  # 8 bits cannot share 12


# --------------------------------------------------------------------------------------
# Monte-Carlo, binary
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, a", [(100, 24), (100, 32), (200, 48), (300, 150), (500, 128), (1000, 256)]
)
def test_binary_simulation_brackets_eq3(n, a):
    exact = theory.match_probability(n, a, W, THETA)
    assert exact >= 1e-4
    estimate = theory.simulate_binary_matches(n, a, W, THETA, trials=300_000, seed=1)
    assert estimate.ci_low <= exact <= estimate.ci_high, (estimate, exact)
    assert estimate == theory.simulate_binary_matches(n, a, W, THETA, trials=300_000, seed=1)


@pytest.mark.parametrize("n, a", [(60, 30), (100, 32), (200, 64)])
def test_binary_simulation_with_actual_vectors_brackets_eq3(n, a):
    exact = theory.match_probability(n, a, W, THETA)
    estimate = theory.simulate_binary_matches(
        n, a, W, THETA, trials=20_000, seed=2, method="vectors"
    )
    assert estimate.method == "binary/vectors"
    assert estimate.ci_low <= exact <= estimate.ci_high, (estimate, exact)


def test_zero_hits_are_an_upper_bound():
    estimate = theory.simulate_binary_matches(2000, 24, trials=10_000, seed=0)
    assert estimate.hits == 0 and estimate.is_upper_bound
    z = 1.959963984540054
    assert estimate.upper_bound == pytest.approx(z * z / (10_000 + z * z))
    assert estimate.ci_low == 0.0
    assert str(estimate).startswith("P < 0.000384")


def test_wilson_interval_known_values():
    # Wilson 95% for 10 of 100 (from the closed form): [0.0552, 0.1744].
    estimate = theory.MatchEstimate(hits=10, trials=100)
    assert estimate.probability == 0.1
    assert estimate.ci_low == pytest.approx(0.05522914, abs=1e-6)
    assert estimate.ci_high == pytest.approx(0.17436566, abs=1e-6)
    assert theory.MatchEstimate(hits=5, trials=5).ci_high == 1.0


# --------------------------------------------------------------------------------------
# Scalar vectors and the Eq. 4 estimator
# --------------------------------------------------------------------------------------


def test_scalar_threshold_is_half_the_expected_self_dot_product():
    k = 32
    assert theory.scalar_threshold(k) == 1 / (6 * k)
    rng = np.random.default_rng(0)
    weights = rng.uniform(-1 / k, 1 / k, size=(100_000, k))
    assert np.mean(np.sum(weights**2, axis=1)) / 2 == pytest.approx(
        theory.scalar_threshold(k), rel=0.01
    )


def test_scalar_overlap_method_agrees_with_actual_vectors():
    fast = theory.simulate_scalar_matches(120, 60, trials=40_000, seed=3)
    slow = theory.simulate_scalar_matches(120, 60, trials=20_000, seed=4, method="vectors")
    assert fast.method == "scalar/overlap" and slow.method == "scalar/vectors"
    assert slow.ci_low <= fast.probability <= slow.ci_high
    assert fast.ci_low <= slow.probability <= fast.ci_high


def _product_density(z):
    return -0.5 * math.log(abs(z))  # Z = U·V, U ~ U[-1, 1], V ~ U[0, 1]


def _product_survival(t):
    s = min(abs(t), 1.0)
    upper = 0.5 * (1 - s + (s * math.log(s) if s > 0 else 0.0))
    return upper if t >= 0 else 1 - upper


def test_overlap_match_probabilities_against_quadrature():
    # S = 2: an overlap of 2 matches when Z1 + Z2 >= 32/24.
    reach = 32 / 24
    p2 = integrate.quad(lambda z: _product_density(z) * _product_survival(reach - z), reach - 1, 1)[
        0
    ]
    p, se, samples = theory.overlap_match_probabilities(32, 2.0)
    assert p[1] == 0.0 and samples[1] == 0
    assert abs(p[2] - p2) <= 4 * se[2] and se[2] <= 0.03 * p2
    # S = 1: an overlap of 3 matches when Z1 + Z2 + Z3 >= 32/12, a ~3e-7 event.
    reach = 32 / 12
    p3 = integrate.dblquad(
        lambda z2, z1: (
            _product_density(z1) * _product_density(z2) * _product_survival(reach - z1 - z2)
        ),
        reach - 2,
        1,
        lambda z1: reach - 1 - z1,
        lambda z1: 1.0,
    )[0]
    p, se, _ = theory.overlap_match_probabilities(32, 1.0)
    assert p[:3].tolist() == [0.0, 0.0, 0.0]
    assert 1e-7 < p3 < 1e-6
    assert abs(p[3] - p3) <= 4 * se[3] and se[3] <= 0.03 * p3
    # p_1 is closed-form: P(Z >= 32/120) at S = 10.
    p, se, samples = theory.overlap_match_probabilities(32, 10.0, rtol=0.1)
    assert p[1] == pytest.approx(_product_survival(32 / 120), rel=1e-12) and se[1] == 0


@pytest.mark.parametrize(
    "n, a, scale",
    [(200, 32, 1.0), (1000, 128, 1.0), (500, 250, 1.0), (1000, 32, 3.0), (1000, 64, 2.0)],
)
def test_eq4_estimator_agrees_with_plain_simulation(n, a, scale):
    simulated = theory.simulate_scalar_matches(n, a, scale=scale, trials=300_000, seed=5)
    estimate = theory.estimate_scalar_match_probability(n, a, scale=scale)
    assert simulated.probability >= 1e-4
    sim_se = math.sqrt(simulated.probability * (1 - simulated.probability) / simulated.trials)
    assert abs(estimate.probability - simulated.probability) <= 1.96 * math.hypot(
        sim_se, estimate.std_error
    )
    assert estimate.ci_low <= estimate.probability <= estimate.ci_high


def _sum_survival_on_a_grid(b_max: int, reach: float, h: float = 1e-3) -> np.ndarray:
    """P(Z_1 + ... + Z_b >= reach) for b = 0..b_max, Z = U·V, by repeated convolution.

    Independent of `sparse_keras.theory`: the exact mass of Z in each cell of width h,
    from its CDF P(0 <= Z <= z) = z(1 - ln z)/2 (and symmetry), convolved b times.
    Placing each cell's mass at its centre is the only approximation (about 1% here).
    """
    edges = np.linspace(0.0, 1.0, round(1 / h) + 1)
    cdf = np.concatenate([[0.0], edges[1:] * (1 - np.log(edges[1:])) / 2])
    half = np.diff(cdf)
    cell = np.concatenate([half[::-1], half])  # cells centred at -1 + h/2, ..., 1 - h/2
    survival, pmf = np.zeros(b_max + 1), np.array([1.0])
    for b in range(1, b_max + 1):
        pmf = np.convolve(pmf, cell)
        centres = -b + b * h / 2 + h * np.arange(len(pmf))
        survival[b] = pmf[centres >= reach].sum()
    return survival


def test_eq4_estimator_reaches_tiny_probabilities():
    n = np.array([2000, 5000, 20_000])
    estimate = theory.estimate_scalar_match_probability(n, 24)
    assert np.all(np.diff(estimate.probability) < 0)
    assert np.all(estimate.std_error < 0.05 * estimate.probability)
    # Against an independent computation of the same sum: hypergeometric overlap
    # probabilities (scipy) times p_b from a numerical convolution (k = 32, S = 1:
    # a match needs Z_1 + ... + Z_b >= 32/12). Overlaps above 14 add < 1e-20 here.
    k, reach = 32, 32 / 12
    p_b = _sum_survival_on_a_grid(14, reach)
    # The grid reproduces the quadrature of p_3 (test_overlap_match_probabilities_against_quadrature).
    p3 = integrate.dblquad(
        lambda z2, z1: (
            _product_density(z1) * _product_density(z2) * _product_survival(reach - z1 - z2)
        ),
        reach - 2,
        1,
        lambda z1: reach - 1 - z1,
        lambda z1: 1.0,
    )[0]
    assert p_b[3] == pytest.approx(p3, rel=0.03)
    for size, got, std_error in zip(n, estimate.probability, estimate.std_error, strict=True):
        weights = stats.hypergeom.pmf(np.arange(15), size, k, 24)
        exact = weights @ p_b
        assert abs(got - exact) <= 3 * std_error + 0.02 * exact, (size, got, exact)


def test_scalar_trends_of_figure3():
    n = np.array([250, 500, 1000, 2000, 4000])
    for a in (24, 64, 128):
        p = theory.estimate_scalar_match_probability(n, a).probability
        assert np.all(np.diff(p) < 0), (a, p)
    dense = theory.estimate_scalar_match_probability(n, n // 2).probability
    assert dense.max() / dense.min() < 1.2
    scales = (1.0, 2.0, 4.0, 8.0)
    for a in (32, 128):
        p = [
            theory.estimate_scalar_match_probability(1000, a, scale=s, rtol=0.1).probability
            for s in scales
        ]
        assert np.all(np.diff(p) > 0), (a, p)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: theory.match_probability(100, 101, W, THETA),
            r"a must be <= n .*a=101 with n=100",
        ),
        (
            lambda: theory.match_probability(100, 30, W, 25),
            r"theta must be <= w .*theta=25 with w=24",
        ),
        (lambda: theory.match_probability(-5, 3, 2, 1), r"n must be an integer >= 0, got -5"),
        (
            lambda: theory.match_probability(100, 24.5, W, THETA),
            r"a must be an integer >= 0, got 24.5",
        ),
        (
            lambda: theory.match_probability(100, True, W, THETA),
            r"a must be an integer >= 0, got True",
        ),
        (lambda: theory.match_probability([100, 50], [20, 60], W, THETA), r"a=60 with n=50"),
        (
            lambda: theory.match_probability(np.array([100, 7.5]), 20, W, THETA),
            r"n must hold integers, got 7.5",
        ),
        (lambda: theory.match_probability(100, "24", W, THETA), r"a must be an integer .*'24'"),
        (lambda: theory.overlap_set_size(10, 11, 1, 2), r"w must be <= n .*w=11 with n=10"),
        (lambda: theory.overlap_set_size(10, 3, -1, 2), r"b must be an integer >= 0, got -1"),
        (
            lambda: theory.simulate_binary_matches(100, 24, trials=0),
            r"trials must be an integer >= 1, got 0",
        ),
        (
            lambda: theory.simulate_binary_matches(100, 24, method="magic"),
            r"method must be .*'magic'",
        ),
        (lambda: theory.simulate_scalar_matches(100, 24, scale=0.0), r"scale must be > 0, got 0.0"),
        (lambda: theory.simulate_scalar_matches(20, 10, k=32), r"k must be <= n .*k=32 with n=20"),
        (
            lambda: theory.estimate_scalar_match_probability(100, 200),
            r"a must be <= n .*a=200 with n=100",
        ),
        (lambda: theory.MatchEstimate(hits=5, trials=3), r"hits <= trials"),
    ],
)
def test_bad_input_names_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------
# Figures and command line
# --------------------------------------------------------------------------------------


def test_figures_render(tmp_path):
    sweep = theory.figure2_sweep(
        n_values=[100, 400, 2000], a_values=[24, 256, theory.DENSE], trials=2000, progress=False
    )
    assert sweep.simulated[1][0] is None  # a = 256 > n = 100
    assert np.isnan(sweep.theory[1, 0]) and sweep.theory[2, -1] == pytest.approx(0.58, abs=0.01)
    assert sweep.simulated[0][-1].is_upper_bound
    fig = theory.figure2(sweep)
    assert fig.axes[0].get_yscale() == "log"
    path = theory.save_figure(fig, tmp_path / "sub" / "fig2.png")
    assert path.stat().st_size > 10_000

    left, right = theory.figure3_sweeps(
        n_values=[200, 800],
        a_values=[32, theory.DENSE],
        scales=[1.0, 3.0],
        scale_a_values=[64],
        trials=2000,
        progress=False,
    )
    assert right.theory.shape == (1, 2) and right.theory[0, 1] > right.theory[0, 0]
    fig = theory.figure3((left, right))
    assert len(fig.axes) == 2
    assert theory.save_figure(fig, tmp_path / "fig3.png").stat().st_size > 10_000


def test_cli_theory_fig2(tmp_path, capsys):
    # The `theory` sub-command on its own parser, as `sparse_keras.cli` mounts it.
    from sparse_keras.cli import theory as theory_cli

    parser = argparse.ArgumentParser(prog="sparse-keras")
    theory_cli.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "fig2.png"
    args = parser.parse_args(["theory", "fig2", "--out", str(out), "--trials", "500", "--quiet"])
    assert args.func(args) == 0
    assert out.stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["theory"])  # the figure is required
