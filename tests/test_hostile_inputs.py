"""Hostile and broken input at every public boundary (issue 20).

Each case gives a public entry point a bad input and asserts either a *named* error
whose message names the offending value and what was expected, or a documented
behaviour; and that nothing on disk changed (`unchanged`: every file's size, mtime and
sha256 under the watched folders). No case may abort the process or answer silently.

The tables are grouped by boundary: layers, models, optimizer, robustness, data,
export and the served signatures, the training runner, the zoo. Models are built once
per module and kept tiny, so the whole file runs in well under a minute.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import wave
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from sparse_keras import KWinners, SparseConv2D, SparseDense, export, models, robustness
from sparse_keras.data import audio, download, fsdd, gsc, gsc12v2, mnist, wav
from sparse_keras.optimizers import CoupledSGD

NAN, INF = float("nan"), float("inf")


# --------------------------------------------------------------------------- helpers


def _snapshot(*folders: pathlib.Path) -> dict[str, tuple]:
    """Every file (and folder) under `folders`: size, mtime and sha256."""
    state = {}
    for folder in folders:
        if not folder.exists():
            state[str(folder)] = None
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_dir():
                state[str(path)] = "dir"
            else:
                stat = path.stat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[str(path)] = (stat.st_size, stat.st_mtime_ns, digest)
    return state


@contextlib.contextmanager
def unchanged(*folders: pathlib.Path):
    """Asserts that no file under `folders` is created, removed or changed."""
    before = _snapshot(*folders)
    yield
    assert _snapshot(*folders) == before, "a failed call changed files on disk"


@pytest.fixture(autouse=True)
def _private_keras_home(tmp_path_factory, monkeypatch):
    # Data verification markers go to $KERAS_HOME: keep them out of the user's ~/.keras.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.getbasetemp() / "keras_home"))


def write_wav(path: pathlib.Path, samples, rate=16000, channels=1, width=2) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes((np.asarray(samples) * 32767).astype(f"<i{width}").tobytes())
    return path


def _tone(n=8000):
    return (0.5 * np.sin(2 * np.pi * 300 * np.arange(n) / 16000)).astype(np.float32)


# --------------------------------------------------------------------------- layers

LAYER_ARGUMENTS = [
    (KWinners, {"k": 0}, "k must be a positive integer, got 0"),
    (KWinners, {"k": -3}, "k must be a positive integer, got -3"),
    (KWinners, {"k": 2.5}, "k must be a positive integer, got 2.5"),
    (KWinners, {"k": True}, "k must be a positive integer, got True"),
    (KWinners, {"k": "3"}, "k must be a positive integer, got '3'"),
    (KWinners, {"k": 2, "k_inference_factor": 0.5}, r"k_inference_factor must be >= 1.0, got 0.5"),
    (KWinners, {"k": 2, "k_inference_factor": INF}, "k_inference_factor must be a finite number"),
    (KWinners, {"k": 2, "boost_strength": -1.0}, r"boost_strength must be >= 0.0, got -1.0"),
    (KWinners, {"k": 2, "boost_strength": NAN}, "boost_strength must be a number >= 0.0, got nan"),
    (KWinners, {"k": 2, "boost_strength": INF}, "boost_strength must be a finite number"),
    (
        KWinners,
        {"k": 2, "boost_strength": 1e9},
        r"boost_strength must be <= 20.0 .* got 1000000000.0",
    ),
    (KWinners, {"k": 2, "boost_strength": 20.5}, r"boost_strength must be <= 20.0 .* got 20.5"),
    (KWinners, {"k": 2, "boost_strength_factor": 0}, r"boost_strength_factor must be .* \(0, 1\]"),
    (KWinners, {"k": 2, "boost_strength_factor": 1.5}, r"in \(0, 1\], got 1.5"),
    (KWinners, {"k": 2, "duty_cycle_period": 0}, "duty_cycle_period must be a positive integer"),
    (SparseDense, {"units": 3, "density": 0}, r"density must be a number in \(0, 1\], got 0"),
    (SparseDense, {"units": 3, "density": 1.5}, r"density must be a number in \(0, 1\], got 1.5"),
    (SparseDense, {"units": 3, "density": NAN}, r"density must be a number in \(0, 1\], got nan"),
    (
        SparseDense,
        {"units": 3, "density": "0.5"},
        r"density must be a number in \(0, 1\], got '0.5'",
    ),
    (
        SparseDense,
        {"units": 3, "density": 0.5, "seed": -1},
        "seed must be an integer >= 0 or None, got -1",
    ),
    (
        SparseDense,
        {"units": 3, "density": 0.5, "seed": 1.5},
        "seed must be an integer >= 0 or None, got 1.5",
    ),
    (
        SparseDense,
        {"units": 3, "density": 0.5, "seed": True},
        "seed must be an integer >= 0 or None, got True",
    ),
    (
        SparseConv2D,
        {"filters": 2, "kernel_size": 3, "density": 0.0},
        r"density must be a number in \(0, 1\]",
    ),
    (
        SparseConv2D,
        {"filters": 2, "kernel_size": 3, "density": 0.5, "data_format": "channels_first"},
        "supports data_format='channels_last' only, got 'channels_first'",
    ),
]


@pytest.mark.parametrize("layer, kwargs, message", LAYER_ARGUMENTS)
def test_layer_constructor_refuses(layer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        layer(**kwargs)


def test_boost_strength_at_the_bound_keeps_finite_boost_factors():
    """Documented: MAX_BOOST_STRENGTH itself is accepted and exp(beta) stays finite."""
    from sparse_keras.layers.k_winners import MAX_BOOST_STRENGTH

    layer = KWinners(2, boost_strength=MAX_BOOST_STRENGTH)
    layer(np.ones((1, 8), "float32"))
    layer.duty_cycles.assign(np.array([0, 1, 0, 1, 0, 1, 0, 1], "float32"))
    factors = layer.boost_factors().numpy()
    assert np.all(np.isfinite(factors)) and factors.max() / factors.min() > 1e8
    boosted = np.float32(1e20) * factors
    assert np.all(np.isfinite(boosted))


BAD_ACTIVATIONS = [
    ("nan-dense", np.array([[0.1, NAN, 0.3, 0.5]], "float32")),
    ("inf-dense", np.array([[0.1, INF, 0.3, 0.5]], "float32")),
    ("minus-inf", np.array([[0.1, -INF, 0.3, 0.5]], "float32")),
    ("nan-conv", np.where(np.eye(4)[None, :, :, None] > 0, NAN, 1.0).astype("float32")),
]


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("case, inputs", BAD_ACTIVATIONS, ids=[c for c, _ in BAD_ACTIVATIONS])
def test_kwinners_refuses_non_finite_inputs_eagerly(case, inputs, training):
    layer = KWinners(2, k_inference_factor=1.0)
    layer.build(inputs.shape)
    with pytest.raises(tf.errors.InvalidArgumentError, match="got NaN or Inf inputs"):
        layer(inputs, training=training)
    assert float(layer.samples_seen.numpy()) == 0.0  # no duty-cycle update either


def test_kwinners_refuses_nan_inside_a_graph():
    layer = KWinners(2, k_inference_factor=1.0)

    @tf.function
    def call(x):
        return layer(x, training=True)

    call(tf.ones((1, 4)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"KWinners layer .* NaN or Inf"):
        call(tf.constant([[1.0, NAN, 0.0, 2.0]]))


def test_kwinners_refuses_integer_input_and_bad_rank():
    with pytest.raises(TypeError, match="expects float inputs .* got dtype int32"):
        KWinners(2)(np.zeros((1, 4), "int32"))
    with pytest.raises(
        ValueError, match=r"rank-2 .* or rank-4 .* got shape \(1, 3, 4\) \(rank 3\)"
    ):
        KWinners(2)(np.zeros((1, 3, 4), "float32"))


@pytest.mark.parametrize("batch_size", [-1, -0.5, NAN, INF, True])
def test_update_duty_cycles_refuses_bad_python_batch_size(batch_size):
    layer = KWinners(2)
    layer.build((None, 4))
    with pytest.raises(ValueError, match=r"batch_size must be a number of samples >= 0, got"):
        layer.update_duty_cycles(tf.zeros(4), batch_size)
    assert float(layer.samples_seen.numpy()) == 0.0


def test_update_duty_cycles_refuses_negative_tensor_batch_size_and_bad_count():
    layer = KWinners(2)
    layer.build((None, 4))
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs batch_size >= 0"):
        layer.update_duty_cycles(tf.zeros(4), tf.constant(-2.0))
    with pytest.raises(
        ValueError, match=r"count must have the duty cycles' shape \(4,\), got \(3,\)"
    ):
        layer.update_duty_cycles(tf.zeros(3), 2)
    assert float(layer.samples_seen.numpy()) == 0.0


def test_empty_training_batch_leaves_duty_cycles_alone():
    """Documented: a batch of 0 samples is legal and changes no duty cycle."""
    layer = KWinners(2, boost_strength=1.0)
    layer(np.ones((1, 4), "float32"))
    layer(np.zeros((0, 4), "float32"), training=True)
    np.testing.assert_array_equal(layer.duty_cycles.numpy(), np.zeros(4, "float32"))


def _dense_store(density: float, seed: int = 0) -> dict:
    layer = SparseDense(6, density=density, seed=seed)
    layer(np.ones((1, 10), "float32"))
    store = {}
    layer.save_own_variables(store)
    return {key: np.asarray(value) for key, value in store.items()}


def test_sparse_weights_of_another_density_are_refused():
    target = SparseDense(6, density=0.5, seed=1)
    target(np.ones((1, 10), "float32"))
    kernel = target.kernel.numpy()
    with pytest.raises(ValueError, match=r"has density 0.5 \(keeps 5 of 10 .* keeps 3..3"):
        target.load_own_variables(_dense_store(0.3))
    np.testing.assert_array_equal(target.kernel.numpy(), kernel)  # nothing half-loaded


def test_sparse_weights_into_a_dense_layer_are_refused():
    target = SparseDense(6, density=1.0)
    target(np.ones((1, 10), "float32"))
    with pytest.raises(ValueError, match=r"is dense \(density 1.0\) but the saved weights .* 0.3"):
        target.load_own_variables(_dense_store(0.3))


def test_mask_with_values_other_than_0_and_1_is_refused():
    store = _dense_store(0.5)
    store["kernel_mask"] = store["kernel_mask"] * 0.5
    target = SparseDense(6, density=0.5)
    target(np.ones((1, 10), "float32"))
    with pytest.raises(ValueError, match="kernel_mask must hold only 0 and 1"):
        target.load_own_variables(store)


def _mask_model(density: float) -> keras.Model:
    return keras.Sequential(
        [keras.Input((10,)), SparseDense(6, density=density, seed=0, name="hidden")], name="m"
    )


def test_weights_file_of_another_density_is_refused(tmp_path):
    _mask_model(0.3).save_weights(tmp_path / "a.weights.h5")
    model = _mask_model(0.5)
    with unchanged(tmp_path), pytest.raises(ValueError, match="has density 0.5"):
        model.load_weights(tmp_path / "a.weights.h5")


def test_keras_file_whose_config_density_differs_from_its_mask_is_refused(tmp_path):
    _mask_model(0.3).save(tmp_path / "a.keras")
    # A crafted (or hand-edited) file: the config claims density 0.5, the mask is 0.3.
    with zipfile.ZipFile(tmp_path / "a.keras") as original:
        files = {name: original.read(name) for name in original.namelist()}
    files["config.json"] = files["config.json"].replace(b'"density": 0.3', b'"density": 0.5')
    with zipfile.ZipFile(tmp_path / "b.keras", "w") as crafted:
        for name, data in files.items():
            crafted.writestr(name, data)
    with unchanged(tmp_path), pytest.raises(ValueError, match="has density 0.5"):
        keras.saving.load_model(tmp_path / "b.keras")


# --------------------------------------------------------------------------- models

BAD_BUILDS = [
    (("nope",), {}, r"Unknown network 'nope'; available: mnist_dense_cnn1"),
    ((3,), {}, "Unknown network 3; available"),
    (
        ("mnist_sparse_cnn2",),
        {"foo": 1},
        r"Unknown override\(s\) \['foo'\] for 'mnist_sparse_cnn2'",
    ),
    (("mnist_sparse_cnn2",), {"hidden_units": 0}, "expected a positive integer. Received: units=0"),
    (
        ("mnist_sparse_cnn2",),
        {"weight_density": 2.0},
        r"density must be a number in \(0, 1\], got 2.0",
    ),
    (("mnist_sparse_cnn2",), {"boost_strength": INF}, "boost_strength must be a finite number"),
    (("mnist_sparse_cnn2",), {"seed": 1.5}, "seed must be an integer >= 0 or None, got 1.5"),
    (("mnist_sparse_cnn2",), {"seed": "a"}, "seed must be an integer >= 0 or None, got 'a'"),
    (
        ("mnist_dense_cnn2",),
        {"dropout": 1.5},
        "Expected a float value between 0 and 1. Received: rate=1.5",
    ),
]


@pytest.mark.parametrize("args, kwargs, message", BAD_BUILDS)
def test_models_build_refuses(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build(*args, **kwargs)


# --------------------------------------------------------------------------- optimizer

BAD_OPTIMIZERS = [
    ({"learning_rate": -0.1}, r"learning_rate must be >= 0.0, got -0.1"),
    ({"learning_rate": NAN}, "learning_rate must be a number >= 0.0, got nan"),
    ({"learning_rate": INF}, "learning_rate must be a finite number >= 0.0, got inf"),
    ({"momentum": 1.5}, r"`momentum` must be a float between \[0, 1\]"),
    ({"momentum": -0.1}, r"momentum must be >= 0.0, got -0.1"),
    ({"coupled_weight_decay": INF}, "coupled_weight_decay must be a finite number >= 0.0, got inf"),
    ({"coupled_weight_decay": -1.0}, r"coupled_weight_decay must be >= 0.0, got -1.0"),
    ({"coupled_weight_decay": "0.1"}, "coupled_weight_decay must be a number >= 0.0, got '0.1'"),
    ({"nesterov": True}, "CoupledSGD does not take nesterov=True"),
    ({"weight_decay": 0.01}, "CoupledSGD does not take weight_decay=0.01"),
]


@pytest.mark.parametrize("kwargs, message", BAD_OPTIMIZERS)
def test_coupled_sgd_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoupledSGD(**kwargs)


# --------------------------------------------------------------------------- robustness


def _images_dataset(labels=(0, 1, 2, 3)):
    images = np.linspace(0, 1, len(labels) * 4, dtype="float32").reshape(len(labels), 4)
    return tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, "int64")))


def _add_noise(inputs, eta, seed):
    return inputs + eta


def _uniform_logits(inputs):
    return tf.tile(tf.constant([[0.1, 0.2, 0.3, 0.4]]), [tf.shape(inputs)[0], 1])


def _nan_logits(inputs):
    return tf.fill([tf.shape(inputs)[0], 4], NAN)


def _evaluate(**kwargs):
    arguments = {
        "model": _uniform_logits,
        "dataset": _images_dataset(),
        "noise_levels": (0.0, 0.1),
        "noise_fn": _add_noise,
        "progress": False,
    } | kwargs
    return robustness.evaluate(**arguments)


BAD_EVALUATIONS = [
    ({"model": _nan_logits}, ValueError, "The model output NaN for 4 of 4 examples"),
    (
        {"noise_levels": (0.1, 0.1)},
        ValueError,
        r"noise_levels must be distinct.*repeated: \[0.1\]",
    ),
    ({"noise_levels": (0.0, 0.05, 0.0)}, ValueError, r"repeated: \[0.0\]"),
    ({"noise_levels": ()}, ValueError, "noise_levels is empty"),
    ({"noise_levels": (1.5,)}, ValueError, r"Noise level must be in \[0, 1\], got 1.5"),
    ({"noise_levels": (-0.1,)}, ValueError, r"Noise level must be in \[0, 1\], got -0.1"),
    ({"noise_levels": "0.1"}, ValueError, "noise_levels must be a sequence of numbers"),
    ({"seed": 1.5}, TypeError, r"seed must be an integer, got 1.5 \(float\)"),
    ({"seed": True}, TypeError, r"seed must be an integer, got True \(bool\)"),
    ({"seed": "0"}, TypeError, r"seed must be an integer, got '0' \(str\)"),
    ({"seed": 2**64}, ValueError, "seed must fit in a signed 64-bit integer"),
    ({"dataset": _images_dataset((0, -1, 2, 3))}, ValueError, r"Label -1 is negative.*\[0, 4\)"),
    (
        {"dataset": _images_dataset((0, 7, 2, 3))},
        ValueError,
        "Label 7 is out of range .* 4 classes",
    ),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
    ({"batch_size": 2.5}, ValueError, "batch_size must be a positive integer, got 2.5"),
    ({"batch_size": True}, ValueError, "batch_size must be a positive integer, got True"),
    ({"max_examples": 0}, ValueError, "max_examples must be a positive integer, got 0"),
    ({"dataset": "cifar10"}, ValueError, r"Unknown dataset 'cifar10'; expected one of \('mnist'"),
    ({"noise_fn": None}, ValueError, r"A custom dataset needs a noise_fn\(inputs, eta, seed\)"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_EVALUATIONS)
def test_evaluate_refuses(kwargs, error, message):
    with pytest.raises(error, match=message):
        _evaluate(**kwargs)


def test_evaluate_accepts_infinite_logits():
    """Documented: +-inf logits have a well-defined argmax, so they are scored."""

    def infinite(inputs):
        row = tf.constant([[-INF, INF, 0.0, 0.0]])
        return tf.tile(row, [tf.shape(inputs)[0], 1])

    report = _evaluate(model=infinite)
    assert report.correct == (1, 1)


def test_nan_model_gets_no_score_on_real_mnist(data_dir):
    nan_model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(_nan_logits10)])
    with pytest.raises(ValueError, match="The model output NaN for 10 of 10 examples"):
        robustness.evaluate(
            nan_model, "mnist", (0.0,), data_dir=data_dir / "mnist", max_examples=10, progress=False
        )


def _nan_logits10(inputs):
    return tf.fill([tf.shape(inputs)[0], 10], NAN)


def test_noisy_test_set_evaluation_refuses_nan_model():
    noisy = robustness.NoisyTestSet(
        "toy", (0.0,), [np.zeros((3, 4), "float32")], np.zeros(3, "int64"), 0
    )
    with pytest.raises(ValueError, match="The model output NaN for 3 of 3"):
        noisy.evaluate(_nan_logits)


def test_noise_report_refuses_float_seed():
    with pytest.raises(TypeError, match=r"seed must be an integer, got 0.5"):
        robustness.NoiseReport("m", "mnist", (0.0,), (1,), 10, 0.5)


def _output_path_cases(tmp_path: pathlib.Path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    return [
        (tmp_path / "missing" / "report.json", r"its folder .*missing' does not exist"),
        (tmp_path / "a_folder", r"a_folder' is a directory; expected a file path"),
        (tmp_path / "a_file" / "report.json", r"a_file' is not a folder"),
        ("", "must be a file path, got ''"),
    ]


@pytest.mark.parametrize("case", range(4))
def test_check_output_path_refuses_before_any_work(tmp_path, case):
    path, message = _output_path_cases(tmp_path)[case]
    with unchanged(tmp_path), pytest.raises(ValueError, match=message):
        robustness.check_output_path(path, "--json path")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_check_output_path_refuses_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="no write permission"):
            robustness.check_output_path(folder / "r.json")
    finally:
        folder.chmod(0o700)


def test_report_to_json_into_a_missing_folder_writes_nothing(tmp_path):
    report = robustness.NoiseReport("m", "mnist", (0.0,), (1,), 10, 0)
    with unchanged(tmp_path), pytest.raises(ValueError, match="does not exist"):
        report.to_json(tmp_path / "nope" / "r.json")
    report.to_json(tmp_path / "r.json")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


# --------------------------------------------------------------------------- data: MNIST


@pytest.fixture(scope="module")
def altered_mnist(data_dir, tmp_path_factory):
    """A copy of the MNIST test files whose (decompressed) labels file has one label changed."""
    folder = tmp_path_factory.mktemp("altered_mnist")
    shutil.copy(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", folder)
    labels = bytearray(
        gzip.decompress((data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    )
    labels[8] = (labels[8] + 1) % 10  # still a valid IDX file: the worst kind of damage
    (folder / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    return folder


def test_altered_mnist_file_is_refused(altered_mnist, monkeypatch):
    monkeypatch.delenv(download.VERIFY_ENV_VAR, raising=False)
    with unchanged(altered_mnist), pytest.raises(download.DataIntegrityError) as info:
        mnist.load_arrays("test", altered_mnist, download=False)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte is not the official file" in message
    assert mnist.SHA256_DECOMPRESSED["t10k-labels-idx1-ubyte"] in message
    assert "verify=False" in message and "SPARSE_KERAS_VERIFY_DATA=0" in message
    assert isinstance(info.value, ValueError)


def test_altered_mnist_file_loads_when_the_user_opts_out(altered_mnist, data_dir, monkeypatch):
    """Documented: verify=False (or SPARSE_KERAS_VERIFY_DATA=0) reads the file as it is."""
    _, official = mnist.load_arrays("test", data_dir / "mnist", download=False)
    _, labels = mnist.load_arrays("test", altered_mnist, download=False, verify=False)
    assert labels[0] == (official[0] + 1) % 10
    monkeypatch.setenv(download.VERIFY_ENV_VAR, "0")
    _, labels = mnist.load_arrays("test", altered_mnist, download=False)
    assert labels[0] == (official[0] + 1) % 10


def test_verification_is_cached_until_the_file_changes(tmp_path, data_dir, monkeypatch):
    copy = tmp_path / "t10k-labels-idx1-ubyte.gz"
    shutil.copy(data_dir / "mnist" / copy.name, copy)
    expected = mnist.SHA256[copy.name]
    download.verify_file(copy, expected)
    calls = []
    original = download.sha256_of
    monkeypatch.setattr(download, "sha256_of", lambda path: calls.append(path) or original(path))
    download.verify_file(copy, expected)
    assert calls == []  # the marker answered
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))
    download.verify_file(copy, expected)
    assert calls == [copy]  # a touched file is checked again
    # The marker lives in $KERAS_HOME, never beside the (possibly read-only) data.
    assert [p.name for p in tmp_path.iterdir()] == [copy.name]


def _altered_copy(source: pathlib.Path, target: pathlib.Path, altered: str) -> pathlib.Path:
    """`source`'s files linked into `target`, except `altered`, copied with one byte changed."""
    for path in source.rglob("*"):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            if path.relative_to(source).as_posix() == altered:
                data = bytearray(path.read_bytes())
                data[-1] ^= 1  # a sample's low bit: still a valid WAV file
                destination.write_bytes(bytes(data))
            else:
                destination.symlink_to(path)
    return target


