"""Magnitude pruning (training/pruning.py): exact sparsity, lossless weight transfer, end to end.

tensorflow-model-optimization and tf-keras are an optional extra (`pruning`); without
them these tests skip. They build a fresh, untrained Dense CNN-2 and never read the
gitignored training runs.
"""

import json

import keras
import numpy as np
import pytest

from sparse_keras import models
from training import pruning

try:
    pruning.import_tfmot()
except ImportError as err:  # the optional `pruning` extra is not installed
    pytest.skip(
        f'tfmot/tf_keras not importable ({err}); pip install ".[pruning]"',
        allow_module_level=True,
    )

NETWORK = "mnist_dense_cnn2"
TRAIN_EXAMPLES = 256


@pytest.fixture(scope="module")
def base_model() -> keras.Model:
    keras.utils.set_random_seed(3)
    return models.build(NETWORK)


@pytest.fixture(scope="module")
def train_subset(data_dir):
    from sparse_keras.data import mnist

    images, labels = mnist.load_arrays("train", data_dir / "mnist")
    return pruning.normalize(images[:TRAIN_EXAMPLES]), labels[:TRAIN_EXAMPLES]


def test_weight_transfer_round_trip_preserves_predictions(base_model):
    inputs = np.random.default_rng(0).normal(size=(16, 28, 28, 1)).astype("float32")
    twin = pruning.build_tf_keras_twin(NETWORK)
    pruning.copy_weights(base_model, twin)
    back = models.build(NETWORK)
    pruning.copy_weights(twin, back)
    expected = np.asarray(base_model(inputs))
    assert np.max(np.abs(np.asarray(twin(inputs)) - expected)) <= 1e-5
    assert np.max(np.abs(np.asarray(back(inputs)) - expected)) <= 1e-5
    assert [w.shape for w in twin.get_weights()] == [tuple(w.shape) for w in base_model.weights]


def test_twin_refuses_networks_with_k_winners():
    with pytest.raises(ValueError, match="no tf_keras twin"):
        pruning.build_tf_keras_twin("mnist_sparse_cnn2")


def test_global_magnitude_densities_keep_the_largest_weights():
    kernels = {"a": np.array([5.0, -4.0, 0.1, 0.2]), "b": np.array([3.0, -0.3, 0.05, 2.5])}
    # The 4 largest of 8 magnitudes: 5, 4 (layer a) and 3, 2.5 (layer b).
    assert pruning.global_magnitude_densities(kernels, 0.5) == {"a": 0.5, "b": 0.5}
    assert pruning.global_magnitude_densities(kernels, 0.375) == {"a": 0.5, "b": 0.25}
    # Every layer keeps its largest weight, even where the global ranking would empty it.
    assert pruning.global_magnitude_densities(kernels, 0.25) == {"a": 0.25, "b": 0.25}
    with pytest.raises(ValueError, match="density"):
        pruning.global_magnitude_densities(kernels, 0.0)
    with pytest.raises(ValueError, match="fewer than the 2 layers"):
        pruning.global_magnitude_densities(kernels, 0.1)


@pytest.mark.parametrize("target", ["hidden30", "global90"])
def test_pruning_reaches_the_requested_sparsity_exactly(base_model, train_subset, target):
    images, labels = train_subset
    outcome = pruning.prune(base_model, pruning.TARGETS[target], images, labels, seed=0, verbose=0)
    zeros = pruning.zero_weights(outcome.model)
    assert zeros == outcome.expected_zeros
    sizes = {n: int(np.prod(outcome.model.get_layer(n).kernel.shape)) for n in zeros}
    if target == "hidden30":
        assert zeros == {"conv1": 0, "conv2": 0, "hidden": 336_000, "logits": 0}
        assert pruning.weight_density(outcome.model)["hidden"] == pytest.approx(0.3, abs=1e-12)
    else:
        # 90% of all 513,250 prunable weights, split by the global magnitude ranking.
        assert sum(zeros.values()) == sum(sizes.values()) - round(0.1 * sum(sizes.values()))
    # The schedule ends on a mask update before the last epoch.
    schedule = outcome.schedule
    assert schedule["end_step"] % schedule["frequency"] == 0
    assert 0 < schedule["end_step"] < schedule["steps_per_epoch"]
    # The returned network is the Keras 3 architecture, unchanged but for the weights.
    assert outcome.model.name == NETWORK and outcome.model.output_shape == (None, 10)


