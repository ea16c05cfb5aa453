"""Scoring, reports, figures and the `evaluate` command (sparse_keras.robustness).

The noise protocols themselves are tested in tests/test_noise.py."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from sparse_keras import KWinners, data
from sparse_keras.cli import evaluate as evaluate_cli
from sparse_keras.cli import main
from sparse_keras.robustness import (
    DEFAULT_NOISE_LEVELS,
    NoiseReport,
    evaluate,
    noise_examples_figure,
    plot_reports,
)

MNIST_THREES = 1010  # test labels equal to 3


def constant_model(label, classes=10):
    """A callable 'model' that answers `label` for every input."""

    def predict(features):
        return tf.one_hot(tf.fill([tf.shape(features)[0]], label), classes)

    return predict


def identity_noise(inputs, eta, seed):
    return inputs


@pytest.fixture
def mnist_dir(data_dir):
    return data_dir / "mnist"


# --------------------------------------------------------------------------- scoring


def test_always_three_on_full_mnist_scores_its_share_of_threes(mnist_dir):
    # Identity noise: the answer cannot depend on it, and the full set stays cheap.
    report = evaluate(
        constant_model(3), "mnist", data_dir=mnist_dir, noise_fn=identity_noise, progress=False
    )
    assert report.test_size == 10000
    assert report.noise_levels == DEFAULT_NOISE_LEVELS and len(DEFAULT_NOISE_LEVELS) == 11
    assert report.correct == (MNIST_THREES,) * 11
    assert report.noise_score == 11 * MNIST_THREES
    assert report.max_score == 110000


def test_always_three_with_the_paper_noise_on_a_subset(mnist_dir):
    from sparse_keras.data import mnist

    _, labels = mnist.load_arrays("test", mnist_dir)
    threes = int(np.sum(labels[:500] == 3))
    report = evaluate(
        constant_model(3), "mnist", (0.0, 0.5), data_dir=mnist_dir, max_examples=500, progress=False
    )
    assert report.correct == (threes, threes) and report.max_score == 1000


def test_mnist_model_sees_noisy_normalised_images(mnist_dir):
    seen = {}

    def recorder(features):
        seen.setdefault("features", []).append(features.numpy())
        return tf.zeros([tf.shape(features)[0], 10])

    evaluate(recorder, "mnist", (0.5,), data_dir=mnist_dir, max_examples=3, progress=False)
    features = seen["features"][0]
    assert features.shape == (3, 28, 28, 1)
    # Noisy pixels, normalised: (0.7469 - 0.1307) / 0.3081 = 2.
    per_image = np.sum(np.isclose(features, 2.0, atol=1e-5).reshape(3, -1), axis=1)
    assert np.all(per_image >= int(784 * 0.5))


def _label_in_column_zero(size=300, classes=4):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, size).astype(np.int32)
    inputs = rng.normal(size=(size, 5)).astype(np.float32)
    inputs[:, 0] = labels
    return tf.data.Dataset.from_tensor_slices((inputs, labels))


def _noise_except_column_zero(inputs, eta, seed):
    noise = tf.random.stateless_normal(tf.shape(inputs), seed)
    return tf.concat([inputs[:, :1], inputs[:, 1:] + eta * noise[:, 1:]], axis=1)


def _oracle(inputs):
    return tf.one_hot(tf.cast(inputs[:, 0], tf.int32), 4)


@pytest.mark.parametrize("batched", [False, True])
def test_oracle_on_a_custom_dataset_gets_the_max(batched):
    dataset = _label_in_column_zero()
    if batched:
        dataset = dataset.batch(7)  # evaluate unbatches datasets of label batches
    report = evaluate(
        _oracle,
        dataset,
        (0.0, 0.25, 0.5),
        noise_fn=_noise_except_column_zero,
        batch_size=64,
        progress=False,
        model_name="oracle",
    )
    assert report.test_size == 300 and report.max_score == 3 * 300
    assert report.noise_score == report.max_score
    assert report.dataset == "custom" and report.model_name == "oracle"


def test_same_seed_same_score_whatever_the_batch_size(mnist_dir):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    levels = (0.0, 0.3, 0.5)
    runs = [
        evaluate(
            model,
            "mnist",
            levels,
            seed=4,
            batch_size=batch,
            data_dir=mnist_dir,
            max_examples=200,
            progress=False,
        )
        for batch in (200, 64, 200)
    ]
    assert runs[0].correct == runs[1].correct == runs[2].correct


def test_fake_gsc_dataset_noise_before_features(monkeypatch):
    # A stand-in for the GSC descriptor: 20 clips in memory, "features" that show the
    # waveform's first 1,024 samples.
    clips = np.random.default_rng(0).uniform(-0.5, 0.5, [20, 16000]).astype(np.float32)
    labels = (np.arange(20) % 12).astype(np.int32)
    fake = dataclasses.replace(
        data.dataset("gsc"),
        class_names=tuple(f"class{i}" for i in range(12)),
        clean_test_set=lambda data_dir=None, max_examples=None: tf.data.Dataset.from_tensor_slices(
            (clips, labels)
        ),
        features=lambda waveforms: tf.reshape(waveforms[:, :1024], [-1, 32, 32, 1]),
    )
    monkeypatch.setitem(data.DATASETS, "gsc", fake)
    seen = []

    def model(features):
        seen.append(features.numpy())
        return tf.one_hot(tf.fill([tf.shape(features)[0]], 1), 12)

    report = evaluate(model, "gsc", (0.0, 0.5), batch_size=8, progress=False)
    assert report.dataset == "gsc" and report.test_size == 20 and report.max_score == 40
    assert report.correct == (2, 2)  # labels 1 and 13 % 12
    clean, noisy = np.concatenate(seen[:3]), np.concatenate(seen[3:])
    np.testing.assert_array_equal(clean.reshape(20, -1), clips[:, :1024])
    assert not np.allclose(noisy.reshape(20, -1), clips[:, :1024])
    assert np.abs(noisy).max() <= 0.5 * 0.5 + 0.5  # (1 - eta) * 0.5 + eta * 1
    with pytest.raises(ValueError, match="outputs 10 classes but gsc has 12 classes"):
        evaluate(constant_model(0, classes=10), "gsc", (0.0,), progress=False)


def test_real_gsc_sample(data_dir):
    # The 300-clip sample holds a real v0.01 test split (22 digit clips): any failure
    # to read it is a failure, not a reason to skip.
    report = evaluate(
        constant_model(2, 12),
        "gsc",
        (0.0, 0.5),
        data_dir=data_dir / "gsc" / "sample_v0.01",
        max_examples=8,
        progress=False,
    )
    assert report.test_size == 8 and report.max_score == 16
    # A model that always answers class 2 is right on the same clips at every level.
    assert report.correct[0] == report.correct[1] and 0 <= report.correct[0] <= 8


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("levels", [(0.0, 1.5), (-0.1,), (float("nan"),)])
def test_levels_outside_unit_interval_are_rejected(levels):
    with pytest.raises(ValueError, match=r"Noise level must be in \[0, 1\]"):
        evaluate(constant_model(3), "mnist", levels, progress=False)


def test_no_levels_is_rejected():
    with pytest.raises(ValueError, match="noise_levels is empty"):
        evaluate(constant_model(3), "mnist", (), progress=False)


def test_unknown_dataset_name_is_rejected():
    with pytest.raises(
        ValueError, match=r"Unknown dataset 'cifar10'; expected one of \('mnist', 'gsc'"
    ):
        evaluate(constant_model(3), "cifar10", progress=False)


def test_empty_dataset_is_rejected():
    empty = _label_in_column_zero().take(0)
    with pytest.raises(ValueError, match="test dataset is empty"):
        evaluate(_oracle, empty, noise_fn=_noise_except_column_zero, progress=False)


def test_custom_dataset_needs_a_noise_function():
    with pytest.raises(ValueError, match="needs a noise_fn"):
        evaluate(_oracle, _label_in_column_zero(), progress=False)


def test_wrong_output_width_is_rejected(mnist_dir):
    with pytest.raises(ValueError, match="The model outputs 7 classes but mnist has 10 classes"):
        evaluate(
            constant_model(3, classes=7),
            "mnist",
            (0.0,),
            data_dir=mnist_dir,
            max_examples=10,
            progress=False,
        )
    with pytest.raises(ValueError, match=r"must output \[batch, classes\]"):
        evaluate(
            lambda x: tf.zeros([tf.shape(x)[0]]),
            "mnist",
            (0.0,),
            data_dir=mnist_dir,
            max_examples=10,
            progress=False,
        )
    with pytest.raises(
        ValueError, match="Label 3 is out of range for a model that outputs 3 classes"
    ):
        dataset = _label_in_column_zero()
        evaluate(
            lambda x: tf.zeros([tf.shape(x)[0], 3]),
            dataset,
            noise_fn=_noise_except_column_zero,
            progress=False,
        )


# --------------------------------------------------------------------------- reports and plots


@pytest.fixture
def report():
    return NoiseReport(
        "mnist_sparse_cnn2",
        "mnist",
        DEFAULT_NOISE_LEVELS,
        tuple(range(9900, 8800, -100)),
        10000,
        seed=0,
    )


def test_report_json_round_trip(report, tmp_path):
    path = tmp_path / "report.json"
    text = report.to_json(path)
    assert json.loads(text)["noise_score"] == report.noise_score == sum(range(9900, 8800, -100))
    assert json.loads(path.read_text())["max_score"] == 110000
    assert NoiseReport.from_json(path) == report
    assert NoiseReport.from_json(text) == report
    tampered = json.loads(text) | {"noise_score": 1}
    with pytest.raises(ValueError, match="counts sum to"):
        NoiseReport.from_dict(tampered)


def test_report_markdown_holds_the_curve_and_score(report):
    markdown = report.to_markdown()
    assert f"{report.noise_score:,} / 110,000" in markdown.replace("*", "")
    assert "| 0.50 | 89.00% | 8,900 |" in markdown


def test_report_plot_and_fig5b(report):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.axes import Axes

    ax = report.plot()
    assert isinstance(ax, Axes) and len(ax.lines) == 1
    other = NoiseReport(
        "mnist_dense_cnn2", "mnist", DEFAULT_NOISE_LEVELS, (9000,) * 11, 10000, seed=0
    )
    ax = plot_reports([report, other])
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 90.0)


def test_noise_examples_figure_grid():
    images = np.zeros([3, 28, 28], np.uint8)
    fig = noise_examples_figure(images, levels=(0.0, 0.25, 0.5), seed=0)
    assert len(fig.axes) == 9
    shown = fig.axes[2].images[0].get_array()  # first image, eta = 0.5
    assert int(np.sum(np.asarray(shown) != 0)) == 392


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def evaluate_cli_only(monkeypatch):
    """`main` with only this sub-command, so other sub-commands' state cannot break it."""
    monkeypatch.setattr("sparse_keras.cli.COMMANDS", ("evaluate",))