@pytest.mark.parametrize(
    "dataset, folder, altered",
    [
        ("fsdd", "fsdd/recordings", "7_jackson_32.wav"),
        ("gsc12v2", "gsc_test_v0.02", "yes/022cd682_nohash_0.wav"),
    ],
)
def test_altered_audio_clip_is_refused(data_dir, tmp_path, monkeypatch, dataset, folder, altered):
    """One changed sample in one clip of the official set: a named error, then an opt-out."""
    monkeypatch.delenv(download.VERIFY_ENV_VAR, raising=False)
    source = data_dir / folder
    if not (source / altered).is_file():
        pytest.skip(f"{source / altered} not found")
    copy = _altered_copy(source, tmp_path / "copy", altered)
    module = fsdd if dataset == "fsdd" else gsc12v2
    pinned = fsdd.RECORDINGS_SHA256 if dataset == "fsdd" else gsc12v2.TEST_SET_TREE_SHA256
    with unchanged(copy), pytest.raises(download.DataIntegrityError) as info:
        module.list_clips("test", copy, download=False, check_files=False)
    message = str(info.value)
    assert f"{copy} does not hold the official files" in message and pinned in message
    assert "verify=False" in message and "SPARSE_KERAS_VERIFY_DATA=0" in message
    paths, _ = module.list_clips("test", copy, download=False, check_files=False, verify=False)
    assert paths  # the user's choice: read as they are
    # The official folder itself passes, and its marker then answers without reading.
    module.list_clips("test", source, download=False, check_files=False)
    calls = []
    original = download.sha256_of
    monkeypatch.setattr(download, "sha256_of", lambda path: calls.append(path) or original(path))
    module.list_clips("test", source, download=False, check_files=False)
    assert calls == []