def test_recipe_runs_end_to_end(tmp_path, data_dir, base_model):
    runs_dir, results_dir = tmp_path / "runs", tmp_path / "results"
    base = pruning.base_weights(5, runs_dir)
    base.parent.mkdir(parents=True)
    base_model.save_weights(base)
    result = pruning.run_seed(
        pruning.TARGETS["hidden30"],
        5,
        runs_dir,
        results_dir,
        data_dir=str(data_dir / "mnist"),
        max_train_examples=TRAIN_EXAMPLES,
        max_eval_examples=200,
        verbose=0,
        command="pytest",
    )
    written = json.loads((results_dir / "mnist_pruned_cnn2_hidden30" / "seed5.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert written["recipe"] == "mnist_pruned_cnn2_hidden30" and written["network"] == NETWORK
    assert written["noise"]["test_size"] == 200 and len(written["noise"]["correct"]) == 11
    assert written["noise_score"] == sum(written["noise"]["correct"])
    assert written["clean_accuracy"] == written["noise"]["accuracies"][0]
    assert written["weight_density"]["hidden"] == pytest.approx(0.3)
    assert written["weight_density"]["conv1"] == 1.0
    mults = written["nonzero_multiplies"]
    assert 0 < mults["measured_per_inference"] < mults["dense_per_inference"] == 2_362_000
    assert written["base"]["weight_density"]["total"] == 1.0
    assert {"tensorflow_model_optimization", "tf_keras", "keras"} <= set(written["versions"])

    # The saved weights load into the plain Keras 3 network and hold the pruned zeros.
    model = models.build(NETWORK)
    model.load_weights(runs_dir / "mnist_pruned_cnn2_hidden30" / "seed5" / "final.weights.h5")
    assert pruning.zero_weights(model)["hidden"] == 336_000

    # A second run skips the finished seed; a seed without a dense run is skipped, not fatal.
    argv = ["--target", "hidden30", "--seeds", "5", "6"]
    argv += ["--runs-dir", str(runs_dir), "--results-dir", str(results_dir)]
    assert pruning.main(argv) == 0

    # The zoo packages the run as a Dense CNN-2 with pruned weights, counting real zeros.
    from training import packaging

    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"format_version": 1, "models": {}}))
    folder = packaging.package(
        "mnist_pruned_cnn2_hidden30",
        5,
        name="mnist_pruned_cnn2",
        runs_dir=runs_dir,
        results_dir=results_dir,
        zoo_dir=tmp_path / "zoo",
        registry=registry,
    )
    from sparse_keras import zoo

    zoo.check(folder, registry=registry)
    config = json.loads((folder / "config.json").read_text())
    assert config["arguments"]["name"] == NETWORK and config["name"] == "mnist_pruned_cnn2"
    entry = json.loads(registry.read_text())["models"]["mnist_pruned_cnn2"]
    # Untrained biases can stay exactly 0 too (dead units): count what the weights hold.
    nonzero = sum(int(np.count_nonzero(w)) for w in model.get_weights())
    assert (
        entry["metrics"]["nonzero_parameters"]
        == nonzero
        <= entry["metrics"]["parameters"] - 336_000
    )
    assert entry["train_command"].startswith("python -m training.train --recipe mnist_dense_cnn2")
    assert "python -m training.pruning --target hidden30 --seeds 5 && " in entry["train_command"]
    card = (folder / "README.md").read_text()
    assert "magnitude-pruned (hidden30)" in card and "hidden 0.300" in card


def test_report_tables_and_plot(tmp_path):
    levels = [round(0.05 * i, 2) for i in range(11)]

    def result(recipe, seed, correct, density=None):
        noise = {
            "model_name": recipe,
            "dataset": "mnist",
            "noise_levels": levels,
            "accuracies": [c / 100 for c in correct],
            "correct": correct,
            "noise_score": sum(correct),
            "max_score": 1100,
            "test_size": 100,
            "seed": seed,
        }
        out = {
            "recipe": recipe,
            "seed": seed,
            "clean_accuracy": correct[0] / 100,
            "noise": noise,
            "noise_score": sum(correct),
        }
        if density is not None:
            out["weight_density"] = {"total": density, "hidden": density}
            out["nonzero_multiplies"] = {
                "measured_per_inference": 1000 * density,
                "dense_per_inference": 2000,
            }
        path = tmp_path / "results" / recipe / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))

    for seed in (0, 1):
        result("mnist_dense_cnn2", seed, [99 - i for i in range(11)])
        result("mnist_sparse_cnn2", seed, [98 - i // 2 for i in range(11)])
        result("mnist_pruned_cnn2_hidden30", seed, [99 - i for i in range(11)], 0.3)
    result("mnist_pruned_cnn2_global90", 0, [97 - i for i in range(11)], 0.1)
    report = tmp_path / "pruning.md"
    report.write_text(
        f"# title\n\nanswer\n\n{pruning.GENERATED_BEGIN}\nold\n{pruning.GENERATED_END}\n\nend\n"
    )
    pruning.write_report(
        tmp_path / "results", tmp_path / "no-runs", None, report, tmp_path / "plot.png"
    )
    text = report.read_text()
    assert text.startswith("# title\n\nanswer\n\n") and text.endswith("end\n")
    assert "old" not in text
    assert (
        "| Dense CNN-2, pruned hidden30 | 0, 1 | 99.00 ± 0.00 | 1,034 ± 0 | 0.300 ± 0.000 |" in text
    )
    assert "| Dense CNN-2, pruned global90 | 0 | 97.00 | 1,012 | 0.100 |" in text
    # Dense CNN-2 has no runs here: its density and multiplies are unknown, not made up.
    assert "| Dense CNN-2 | 0, 1 | 99.00 ± 0.00 | 1,034 ± 0 | – | – | – | – |" in text
    # One panel per seed common to all four networks: seed 0 only.
    assert (tmp_path / "plot.png").stat().st_size > 10_000
