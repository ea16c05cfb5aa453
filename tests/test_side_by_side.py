"""The step-by-step comparison with the released code: the recorder, and its committed report."""

from __future__ import annotations

import json
import pathlib
import subprocess

import keras
import numpy as np
import pytest

from sparse_keras.data import mnist
from sparse_keras.layers import KWinners
from training import side_by_side, side_by_side_torch
from training.recipe import get_recipe

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULT = REPO / "training" / "results" / "side_by_side.json"


def test_snapshot_steps_pair_the_period_switch_and_both_phases():
    # 1000 samples at batch 4 are seen after step 249: the pair 249 -> 250 crosses the
    # switch from period = samples seen to period = 1000.
    steps = side_by_side.snapshot_steps(300, 50)
    assert steps == [0, 1, 10, 100, 249, 250, 299, 300, 301, 325, 349]
    assert side_by_side.snapshot_steps(3, 2) == [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("sbs") / "run.npz"
    side_by_side.record(
        "mnist_sparse_cnn2",
        seed=1,
        steps_a=3,
        steps_b=2,
        data_dir=str(data_dir / "mnist"),
        out=out,
        ties_of="mnist_sparse_cnn2",
        ties_samples=64,
    )
    return np.load(out)


def _state(z, step):
    prefix = f"state{step}/"
    return {k[len(prefix) :]: z[k] for k in z.files if k.startswith(prefix)}


def test_record_follows_the_runner_step_by_step(recorded, data_dir):
    z = recorded
    recipe = get_recipe("mnist_sparse_cnn2")
    assert len(z["loss"]) == 5 and np.isfinite(z["loss"]).all()
    # lr * gamma ** (epoch + 1): 0.02 * 0.8 = 0.016 in epoch 0, 0.0128 in epoch 1.
    np.testing.assert_allclose(z["learning_rate"], [0.016] * 3 + [0.0128] * 2)
    assert [z[f"y{i}"].shape[0] for i in range(5)] == [4, 4, 4, 64, 64]
    assert z[f"x{0}"].shape == (4, 28, 28, 1)
    # The runner's epoch-0 order for seed 1.
    first = np.random.default_rng([1, 0]).permutation(60_000)[:4]
    _, labels = mnist.load_arrays("train", str(data_dir / "mnist"))
    np.testing.assert_array_equal(z["y0"], labels[first])
    assert list(z["k_train"]) == [400, 300, 100]
    for step in range(5):
        before, after = _state(z, step), _state(z, step + 1)
        # Every step moves the weights and counts its batch into samples seen.
        assert not np.array_equal(before["hidden/kernel"], after["hidden/kernel"])
        batch = z[f"y{step}"].shape[0]
        assert after["hidden_kwinners/samples_seen"] == before["hidden_kwinners/samples_seen"] + (
            batch
        )
        # Masked weights stay zero.
        assert not after["hidden/kernel"][after["hidden/kernel_mask"] == 0].any()
    # Epoch 1 starts with beta * factor (1.5 * 0.85), epoch 0 used 1.5.
    assert float(_state(z, 0)["hidden_kwinners/boost_strength"]) == pytest.approx(1.5)
    assert float(_state(z, 3)["hidden_kwinners/boost_strength"]) == pytest.approx(1.275)
    assert float(z["momentum"]) == recipe.momentum == 0.0
    ties = json.loads(str(z["ties_trained"]))
    assert set(ties) == {"conv1_kwinners", "conv2_kwinners", "hidden_kwinners"}
    assert all(row["samples"] == 64 for row in ties.values())
    effect = json.loads(str(z["tie_rule_effect"]))
    assert effect["samples"] == 64 and set(effect["layers"]) == {"conv1_kwinners", "conv2_kwinners"}


def test_threshold_ties_are_counted_by_hand():
    # One sample of 6 units, k = 2 in training and 3 at inference (factor 1.5); with
    # zero duty cycles every boost factor is equal, so ranks follow the values.
    inputs = keras.Input((6,))
    layer = KWinners(2, k_inference_factor=1.5, name="kw")
    model = keras.Model(inputs, layer(inputs))
    values = np.array([[5.0, 4.0, 4.0, 1.0, 0.5, 0.0], [5.0, 4.0, 3.0, 3.0, 0.5, 0.0]])
    counts = side_by_side.threshold_ties(model, values.astype(np.float32))
    # Sample 0: 2nd and 3rd values tie (k = 2); sample 1: 3rd and 4th tie (k = 3).
    assert counts == {"kw": {"training_k": 1, "inference_k": 1, "samples": 2}}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"recipe_name": "nope"}, "Unknown recipe 'nope'"),
        ({"recipe_name": "gsc_sparse_cnn2"}, "MNIST recipes only"),
        ({"steps_a": 0}, "must be >= 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        side_by_side.record(**kwargs, out=tmp_path / "x.npz", ties_of=None)
    assert not (tmp_path / "x.npz").exists()


def test_cli_reports_an_unknown_recipe(capsys):
    assert side_by_side.main(["--recipe", "nope", "--ties-of", ""]) == 2
    assert "Unknown recipe 'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- committed report


@pytest.fixture(scope="module")
def result():
    return json.loads(RESULT.read_text())


def test_committed_report_is_the_json_rendered(result):
    committed = (REPO / "training" / "results" / "side_by_side.md").read_text()
    assert side_by_side_torch.markdown(result) == committed


def test_committed_report_was_made_by_a_commit_of_this_repository(result):
    commit = result["keras_git_commit"]
    assert len(commit) == 40
    subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO, check=True)


def test_steps_without_a_threshold_tie_agree_to_rounding(result):
    rows = result["teacher_forced"]
    assert [r["step"] for r in rows] == side_by_side.snapshot_steps(
        result["steps_a"], result["steps_b"]
    )
    untied = [r for r in rows if r["threshold_ties"] == 0]
    assert len(untied) >= 5
    for row in untied:
        assert max(row["max_relative_difference"].values()) < 1e-6, row
        assert abs(row["loss_torch"] - row["loss_keras"]) < 1e-5, row
    # Samples: steps x batch of each phase (batch 4, then 64).
    assert result["samples"] == {"A": 4 * result["steps_a"], "B": 64 * result["steps_b"]}


def test_tie_rule_effect_by_hand():
    # A 1x2x2 input with 2 channels, all values equal: every unit ties. k = 2 winners.
    # Ours (H·W·C order) keeps (0,0,c0) and (0,0,c1), flat indices 0 and 1; C·H·W order
    # keeps (c0,0,0) and (c0,0,1), i.e. (0,0,c0) and (0,1,c0), flat indices 0 and 2.
    inputs = keras.Input((1, 2, 2))
    kw = KWinners(2, k_inference_factor=1.0, name="kw")
    logits = keras.layers.Dense(2, use_bias=False, name="out")(keras.layers.Flatten()(kw(inputs)))
    model = keras.Model(inputs, logits)
    weights = np.zeros((4, 2), np.float32)
    weights[1, 0] = 1.0  # class 0 reads flat unit 1, a winner only under our rule
    weights[2, 1] = 1.0  # class 1 reads flat unit 2, a winner only under C·H·W order
    model.get_layer("out").set_weights([weights])
    images = np.ones((3, 1, 2, 2), np.float32)
    effect = side_by_side.tie_rule_effect(model, images, np.array([1, 1, 0]))
    assert effect["samples"] == 3
    assert effect["accuracy"] == pytest.approx(1 / 3)  # ours says class 0 for all three
    assert effect["layers"] == {"kw": {"accuracy": pytest.approx(2 / 3), "classes_changed": 3}}