def test_tree_digest_is_the_sha256sum_listing(tmp_path):
    """`tree_sha256` is the digest of `sha256sum`'s output over the names in byte order."""
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.wav").write_bytes(b"abc")
    (tmp_path / "a.wav").write_bytes(b"")
    listing = (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a.wav\n"
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  b/x.wav\n"
    )
    expected = hashlib.sha256(listing.encode()).hexdigest()
    assert download.tree_sha256(tmp_path, ["b/x.wav", "a.wav"]) == expected


BAD_MNIST_CALLS = [
    ({"split": "dev"}, ValueError, r"Unknown MNIST split 'dev'; expected one of \('train'"),
    ({"validation_size": -1}, ValueError, r"validation_size must be in \[0, 60000\), got -1"),
    ({"validation_size": 60000}, ValueError, r"validation_size must be in \[0, 60000\), got 60000"),
    ({"split": "validation"}, ValueError, "split='validation' needs validation_size > 0"),
    ({"verify": "yes"}, TypeError, "verify must be True, False or None, got 'yes'"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_MNIST_CALLS)
def test_mnist_load_arrays_refuses(data_dir, kwargs, error, message):
    arguments = {"split": "test", "data_dir": data_dir / "mnist", "download": False} | kwargs
    with pytest.raises(error, match=message):
        mnist.load_arrays(**arguments)


@pytest.mark.parametrize("download_flag", [False, True], ids=["no-download", "failed-download"])
def test_missing_mnist_folder_is_not_created(tmp_path, download_flag):
    missing = tmp_path / "no" / "such" / "mnist"
    with unchanged(tmp_path), pytest.raises(download.DataNotFoundError, match="t10k-images"):
        mnist.load_arrays(
            "test", missing, download=download_flag, base_urls=("file:///nonexistent/mirror/",)
        )
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is not an IDX file"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05ab", r"header says shape \(5,\) .* file has 10 bytes"),
        (b"GIF89a....", "is not an IDX file: magic bytes"),
    ],
)
def test_read_idx_refuses_garbage(tmp_path, content, message):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(content)
    with unchanged(tmp_path), pytest.raises(ValueError, match=message):
        mnist.read_idx(path)


