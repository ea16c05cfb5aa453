"""The training runner's command line on tiny runs (`python -m training.train ...`).

Each run trains MNIST Dense CNN-1 for one epoch on 64 training images and tests it on 50
test images, in a temporary folder: what is checked is what each flag does to the run
folders and result files, not the accuracy.
"""

import json
import pathlib

import numpy as np
import pytest

from training import train

RECIPE = "mnist_dense_cnn1"


def run(root: pathlib.Path, *flags: str) -> int:
    return train.main(
        [
            "--recipe",
            RECIPE,
            "--epochs",
            "1",
            "--max-train-examples",
            "64",
            "--max-test-examples",
            "50",
            "--runs-dir",
            str(root / "runs"),
            "--results-dir",
            str(root / "results"),
            "--verbose",
            "0",
            *flags,
        ]
    )


def seed_dir(root: pathlib.Path, seed: int) -> pathlib.Path:
    return root / "runs" / RECIPE / f"seed{seed}"


def result_file(root: pathlib.Path, seed: int) -> pathlib.Path:
    return root / "results" / RECIPE / f"seed{seed}.json"


def weights(path: pathlib.Path) -> list[np.ndarray]:
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                arrays.append((name, obj[()])) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return [array for _, array in sorted(arrays, key=lambda item: item[0])]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """Seed 2 alone (`--first-seed 2`), trained and evaluated."""
    root = tmp_path_factory.mktemp("runner")
    assert run(root, "--first-seed", "2") == 0
    return root


def test_first_seed_runs_only_that_seed(finished):
    assert sorted(p.name for p in (finished / "runs" / RECIPE).iterdir()) == ["seed2"]
    assert (seed_dir(finished, 2) / "final.weights.h5").is_file()
    result = json.loads(result_file(finished, 2).read_text())
    assert (result["recipe"], result["seed"], result["epochs"]) == (RECIPE, 2, 1)
    assert "--first-seed 2" in result["command"]


def test_evaluate_only_rewrites_the_result_without_training(finished):
    final = seed_dir(finished, 2) / "final.weights.h5"
    before = json.loads(result_file(finished, 2).read_text())
    stamp = final.stat().st_mtime_ns
    result_file(finished, 2).unlink()
    assert run(finished, "--first-seed", "2", "--evaluate-only") == 0
    after = json.loads(result_file(finished, 2).read_text())
    assert final.stat().st_mtime_ns == stamp  # no training step ran
    for key in ("clean_accuracy", "noise_score", "noise", "epochs", "selected_epoch"):
        assert after[key] == before[key], key
    # The command recorded is the one that trained the seed, not the re-evaluation.
    assert after["command"] == before["command"]
    # A seed that was never trained has nothing to evaluate.
    with pytest.raises(FileNotFoundError, match="No finished run"):
        run(finished, "--first-seed", "7", "--evaluate-only")
    assert not result_file(finished, 7).exists()


def test_skip_evaluation_trains_but_writes_no_result(finished):
    assert run(finished, "--first-seed", "3", "--skip-evaluation") == 0
    assert (seed_dir(finished, 3) / "final.weights.h5").is_file()
    assert not result_file(finished, 3).exists()
    state = json.loads((seed_dir(finished, 3) / "state.json").read_text())
    assert state["epochs_done"] == 1


def test_restart_discards_the_run_and_the_default_strategy_trains_the_same(finished):
    folder = seed_dir(finished, 2)
    original = weights(folder / "final.weights.h5")
    (folder / "stale.txt").write_text("left by an earlier run")
    # Without --restart a finished seed is resumed: no epoch is added, nothing removed.
    assert run(finished, "--first-seed", "2") == 0
    assert (folder / "stale.txt").exists()
    assert len(json.loads((folder / "state.json").read_text())["history"]) == 1
    # A corrupt state stops a resume, and --restart is the way out: it trains from
    # scratch, and `--strategy default` (one device) gives the very same weights as the
    # first run, which used the default without naming it.
    (folder / "state.json").write_text("{not json")
    with pytest.raises(train.CorruptRunStateError, match="--restart"):
        run(finished, "--first-seed", "2")
    assert run(finished, "--first-seed", "2", "--restart", "--strategy", "default") == 0
    assert not (folder / "stale.txt").exists()
    assert json.loads((folder / "state.json").read_text())["epochs_done"] == 1
    retrained = weights(folder / "final.weights.h5")
    assert len(retrained) == len(original)
    for got, want in zip(retrained, original, strict=True):
        np.testing.assert_array_equal(got, want)