def test_cli_evaluates_a_saved_model(mnist_dir, tmp_path, capsys, evaluate_cli_only):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(32),
            KWinners(8),
            keras.layers.Dense(10),
        ],
        name="tiny",
    )
    path = tmp_path / "tiny.keras"
    model.save(path)
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    argv = [
        "evaluate",
        str(path),
        "--dataset",
        "mnist",
        "--levels",
        "0,0.5",
        "--json",
        str(out_json),
    ]
    argv += [
        "--plot",
        str(out_png),
        "--data-dir",
        str(mnist_dir),
        "--no-progress",
        "--max-examples",
        "2000",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "noise level" in printed and "accuracy" in printed and "correct" in printed
    saved = json.loads(out_json.read_text())
    assert saved["noise_levels"] == [0.0, 0.5] and saved["test_size"] == 2000
    assert f"noise score: {saved['noise_score']:,} / 4,000" in printed
    assert saved["model_name"] == "tiny" and out_png.stat().st_size > 0


def test_cli_reports_bad_models_and_levels(tmp_path, capsys, evaluate_cli_only):
    assert main(["evaluate", str(tmp_path / "missing.keras")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sparse-keras evaluate: error: Model file") and "not found" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["evaluate", "mnist.keras", "--levels", "0,x"]) == 1
    assert "--levels must be comma-separated numbers" in capsys.readouterr().err
    assert main(["evaluate", "no_such_zoo_model", "--levels", "0"]) == 1
    assert "no_such_zoo_model" in capsys.readouterr().err


def test_default_dataset_from_file_names():
    assert evaluate_cli.default_dataset("gsc_sparse_cnn2", None) == "gsc"
    assert evaluate_cli.default_dataset("gsc12v2_sparse_cnn2", None) == "gsc12v2"
    assert evaluate_cli.default_dataset("fsdd_dense_cnn2", None) == "fsdd"
    assert evaluate_cli.default_dataset("my_model", None) == "mnist"
    assert evaluate_cli.default_dataset("my_model", "fsdd") == "fsdd"