# --------------------------------------------------------------------------- data: audio


def _bad_wavs(folder: pathlib.Path) -> dict[str, tuple[pathlib.Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    junk = folder / "junk.wav"
    junk.write_bytes(b"this is not audio at all, just some text" * 3)
    good = write_wav(folder / "good.wav", _tone(4000))
    truncated = folder / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:3000])
    no_samples = write_wav(folder / "no_samples.wav", np.zeros(0))
    eight_bit = folder / "eight_bit.wav"
    with wave.open(str(eight_bit), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(1)
        f.setframerate(16000)
        f.writeframes(bytes(100))
    return {
        "empty": (empty, "is empty"),
        "junk": (junk, "is not a RIFF/WAVE file"),
        "truncated": (truncated, "is truncated: its header declares 8000 bytes"),
        "no_samples": (no_samples, "contains no audio samples"),
        "eight_bit": (eight_bit, "has 8-bit samples; expected 16-bit integer PCM"),
    }


@pytest.mark.parametrize("case", ["empty", "junk", "truncated", "no_samples", "eight_bit"])
def test_read_wav_info_names_the_bad_file(tmp_path, case):
    path, message = _bad_wavs(tmp_path / "wavs")[case]
    with unchanged(tmp_path), pytest.raises(ValueError, match=message) as info:
        wav.read_wav_info(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", r"(?s)has.{1,6}0.{1,6}bytes; a WAV file has at least 44"),
        ("junk", "is not a RIFF/WAVE file"),
        ("no_samples", "contains no audio samples"),
    ],
)
def test_decode_wav_names_the_bad_file_in_the_graph(tmp_path, case, message):
    path, _ = _bad_wavs(tmp_path / "wavs")[case]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as info:
        wav.decode_wav(tf.constant(str(path)), 16000)
    assert path.name in str(info.value)


