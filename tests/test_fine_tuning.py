"""Fine-tuning a zoo model on a new task, as `docs/fine_tuning.md` shows.

A tiny `mnist_sparse_cnn2` is "pretrained" for a few steps (so its duty cycles are not
zero), packaged with the zoo's `package`, and loaded with `sparse_keras.zoo.load` from
the local zoo folder (offline, so the documented fallback path is the one used). Its
classifier head is swapped for a new 10-class one and trained on Fashion-MNIST (the
Debian package `dataset-fashion-mnist`, files in /usr/share/datasets/fashion-mnist;
skipped where it is not installed) and on synthetic data. The sparse state must
survive: masked weights stay exactly zero, masks do not change, duty cycles continue
from their loaded values, and a k-winners layer with `trainable = False` keeps them
frozen, as BatchNormalization keeps its statistics.
"""

from __future__ import annotations

import os
import pathlib

import hf_server
import keras
import numpy as np
import pytest

from sparse_keras import KWinners, zoo
from sparse_keras.callbacks import k_winners_layers
from sparse_keras.data.mnist import normalize_images, read_idx
from sparse_keras.zoo import registry as zoo_registry
from training import packaging

FASHION_MNIST = pathlib.Path(
    os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
)
NAME = "mnist_tiny_cnn2"
PRETRAIN_SAMPLES = 48  # make_training_run: 3 steps of 16
BATCH = 16


@pytest.fixture(scope="module")
def pretrained_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    hf_server.make_training_run(root, train_steps=3)
    registry = hf_server.empty_registry(root / "registry.json")
    packaging.package(
        "mnist_sparse_cnn2",
        0,
        name=NAME,
        runs_dir=root / "runs",
        results_dir=root / "results",
        zoo_dir=root / "zoo",
        registry=registry,
    )
    return root


@pytest.fixture
def base_model(pretrained_zoo, monkeypatch, tmp_path):
    monkeypatch.setenv(zoo_registry.REGISTRY_ENV, str(pretrained_zoo / "registry.json"))
    monkeypatch.setenv(zoo_registry.ZOO_DIR_ENV, str(pretrained_zoo / "zoo"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.warns(UserWarning, match="Using the copy in"):
        return zoo.load(NAME)


def fashion_mnist(count: int) -> tuple[np.ndarray, np.ndarray]:
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        # CI names the folder (.ci/run unpacks the Debian package): missing there is an error.
        assert "FASHION_MNIST_DIR" not in os.environ, f"FASHION_MNIST_DIR={FASHION_MNIST} is empty"
        pytest.skip(
            f"Fashion-MNIST not installed at {FASHION_MNIST} (apt-get install dataset-fashion-mnist)"
        )
    images = read_idx(FASHION_MNIST / "train-images-idx3-ubyte.gz")[:count]
    labels = read_idx(FASHION_MNIST / "train-labels-idx1-ubyte.gz")[:count].astype("int32")
    x = np.asarray(normalize_images(images[..., None].astype("float32") / 255.0))
    return x, labels


def synthetic(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(count, 28, 28, 1)).astype("float32"), rng.integers(0, 10, count).astype(
        "int32"
    )


@pytest.fixture(params=["fashion_mnist", "synthetic"])
def new_task(request):
    return {"fashion_mnist": fashion_mnist, "synthetic": synthetic}[request.param](4 * BATCH)


def with_new_head(base: keras.Model, classes: int = 10) -> keras.Model:
    """The docs' recipe: keep everything up to the layer before the logits, add a new head."""
    features = base.layers[-2].output
    logits = keras.layers.Dense(classes, name="new_logits")(features)
    model = keras.Model(base.input, logits, name="fine_tuned")
    model.compile(
        # Momentum would move masked weights off zero if the mask were not re-applied.
        optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def sparse_state(model: keras.Model) -> dict[str, np.ndarray]:
    state = {}
    for layer in k_winners_layers(model):
        for weight in (layer.duty_cycles, layer.samples_seen, layer.boost_strength):
            state[f"{layer.name}/{weight.name}"] = np.array(weight.numpy())
    return state


def assert_masks_exact(model: keras.Model, mask_before: np.ndarray) -> None:
    hidden = model.get_layer("hidden")
    mask = hidden.kernel_mask.numpy()
    np.testing.assert_array_equal(mask, mask_before)
    assert np.all(hidden.kernel.numpy()[mask == 0] == 0.0)
    assert 0 < mask.mean() < 1


def test_fine_tuning_keeps_masks_exact_and_continues_duty_cycles(base_model, new_task):
    x, y = new_task
    loaded = sparse_state(base_model)
    assert loaded["conv1_kwinners/samples_seen"] == PRETRAIN_SAMPLES, (
        "duty-cycle state was not restored"
    )
    assert loaded["hidden_kwinners/duty_cycles"].any()
    mask = base_model.get_layer("hidden").kernel_mask.numpy()
    kernel_before = base_model.get_layer("hidden").kernel.numpy().copy()
    model = with_new_head(base_model)

    # The first batch's duty-cycle update must start from the loaded duty cycles: replay
    # it on a copy of conv1's k-winners layer (its input does not depend on any state).
    layer = model.get_layer("conv1_kwinners")
    twin = KWinners.from_config(layer.get_config())
    pooled = keras.Model(model.input, model.get_layer("conv1_pool").output)(x[:BATCH])
    twin.build(pooled.shape)
    twin.set_weights(layer.get_weights())
    twin(pooled, training=True)
    model.train_on_batch(x[:BATCH], y[:BATCH])
    np.testing.assert_allclose(
        layer.duty_cycles.numpy(), twin.duty_cycles.numpy(), rtol=1e-6, atol=1e-7
    )
    assert not np.allclose(layer.duty_cycles.numpy(), loaded["conv1_kwinners/duty_cycles"])

    model.fit(x[BATCH:], y[BATCH:], batch_size=BATCH, epochs=1, verbose=0)
    state = sparse_state(model)
    for layer in k_winners_layers(model):
        assert state[f"{layer.name}/samples_seen"] == PRETRAIN_SAMPLES + len(x)
    assert_masks_exact(model, mask)
    assert not np.array_equal(model.get_layer("hidden").kernel.numpy(), kernel_before)


def test_frozen_k_winners_keep_their_duty_cycles(base_model):
    x, y = synthetic(3 * BATCH)
    mask = base_model.get_layer("hidden").kernel_mask.numpy()
    kernel_before = base_model.get_layer("hidden").kernel.numpy().copy()
    for layer in k_winners_layers(base_model):
        layer.trainable = False  # before compiling, as for BatchNormalization
    loaded = sparse_state(base_model)
    model = with_new_head(base_model)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    state = sparse_state(model)
    for key, value in loaded.items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)
    assert_masks_exact(model, mask)
    assert not np.array_equal(model.get_layer("hidden").kernel.numpy(), kernel_before)
    # A frozen layer behaves as at inference even when called with training=True.
    hidden_kwinners = model.get_layer("hidden_kwinners")
    out = hidden_kwinners(
        np.random.default_rng(2).normal(size=(5, 32)).astype("float32"), training=True
    )
    assert (np.count_nonzero(np.asarray(out), axis=1) == hidden_kwinners.k_inference).all()
