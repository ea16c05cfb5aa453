"""The training runner: recipes as SPEC §3 says, resume after interruption, determinism."""

import json

import numpy as np
import pytest

from sparse_keras import models
from training import recipe as recipes
from training import train


def test_recipes_follow_the_released_configs():
    sparse2 = recipes.get_recipe("mnist_sparse_cnn2")
    assert (sparse2.epochs, sparse2.learning_rate, sparse2.momentum) == (10, 0.02, 0.0)
    assert [sparse2.batch_size_for(e) for e in (0, 1, 9)] == [4, 64, 64]
    # StepLR is stepped before each epoch's training: epoch i trains at lr * 0.8 ** (i + 1).
    assert [sparse2.learning_rate_for(e) for e in (0, 1, 9)] == pytest.approx(
        [0.016, 0.0128, 0.02 * 0.8**10]
    )
    dense2 = recipes.get_recipe("mnist_dense_cnn2")
    assert (dense2.epochs, dense2.batch_size_for(0), dense2.momentum) == (15, 64, 0.9)
    # The boost decay has one home, the network's k-winners layers (BoostDecay reads it).
    assert models.get_config(sparse2.network).boost_strength_factor == 0.85
    assert (
        models.get_config(recipes.get_recipe("gsc_sparse_cnn2").network).boost_strength_factor
        == 0.9
    )
    # The released config also trains Sparse CNN-1 and two ablations at batch 4 in epoch 0.
    assert recipes.get_recipe("mnist_sparse_cnn1").batch_size_for(0) == 4
    sp3 = recipes.get_recipe("mnist_dense_cnn2_sp3")
    assert (sp3.momentum, sp3.epochs, sp3.batch_size_for(0)) == (0.5, 10, 4)
    assert set(recipes.list_recipes()) >= {
        "mnist_dense_cnn1",
        "mnist_sparse_cnn1",
        "mnist_sparse_cnn2_dsw",
    }
    with pytest.raises(ValueError, match="Unknown recipe 'mnist_cnn7'; available: "):
        recipes.get_recipe("mnist_cnn7")


def _run(tmp_path, data_dir, name, epochs):
    recipe = recipes.get_recipe("mnist_sparse_cnn2")
    return train.train_seed(
        recipe,
        seed=3,
        runs_dir=tmp_path / name,
        data_dir=str(data_dir / "mnist"),
        max_train_examples=256,
        epochs=epochs,
        verbose=0,
        max_test_examples=200,
    )


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, data_dir):
    full, full_state = _run(tmp_path, data_dir, "full", 2)
    _run(tmp_path, data_dir, "interrupted", 1)  # "killed" after epoch 0
    state = json.loads((tmp_path / "interrupted/mnist_sparse_cnn2/seed3/state.json").read_text())
    assert state["epochs_done"] == 1
    resumed, resumed_state = _run(tmp_path, data_dir, "interrupted", 2)
    assert resumed_state["epochs_done"] == 2 and len(resumed_state["history"]) == 2
    for a, b in zip(full.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
    kw = resumed.get_layer("hidden_kwinners")
    # Epoch 0 ran at batch 4 on 256 images, epoch 1 at batch 64: 512 samples seen in all.
    assert kw.samples_seen.numpy() == 512
    # Decayed after the last epoch too (the released postEpoch): 2 epochs -> 1.5 * 0.85**2.
    assert kw.boost_strength.numpy() == pytest.approx(1.5 * 0.85**2)
    # The masked weights of the sparse hidden layer are still exactly zero.
    hidden = resumed.get_layer("hidden")
    assert (hidden.kernel.numpy()[hidden.kernel_mask.numpy() == 0] == 0).all()
    assert [h["learning_rate"] for h in full_state["history"]] == pytest.approx([0.016, 0.0128])


@pytest.mark.parametrize(
    "network", ["dense_cnn2", "dense_cnn2_dropout", "sparse_cnn2", "super_sparse_cnn2"]
)
def test_gsc12v2_recipes_are_the_gsc_recipes_on_other_data(network):
    import dataclasses

    gsc = recipes.get_recipe(f"gsc_{network}")
    paper = recipes.get_recipe(f"gsc12v2_{network}")
    recorded = recipes.get_recipe(f"gsc12v2_recorded_silence_{network}")
    assert dataclasses.replace(paper, name=gsc.name, dataset="gsc") == gsc
    assert paper.data_options == {} and recorded.data_options == {"silence": "recorded"}
    assert dataclasses.replace(recorded, name=paper.name, data_options={}) == paper


def test_tensorboard_logs_are_optional(tmp_path, monkeypatch, capsys):
    """Without the `reproduce` extra's tensorboard the runner trains on, with a note."""
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def without_tensorboard(name, *args, **kwargs):
        return None if name == "tensorboard" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_tensorboard)
    assert train.tensorboard_callbacks(tmp_path, "mnist_sparse_cnn2", 3) == []
    note = capsys.readouterr().out
    assert "[mnist_sparse_cnn2 seed 3] tensorboard is not installed" in note
    assert '".[reproduce]"' in note
    monkeypatch.undo()
    if real_find_spec("tensorboard") is not None:
        (callback,) = train.tensorboard_callbacks(tmp_path, "mnist_sparse_cnn2", 3)
        assert callback.log_dir == str(tmp_path)