def _tiny_gsc_tree(root: pathlib.Path) -> pathlib.Path:
    for word in gsc.DIGITS:
        write_wav(root / word / "aaaa0000_nohash_0.wav", _tone())
    (root / "validation_list.txt").write_text("one/aaaa0000_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("two/aaaa0000_nohash_0.wav\n")
    return root


def test_gsc_empty_clip_without_header_checks_names_the_file(tmp_path):
    tree = _tiny_gsc_tree(tmp_path / "tree")
    bad = tree / "five" / "aaaa0000_nohash_0.wav"
    bad.write_bytes(b"")
    dataset = gsc.load("train", 16, tree, check_files=False, shuffle=False)
    with (
        unchanged(tmp_path),
        pytest.raises(
            tf.errors.InvalidArgumentError, match=r"\[0\] \[bytes; a WAV file has at least 44"
        ) as info,
    ):
        list(dataset)
    assert "five/aaaa0000_nohash_0.wav" in str(info.value)


def test_gsc_missing_explicit_folder_is_neither_created_nor_downloaded(tmp_path):
    with unchanged(tmp_path), pytest.raises(download.DataNotFoundError):
        gsc.list_clips("test", tmp_path / "typo" / "gsc", download=True)
    assert not (tmp_path / "typo").exists()


def test_fsdd_missing_folder_is_not_created(tmp_path):
    with unchanged(tmp_path), pytest.raises(download.DataNotFoundError):
        fsdd.list_clips("test", tmp_path / "typo" / "fsdd", download=False)
    assert not (tmp_path / "typo").exists()


def test_failed_fetch_removes_the_folders_it_created(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    with unchanged(tmp_path), pytest.raises(download.DataNotFoundError, match="Could not download"):
        download.fetch("file:///nonexistent/file.bin", target, None, progress=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- export


def _tiny_network(input_shape, classes, name):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(2, 5),
            KWinners(20),
            keras.layers.Flatten(),
            keras.layers.Dense(classes),
        ],
        name=name,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny MNIST and a tiny FSDD network, exported and reloaded."""
    root = tmp_path_factory.mktemp("served")
    mnist_model = _tiny_network((28, 28, 1), 10, "mnist_tiny")
    fsdd_model = _tiny_network((32, 32, 1), 12, "fsdd_tiny")
    with (
        pytest.warns(UserWarning)
        if not export.saved_model._serving_api_available()
        else contextlib.nullcontext()
    ):
        mnist_dir = export.export_for_serving(mnist_model, root)
        fsdd_dir = export.export_for_serving(fsdd_model, root, dataset="fsdd")
    return {
        "root": root,
        "mnist_model": mnist_model,
        "fsdd_model": fsdd_model,
        "mnist_dir": mnist_dir,
        "mnist": tf.saved_model.load(str(mnist_dir)).signatures,
        "fsdd": tf.saved_model.load(str(fsdd_dir)).signatures,
    }


BAD_REQUESTS = [
    (
        "mnist",
        "serving_default",
        np.zeros((2, 28), "uint8"),
        r"uint8 of shape \[batch, 28, 28\]; got a tensor of shape\] \[2 28\]",
    ),
    (
        "mnist",
        "serving_default",
        np.zeros((2, 28, 28, 1), "uint8"),
        r"got a tensor of shape\] \[2 28 28 1\]",
    ),
    ("mnist", "serving_default", np.zeros((28,), "uint8"), r"got a tensor of shape\] \[28\]"),
    (
        "mnist",
        "serving_default",
        np.zeros((1, 28, 27), "uint8"),
        r"\[batch, 28, 28\]; got shape\] \[1 28 27\]",
    ),
    (
        "mnist",
        "serving_default",
        np.zeros((0, 28, 28), "uint8"),
        r"with at least one example; got an empty batch",
    ),
    (
        "mnist",
        "serving_float",
        np.full((1, 28, 28), NAN, "float32"),
        "serving_float: input images must hold finite values",
    ),
    (
        "mnist",
        "serving_float",
        np.full((1, 28, 28), INF, "float32"),
        "must hold finite values .* Inf",
    ),
    (
        "mnist",
        "serving_float",
        np.full((1, 28, 28), 255.0, "float32"),
        r"must hold values in \[0, 1\]; got values from\] \[255\]",
    ),
    (
        "mnist",
        "serving_float",
        np.full((1, 28, 28), -0.5, "float32"),
        r"must hold values in \[0, 1\]",
    ),
    (
        "mnist",
        "serving_features",
        np.full((1, 28, 28, 1), NAN, "float32"),
        "serving_features: input features must hold finite",
    ),
    (
        "mnist",
        "serving_features",
        np.zeros((1, 28, 28), "float32"),
        r"\[batch, 28, 28, 1\]; got a tensor of shape\] \[1 28 28\]",
    ),
    (
        "fsdd",
        "serving_default",
        np.zeros((1, 0), "float32"),
        r"\[batch, samples\] with samples >= 1; got shape\] \[1 0\]",
    ),
    ("fsdd", "serving_default", np.zeros((0, 100), "float32"), "got an empty batch of shape"),
    (
        "fsdd",
        "serving_default",
        np.array([[0.0, NAN, 0.1]], "float32"),
        "input waveforms must hold finite values .* NaN",
    ),
    (
        "fsdd",
        "serving_default",
        np.array([[0.0, INF, 0.1]], "float32"),
        "input waveforms must hold finite values .* Inf",
    ),
    ("fsdd", "serving_default", np.zeros((100,), "float32"), r"got a tensor of shape\] \[100\]"),
    (
        "fsdd",
        "serving_default",
        np.zeros((1, 100, 1), "float32"),
        r"got a tensor of shape\] \[1 100 1\]",
    ),
    (
        "fsdd",
        "serving_pcm16",
        np.zeros((1, 0), "int16"),
        r"int16 of shape \[batch, samples\] with samples >= 1",
    ),
    ("fsdd", "serving_pcm16", np.zeros((2, 3, 4), "int16"), r"got a tensor of shape\] \[2 3 4\]"),
    (
        "fsdd",
        "serving_8khz",
        np.array([[0.0, -INF]], "float32"),
        "serving_8khz: input waveforms must hold finite",
    ),
    (
        "fsdd",
        "serving_8khz",
        np.zeros((1, 0), "float32"),
        r"serving_8khz: .*samples >= 1; got shape\] \[1 0\]",
    ),
    (
        "fsdd",
        "serving_features",
        np.zeros((1, 32, 31, 1), "float32"),
        r"\[batch, 32, 32, 1\]; got shape\] \[1 32 31 1\]",
    ),
]


@pytest.mark.parametrize(
    "dataset, signature, request_array, message",
    BAD_REQUESTS,
    ids=[f"{d}-{s}-{i}" for i, (d, s, _, _) in enumerate(BAD_REQUESTS)],
)
def test_served_signature_refuses_bad_request(served, dataset, signature, request_array, message):
    function = served[dataset][signature]
    (name,) = function.structured_input_signature[1]
    with unchanged(served["root"]), pytest.raises(tf.errors.InvalidArgumentError, match=message):
        function(**{name: tf.constant(request_array)})


def test_served_signature_refuses_wrong_dtype(served):
    with pytest.raises(
        (TypeError, ValueError, tf.errors.InvalidArgumentError), match="uint8|float"
    ):
        served["mnist"]["serving_default"](images=tf.zeros((1, 28, 28), tf.float32))


def test_served_8khz_crops_before_resampling_with_the_same_answer(served):
    """Documented: a long 8 kHz clip is cropped first, and gives the full clip's answer."""
    rng = np.random.default_rng(0)
    clip = rng.uniform(-0.5, 0.5, (1, 3 * 8000 + 1)).astype("float32")
    result = served["fsdd"]["serving_8khz"](waveforms=tf.constant(clip))["probabilities"]
    whole = audio.resample_poly(clip[0], 2, 1)[None]
    features = fsdd.DATASET.preprocess(whole)  # centred in the 1-s window, then log-mel
    expected = tf.nn.softmax(served["fsdd_model"](features, training=False))
    np.testing.assert_allclose(result.numpy(), expected.numpy(), atol=1e-6)


def test_one_sample_waveform_is_answered(served):
    """Documented: any clip of >= 1 sample is legal; it is zero-padded to 1 s."""
    out = served["fsdd"]["serving_default"](waveforms=tf.constant([[0.25]]))
    assert out["probabilities"].shape == (1, 12)


def test_wrong_rank_request_does_not_abort_a_fresh_server_process(served, tmp_path):
    """`saved_model_cli run` (a TF1 session, as TF Serving feeds it) used to abort (134)."""
    np.save(tmp_path / "rank2.npy", np.zeros((2, 28), np.uint8))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow.python.tools.saved_model_cli",
            "run",
            "--dir",
            str(served["mnist_dir"]),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={tmp_path / 'rank2.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "must be uint8 of shape [batch, 28, 28]; got a tensor of shape" in result.stderr
    assert not (tmp_path / "out").exists()


def _bad_exports(served, tmp_path):
    model = served["mnist_model"]
    (tmp_path / "a_file").write_text("x")
    unbuilt = keras.Sequential([keras.layers.Dense(10)], name="unbuilt")
    return {
        "not-a-model": (("not a model", tmp_path), {}, TypeError, "expects a keras.Model, got str"),
        "unbuilt": ((unbuilt, tmp_path), {}, ValueError, "has not been built"),
        "version-0": (
            (model, tmp_path),
            {"version": 0},
            ValueError,
            "version must be a positive integer .* got 0",
        ),
        "version-bool": ((model, tmp_path), {"version": True}, ValueError, "got True"),
        "version-float": ((model, tmp_path), {"version": 1.5}, ValueError, "got 1.5"),
        "model-name": (
            (model, tmp_path),
            {"model_name": "../x"},
            ValueError,
            r"Invalid model name '\.\./x'",
        ),
        "dataset": ((model, tmp_path), {"dataset": "cifar"}, ValueError, "Unknown dataset 'cifar'"),
        "dataset-shape": (
            (model, tmp_path),
            {"dataset": "gsc"},
            ValueError,
            r"takes features of shape \(28, 28, 1\)",
        ),
        "class-count": (
            (model, tmp_path),
            {"class_names": ["a", "b"]},
            ValueError,
            "2 class names .* 10 outputs",
        ),
        "class-type": (
            (model, tmp_path),
            {"class_names": list(range(10))},
            TypeError,
            "class_names must be strings",
        ),
        "dir-is-file": (
            (model, tmp_path / "a_file"),
            {},
            ValueError,
            r"a_file is a file, not a folder",
        ),
        "under-a-file": (
            (model, tmp_path / "a_file" / "x"),
            {},
            ValueError,
            r"a_file is a file, not a folder",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not-a-model",
        "unbuilt",
        "version-0",
        "version-bool",
        "version-float",
        "model-name",
        "dataset",
        "dataset-shape",
        "class-count",
        "class-type",
        "dir-is-file",
        "under-a-file",
    ],
)
def test_export_for_serving_refuses_before_writing(served, tmp_path, case):
    args, kwargs, error, message = _bad_exports(served, tmp_path)[case]
    with unchanged(tmp_path), pytest.raises(error, match=message):
        export.export_for_serving(*args, **kwargs)


def test_export_refuses_an_existing_version(served):
    with unchanged(served["root"]), pytest.raises(FileExistsError, match="already exists"):
        export.export_for_serving(served["mnist_model"], served["root"], version=1)


# --------------------------------------------------------------------------- training runner


def _train(tmp_path, *argv):
    from training import train

    return train.main(
        ["--recipe", "mnist_sparse_cnn2", "--runs-dir", str(tmp_path / "runs"), *argv]
    )


BAD_RUNNER_ARGS = [
    (["--epochs", "0", "--results-dir", "R"], "--epochs: must be a positive integer, got 0"),
    (["--epochs", "-1", "--results-dir", "R"], "--epochs: must be a positive integer, got -1"),
    (["--epochs", "abc", "--results-dir", "R"], "--epochs: invalid"),
    (["--seeds", "-1"], "--seeds: must be a positive integer, got -1"),
    (["--seeds", "0"], "--seeds: must be a positive integer, got 0"),
    (["--first-seed", "-1"], "--first-seed: must be an integer >= 0, got -1"),
    (
        ["--max-train-examples", "-5", "--results-dir", "R"],
        "--max-train-examples: must be a positive integer, got -5",
    ),
    (
        ["--max-test-examples", "0", "--results-dir", "R"],
        "--max-test-examples: must be a positive integer, got 0",
    ),
    (["--epochs", "1"], "give --results-dir too"),
    (["--max-train-examples", "10"], "give --results-dir too"),
    (["--skip-evaluation", "--evaluate-only"], "exclude each other"),
    (["--strategy", "tpu"], "--strategy: invalid choice: 'tpu'"),
]


@pytest.mark.parametrize("argv, message", BAD_RUNNER_ARGS)
def test_runner_refuses_bad_arguments(tmp_path, capsys, argv, message):
    argv = [str(tmp_path / "results") if a == "R" else a for a in argv]
    with unchanged(tmp_path), pytest.raises(SystemExit) as info:
        _train(tmp_path, *argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_runner_refuses_unknown_recipe(tmp_path, capsys):
    from training import train

    with unchanged(tmp_path), pytest.raises(SystemExit) as info:
        train.main(["--recipe", "nope", "--runs-dir", str(tmp_path / "runs")])
    assert info.value.code == 2 and "nope" in capsys.readouterr().err


CORRUPT_STATES = [
    ('{"epochs_done": 3, "hist', "is unreadable"),
    ('{"epochs_done": "x"}', "is not a run state"),
    ('["not", "a", "dict"]', "is not a run state"),
    (
        '{"epochs_done": 2, "history": [{}, {}], "checkpoint": "gone.keras"}',
        "names checkpoint 'gone.keras', which is missing",
    ),
    (
        '{"epochs_done": 2, "history": [{}], "checkpoint": "c.keras"}',
        "history whose length differs",
    ),
]


@pytest.mark.parametrize("text, message", CORRUPT_STATES)
def test_runner_refuses_corrupt_state_and_changes_nothing(tmp_path, text, message):
    from training import train

    seed_dir = tmp_path / "runs" / "mnist_sparse_cnn2" / "seed0"
    seed_dir.mkdir(parents=True)
    (seed_dir / "state.json").write_text(text)
    (seed_dir / "c.keras").write_bytes(b"a checkpoint")
    results = tmp_path / "results"
    results.mkdir()
    (results / "seed0.json").write_text(json.dumps({"accuracy": 0.99}))
    with unchanged(tmp_path), pytest.raises(train.CorruptRunStateError, match=message) as info:
        _train(tmp_path, "--epochs", "1", "--results-dir", str(results))
    assert "--restart" in str(info.value) and str(seed_dir) in str(info.value)


def test_runner_cli_reports_corrupt_state_in_one_line(tmp_path, capsys):
    from training import train

    seed_dir = tmp_path / "runs" / "mnist_sparse_cnn2" / "seed0"
    seed_dir.mkdir(parents=True)
    (seed_dir / "state.json").write_text("{")
    argv = ["--recipe", "mnist_sparse_cnn2", "--runs-dir", str(tmp_path / "runs")]
    with unchanged(tmp_path):
        code = train.cli([*argv, "--epochs", "1", "--results-dir", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: Run state") and err.count("\n") == 1


# --------------------------------------------------------------------------- zoo
# (Hub messages, revisions and HF_HUB_OFFLINE belong to the zoo/hub work; these cases
# hold without the network.)


@pytest.mark.parametrize("name", ["nope", "../etc/passwd", 3])
def test_zoo_refuses_unknown_names(name):
    from sparse_keras import zoo

    with pytest.raises(ValueError, match=r"Unknown zoo model .*Available: mnist_dense_cnn1"):
        zoo.info(name)
    with pytest.raises(ValueError, match=r"Unknown zoo model"):
        zoo.load(name)


# --------------------------------------------------------------------------- command line


def _cli_cases(tmp_path: pathlib.Path) -> dict[str, tuple[list[str], str]]:
    (tmp_path / "a_file").write_text("x")
    return {
        "json-missing-folder": (
            ["evaluate", "mnist_sparse_cnn2", "--json", str(tmp_path / "missing" / "r.json")],
            "--json path .*missing.* does not exist",
        ),
        "plot-under-a-file": (
            ["evaluate", "mnist_sparse_cnn2", "--plot", str(tmp_path / "a_file" / "p.png")],
            "--plot path .*a_file.* is not a folder",
        ),
        "export-into-a-file": (
            ["export", "mnist_sparse_cnn2", str(tmp_path / "a_file")],
            "a_file is a file, not a folder",
        ),
    }


@pytest.mark.parametrize("case", ["json-missing-folder", "plot-under-a-file", "export-into-a-file"])
def test_cli_refuses_bad_output_paths_in_one_line_before_any_work(tmp_path, capsys, case):
    from sparse_keras import cli

    argv, message = _cli_cases(tmp_path)[case]
    with unchanged(tmp_path):
        code = cli.main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert code == 1
    assert len(errors) == 1 and "Traceback" not in err, err  # (a Hub warning may precede it)
    assert re.search(message, errors[0]), err
