"""The whole GSC path on the real 300-clip v0.01 sample (issue: audio networks).

tree -> official splits -> silence -> augmentation -> log-mel features -> training with
the gsc_sparse_cnn2 recipe -> best-validation-epoch checkpoint -> noise score with the
waveform-blend protocol -> result JSON -> zoo folder with model card -> zoo.load.
The sample is far too small for accuracy; the point is that every stage runs on real
GSC files.
"""

import dataclasses
import json

import numpy as np
import pytest

from sparse_keras import zoo
from training import packaging, train
from training import recipe as recipes


@pytest.fixture(scope="module")
def sample_tree(data_dir):
    tree = data_dir / "gsc" / "sample_v0.01"
    if not (tree / "testing_list.txt").exists():
        pytest.skip(f"GSC sample tree missing at {tree}")
    return tree


def test_gsc_sample_trains_scores_and_packages(tmp_path, sample_tree, monkeypatch):
    recipe = dataclasses.replace(recipes.get_recipe("gsc_sparse_cnn2"), epochs=2)
    runs, results, zoo_dir = tmp_path / "runs", tmp_path / "results", tmp_path / "zoo"
    model, state = train.train_seed(
        recipe, seed=0, runs_dir=runs, data_dir=str(sample_tree), verbose=0
    )
    assert state["epochs_done"] == 2
    assert state["best_epoch"] in (0, 1)
    assert state["best_val_accuracy"] == max(h["val_accuracy"] for h in state["history"])
    # The returned model is the best epoch's checkpoint: its k-winners state counts the
    # 62 digit + 6 silence training clips of each epoch up to that one.
    assert model.get_layer("hidden_kwinners").samples_seen.numpy() == 68 * (state["best_epoch"] + 1)

    # Tested after every epoch, as the released runner: the noise curve of each epoch.
    assert all(len(h["noise_correct"]) == 11 for h in state["history"])
    result = train.record_result(recipe, 0, state, results_dir=results)
    saved = json.loads((results / "gsc_sparse_cnn2" / "seed0.json").read_text())
    assert saved["noise"]["test_size"] == 22  # the sample's digit clips in testing_list.txt
    assert saved["noise"]["max_score"] == 11 * 22
    assert saved["noise_score"] == sum(saved["noise"]["correct"]) == result["noise_score"]
    assert saved["selection"] == "epoch with the best validation accuracy"
    best = state["history"][state["best_epoch"]]
    assert saved["noise"]["correct"] == best["noise_correct"]
    paper = saved["protocols"]["paper"]
    test_accuracies = [h["test_accuracy"] for h in state["history"]]
    assert paper["epoch"] == test_accuracies.index(max(test_accuracies))
    assert "test-set selection" in paper["selection"]

    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"format_version": 1, "models": {}}))
    folder = packaging.package(
        "gsc_sparse_cnn2", 0, runs_dir=runs, results_dir=results, zoo_dir=zoo_dir, registry=registry
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "metrics.json",
        "model.weights.h5",
    ]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: keras" in card
    # Offline, the zoo serves the packaged folder (after checking its sha256s).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPARSE_KERAS_ZOO_DIR", str(zoo_dir))
    with pytest.warns(UserWarning, match="Using the copy in"):
        loaded = zoo.load("gsc_sparse_cnn2", registry=registry)
    x = np.random.default_rng(0).uniform(-80, 0, size=(3, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(
        loaded(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5
    )
