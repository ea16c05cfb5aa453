"""training.aggregate: both reporting protocols and their statistics, on hand-made results."""

import math

import numpy as np
import pytest
from scipy import stats

from training import aggregate, train
from training.recipe import get_recipe


def _state(test_accuracies, scores, val=None):
    history = []
    for epoch, (acc, score) in enumerate(zip(test_accuracies, scores, strict=True)):
        # 11 levels of 10,000 images: level 0 holds the clean accuracy, the rest the remainder.
        clean = round(acc * 10000)
        rest = score - clean
        correct = [clean] + [rest // 10 + (1 if i < rest % 10 else 0) for i in range(10)]
        entry = {"epoch": epoch, "test_accuracy": acc, "noise_correct": correct}
        entry["noise_score"] = sum(correct)
        if val is not None:
            entry["val_accuracy"] = val[epoch]
        history.append(entry)
    return {
        "epochs_done": len(history),
        "history": history,
        "train_seconds": 1.0,
        "test_size": 10000,
    }


# Per seed: (test accuracy per epoch, noise score per epoch). The best test epoch is
# not the last one, so the two protocols differ.
SPARSE = [
    ([0.985, 0.991, 0.990], [101000, 103000, 102500]),
    ([0.986, 0.989, 0.992], [100000, 101500, 104000]),
    ([0.990, 0.988, 0.989], [103500, 102000, 101000]),
]
DENSE = [
    ([0.990, 0.993, 0.992], [95000, 96000, 97500]),
    ([0.991, 0.992, 0.994], [94000, 97000, 98000]),
    ([0.993, 0.991, 0.990], [99000, 96500, 95500]),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    for name, runs in (("mnist_sparse_cnn2", SPARSE), ("mnist_dense_cnn2", DENSE)):
        for seed, (accs, scores) in enumerate(runs):
            train.record_result(get_recipe(name), seed, _state(accs, scores), out, command="x")
    return out


def test_protocol_epochs_follow_the_released_best_score():
    recipe = get_recipe("mnist_sparse_cnn2")
    # Ties: the first best epoch (np.argmax), as bestScore.
    state = _state([0.98, 0.99, 0.99, 0.97], [1, 2, 3, 4])
    assert train.protocol_epochs(recipe, state["history"]) == {"paper": 1, "held_out": 3}
    audio = get_recipe("gsc_sparse_cnn2")
    state = _state([0.9, 0.8, 0.95], [1, 2, 3], val=[0.5, 0.7, 0.6])
    assert train.protocol_epochs(audio, state["history"]) == {"paper": 2, "held_out": 1}


def test_result_file_holds_both_protocols(results):
    run = aggregate.load_results("mnist_sparse_cnn2", results)[0]
    assert run["protocols"]["paper"]["epoch"] == 1
    assert run["protocols"]["held_out"]["epoch"] == 2
    assert run["noise_score"] == 102500 and run["clean_accuracy"] == 0.990
    assert aggregate.protocol_values(run, "paper") == (0.991, 103000)


def _expected_cells(runs, protocol):
    if protocol == "paper":
        picked = [(max(a), s[int(np.argmax(a))]) for a, s in runs]
        ddof = 0
    else:
        picked = [(a[-1], s[-1]) for a, s in runs]
        ddof = 1
    acc = np.array([100 * a for a, _ in picked])
    score = np.array([s for _, s in picked], float)
    return (
        f"{acc.mean():,.2f} ± {acc.std(ddof=ddof):,.2f}",
        f"{score.mean():,.0f} ± {score.std(ddof=ddof):,.0f}",
        score,
    )


def _welch_by_hand(a, b):
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, 2 * stats.t.sf(abs(t), df)


@pytest.mark.parametrize("protocol", ["paper", "held_out"])
def test_table_cells_and_welch_recomputed_independently(results, protocol):
    text = aggregate.table1_markdown(results)
    title = aggregate.PROTOCOLS[protocol][0]
    section = text.split(f"## {title}")[1].split("\n## ")[0]
    s_acc, s_score, s_values = _expected_cells(SPARSE, protocol)
    d_acc, d_score, d_values = _expected_cells(DENSE, protocol)
    assert f"| Sparse CNN-2 | 0,1,2 | {s_acc} | 99.09 ± 0.05 | {s_score} |" in section
    assert f"| Dense CNN-2 | 0,1,2 | {d_acc} | 99.31 ± 0.06 | {d_score} |" in section
    t, p = _welch_by_hand(s_values, d_values)
    diff = s_values.mean() - d_values.mean()
    assert f"| Sparse CNN-2 | Dense CNN-2 | {diff:+,.0f} | {t:.2f} | {p:.2g} |" in section
    assert "| Sparse CNN-1 | none | not run yet |" in section


def test_protocols_are_labelled(results):
    text = aggregate.table1_markdown(results)
    assert "## Paper protocol: best test-set epoch (test-set selection)" in text
    assert "population std" in text and "sample std (n − 1)" in text


def test_population_and_sample_std():
    assert aggregate.mean_std([1.0, 3.0], ddof=0) == (2.0, 1.0)
    assert aggregate.mean_std([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2)))
    assert math.isnan(aggregate.mean_std([5.0])[1])


# Real Speech Commands v0.02 (issue 24): per seed (test accuracy, noise score, validation
# accuracy) per epoch. The held-out protocol keeps the best-validation epoch.
GSC_SPARSE = [
    ([0.80, 0.85, 0.84], [101000, 103000, 102500], [0.7, 0.9, 0.8]),
    ([0.81, 0.83, 0.86], [100000, 101500, 104000], [0.7, 0.6, 0.9]),
]
GSC_DENSE = [
    ([0.86, 0.87, 0.85], [95000, 96000, 97500], [0.9, 0.8, 0.7]),
    ([0.84, 0.88, 0.87], [94000, 97000, 98000], [0.5, 0.9, 0.6]),
]


def _audio_results(out, prefix: str):
    """GSC_SPARSE and GSC_DENSE recorded as `<prefix>sparse_cnn2` / `<prefix>dense_cnn2` runs."""
    for network, runs in (("sparse_cnn2", GSC_SPARSE), ("dense_cnn2", GSC_DENSE)):
        for seed, (accs, scores, val) in enumerate(runs):
            recipe = get_recipe(f"{prefix}{network}")
            train.record_result(recipe, seed, _state(accs, scores, val=val), out, command="x")
    return out


@pytest.fixture(scope="module")
def gsc_results(tmp_path_factory):
    return _audio_results(tmp_path_factory.mktemp("gsc_results"), "gsc12v2_")


def test_gsc12v2_table_held_out_cells_by_hand(gsc_results):
    text = aggregate.gsc12v2_markdown(gsc_results)
    section = text.split("## The paper's convention")[1].split("\n## ")[0]
    held_out = section.split("### " + aggregate.PROTOCOLS["held_out"][0])[1].split("\n### ")[0]
    # Best validation: sparse epochs 1 and 2, dense epochs 0 and 1.
    sparse_acc, sparse_score = np.array([85.0, 86.0]), np.array([103000.0, 104000.0])
    dense_acc, dense_score = np.array([86.0, 88.0]), np.array([95000.0, 97000.0])
    assert (
        f"| Sparse CNN-2 | 0,1 | {sparse_acc.mean():.2f} ± {sparse_acc.std(ddof=1):.2f} "
        f"| {sparse_score.mean():,.0f} ± {sparse_score.std(ddof=1):,.0f} |"
    ) in held_out
    assert (
        f"| Dense CNN-2 (dropout 0.0) | 0,1 | {dense_acc.mean():.2f} ± {dense_acc.std(ddof=1):.2f} |"
        in held_out
    )
    assert "| Super-Sparse CNN-2 | none | not run yet | not run yet |" in held_out
    # The per-level row: level 0 holds the clean accuracy (see `_state`).
    assert "| Sparse CNN-2 | 85.5 |" in held_out
    t, p = _welch_by_hand(sparse_score, dense_score)
    assert f"| Sparse CNN-2 | Dense CNN-2 (dropout 0.0) | +7,500 | {t:.2f} | {p:.2g} |" in held_out
    # The other convention has no runs: every cell says so.
    recorded = text.split("## The standard convention")[1].split("\n## ")[0]
    assert recorded.count("not run yet") == 2 * 4 * 2  # protocols x networks x cells
    # The answer carries its scale: the held-out mean scores' range, by hand.
    answer = text.split("more robust to noise here?")[1].splitlines()[2]
    span = f"{dense_score.mean():,.0f}–{sparse_score.mean():,.0f} of"
    assert answer.startswith("- The paper's convention") and f"noise scores span {span}" in answer


def test_sparse_vs_dense_answer_needs_every_pair_significant():
    high, low = [10.0, 11.0, 12.0], [1.0, 2.0, 3.0]
    answer = aggregate.sparse_vs_dense_answer
    assert answer({"s": high, "d": low}, ["s"], ["d"]).startswith("yes")
    assert answer({"s": low, "d": high}, ["s"], ["d"]).startswith("no")
    # One pair significant, the other not: not settled.
    mixed = {"s": high, "d": low, "d2": [9.0, 12.0, 13.0]}
    assert answer(mixed, ["s"], ["d", "d2"]).startswith("not settled: of 2 sparse-dense pairs, 1")
    assert answer({"s": [1.0], "d": low}, ["s"], ["d"]).startswith("not settled: needs at least 2")


@pytest.fixture(scope="module")
def fsdd_results(tmp_path_factory):
    return _audio_results(tmp_path_factory.mktemp("fsdd_results"), "fsdd_")


def test_fsdd_table_has_both_protocols_by_hand(fsdd_results):
    text = aggregate.fsdd_markdown(fsdd_results)
    held_out = text.split("## " + aggregate.PROTOCOLS["held_out"][0])[1].split("\n## ")[0]
    paper = text.split("## " + aggregate.PROTOCOLS["paper"][0])[1]
    # Held out: best validation (sparse epochs 1 and 2), sample std.
    acc, score = np.array([85.0, 86.0]), np.array([103000.0, 104000.0])
    assert (
        f"| Sparse CNN-2 | 0,1 | {acc.mean():.2f} ± {acc.std(ddof=1):.2f} "
        f"| {score.mean():,.0f} ± {score.std(ddof=1):,.0f} |"
    ) in held_out
    # Paper: best test epoch (sparse epochs 1 and 2 again; dense epochs 1 and 1), population std.
    dense_acc, dense_score = np.array([87.0, 88.0]), np.array([96000.0, 97000.0])
    assert (
        f"| Dense CNN-2 (dropout 0.0) | 0,1 | {dense_acc.mean():.2f} ± {dense_acc.std():.2f} "
        f"| {dense_score.mean():,.0f} ± {dense_score.std():,.0f} |"
    ) in paper
    t, p = _welch_by_hand(score, dense_score)
    assert f"| Sparse CNN-2 | Dense CNN-2 (dropout 0.0) | +7,000 | {t:.2f} | {p:.2g} |" in paper
    # Per-level curves in both sections; level 0 is the clean accuracy.
    assert "| Sparse CNN-2 | 85.5 |" in held_out and "| Sparse CNN-2 | 85.5 |" in paper
    assert "Result files made by commit(s):" in text


@pytest.mark.parametrize("protocol", ["paper", "held_out"])
def test_ablation_rows_test_each_ablation_against_the_network_it_changes(tmp_path, protocol):
    # D3 here: the sparse runs with 2,000 off every noise score; SP3: the dense runs + 1,500.
    for name, runs in (
        ("mnist_sparse_cnn2", SPARSE),
        ("mnist_dense_cnn2", DENSE),
        ("mnist_sparse_cnn2_d3", [(a, [s - 2000 for s in sc]) for a, sc in SPARSE]),
        ("mnist_dense_cnn2_sp3", [(a, [s + 1500 for s in sc]) for a, sc in DENSE]),
    ):
        for seed, (accs, scores) in enumerate(runs):
            train.record_result(get_recipe(name), seed, _state(accs, scores), tmp_path, command="x")
    text = aggregate.table1_markdown(tmp_path)
    section = text.split(f"## {aggregate.PROTOCOLS[protocol][0]}")[1].split("\n## ")[0]
    ablations = section.split("### Ablations against the network each one changes")[1]
    for name, base, shift in (
        ("Sparse CNN-2 D3", "Sparse CNN-2", -2000),
        ("Dense CNN-2 SP3", "Dense CNN-2", 1500),
    ):
        values = _expected_cells(SPARSE if base.startswith("Sparse") else DENSE, protocol)[2]
        t, p = _welch_by_hand(values + shift, values)
        assert f"| {name} | {base} | {shift:+,.0f} | {t:.2f} | {p:.2g} |" in ablations
    # Ablations without results get no row.
    assert "W1" not in ablations and "DSW" not in ablations
