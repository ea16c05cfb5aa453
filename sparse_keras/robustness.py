"""Noise robustness: the paper's noise protocols, noise curves and the noise score.

The paper measures robustness by corrupting the *raw* test inputs at noise levels
`eta` in `{0.00, 0.05, ..., 0.50}` and counting correct answers (Fig. 5, Tables 1-2):

- MNIST (`add_pixel_noise`): in `[0, 1]` pixel space, before normalisation, set
  `int(784 * eta)` distinct random pixels of every image to `0.1307 + 2 * 0.3081`.
- Speech (`blend_white_noise`): `(1 - eta) * A + eta * w`, `w ~ U(-1, 1)` per sample,
  on the padded waveform before the log-mel features.

The *noise score* is the number of correct answers summed over all levels (MNIST: at
most 11 levels x 10,000 images = 110,000). `evaluate` runs the whole protocol and
returns a `NoiseReport`; `sparse-keras evaluate` (`sparse_keras.cli.evaluate`) is its
command-line face.

Noise is drawn with stateless random ops from `(seed, noise level, example index)`,
so a score is reproducible: the same seed gives the same noise whatever the batch
size or the other levels evaluated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

# The paper's levels, 0.00 to 0.50 in steps of 0.05 (rounded so that they print and
# compare as written rather than as 0.15000000000000002).
DEFAULT_NOISE_LEVELS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))
# mean + 2 std of the MNIST training pixels, in [0, 1] space (SPEC section 4).
PIXEL_NOISE_VALUE = 0.1307 + 2 * 0.3081
# Datasets `evaluate` can load by name. Audio datasets name a module offering
# `load(split, batch_size=None, data_dir=None, return_waveforms=True)`, `CLASS_NAMES`
# and `log_mel` (or use `sparse_keras.data.audio.log_mel`).
_AUDIO_MODULES = {
    "gsc": "sparse_keras.data.gsc",
    "gsc12v2": "sparse_keras.data.gsc12v2",
    "fsdd": "sparse_keras.data.fsdd",
}
DATASETS = ("mnist", *_AUDIO_MODULES)
# How many examples the per-example noise draws run side by side.
_PARALLEL_ROWS = 128
# Guards int(784 * eta) against float error just below a whole number (0.1 + 0.15).
_COUNT_EPSILON = 1e-9

NoiseFn = Callable[..., tf.Tensor]


# --------------------------------------------------------------------------- noise


def _seed_pair(seed: int | Sequence[int] | tf.Tensor) -> tf.Tensor:
    """A stateless seed as an int64 `[2]` tensor (an int `s` becomes `[s, 0]`)."""
    if isinstance(seed, int | np.integer):
        return tf.constant([int(seed), 0], tf.int64)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank != 1 or (seed.shape[0] is not None and seed.shape[0] != 2):
        raise ValueError(
            f"seed must be an int or a shape-[2] integer tensor, got shape {seed.shape}."
        )
    return seed


def _check_level(eta: float) -> float:
    try:
        eta = float(eta)
    except TypeError as err:
        raise TypeError(f"The noise level must be a Python number, got {eta!r}.") from err
    if not 0.0 <= eta <= 1.0:  # also rejects NaN
        raise ValueError(f"Noise level must be in [0, 1], got {eta!r}.")
    return eta


def _example_uniform(
    batch_size: tf.Tensor,
    elements: int,
    seed: int | Sequence[int] | tf.Tensor,
    example_ids: tf.Tensor | None,
    minval: float = 0.0,
    maxval: float = 1.0,
) -> tf.Tensor:
    """Uniform draws `[batch, elements]` whose row `i` depends only on `(seed, example_ids[i])`.

    Row `i` is block `example_ids[i]` of one long Philox stream keyed by `seed`: the
    counter-based generator can start anywhere in the stream, so a batch of consecutive
    ids is a single vectorised draw, and any other batch a draw per row. Either way an
    example's noise does not depend on how the data was batched.
    """
    # Philox emits 4 numbers per counter step: give every row whole steps.
    steps = -(-elements // 4)
    key = tf.bitcast(
        tf.random.stateless_uniform(
            [1], _seed_pair(seed), minval=None, maxval=None, dtype=tf.int64
        ),
        tf.uint64,
    )

    def draw(shape, first_row):
        counter = tf.bitcast(
            tf.stack([tf.cast(first_row, tf.int64) * steps, tf.constant(0, tf.int64)]), tf.uint64
        )
        return tf.raw_ops.StatelessRandomUniformV2(
            shape=shape,
            key=key,
            counter=counter,
            alg=tf.random.Algorithm.PHILOX.value,
            dtype=tf.float32,
        )

    if example_ids is None:
        draws = draw(tf.stack([batch_size, 4 * steps]), 0)
    else:
        ids = tf.reshape(tf.cast(example_ids, tf.int64), [-1])
        count = tf.size(ids, out_type=tf.int64)
        first = tf.concat([ids, tf.zeros([1], tf.int64)], axis=0)[0]
        consecutive = tf.reduce_all(tf.equal(ids, first + tf.range(count)))
        draws = tf.cond(
            consecutive,
            lambda: draw(tf.stack([count, 4 * steps]), first),
            lambda: tf.map_fn(
                lambda row: draw([4 * steps], row),
                ids,
                fn_output_signature=tf.TensorSpec([4 * steps], tf.float32),
                parallel_iterations=_PARALLEL_ROWS,
            ),
        )
    draws = draws[:, :elements]
    if (minval, maxval) != (0.0, 1.0):
        draws = minval + (maxval - minval) * draws
    return draws


def _per_example_size(tensor: tf.Tensor, what: str) -> int:
    if tensor.shape.rank is None or tensor.shape.rank < 2:
        raise ValueError(
            f"{what} must be a batch [batch, ...] of rank >= 2, got shape {tensor.shape}."
        )
    size = tensor.shape[1:].num_elements()
    if size is None:
        raise ValueError(f"{what} need a known shape after the batch axis, got {tensor.shape}.")
    return size


def add_pixel_noise(
    images: tf.Tensor,
    eta: float,
    seed: int | Sequence[int] | tf.Tensor = 0,
    example_ids: tf.Tensor | None = None,
    value: float = PIXEL_NOISE_VALUE,
) -> tf.Tensor:
    """The paper's MNIST noise: sets `int(784 * eta)` distinct random pixels to 0.7469.

    Every image gets its own random positions. Images are in `[0, 1]` pixel space (the
    noise is added before normalisation, as in the paper); the noise value is the
    training mean plus two standard deviations, `0.1307 + 2 * 0.3081 = 0.7469`.

    The positions of image `i` depend only on `seed`, `eta`'s pixel count and
    `example_ids[i]` (default: its position in the batch), so the same image gets the
    same noise however the data is batched. The function is made of TF ops and can run
    inside `tf.data.Dataset.map`.

    Args:
        images: Float images in `[0, 1]`, `[batch, 28, 28]` or `[batch, 28, 28, 1]`
            (any `[batch, ...]`: pixels are all values of an example).
        eta: Noise level in `[0, 1]`, a Python number: the fraction of pixels set.
        seed: An int or a shape-`[2]` integer tensor (stateless seed).
        example_ids: Optional int `[batch]`: a stable index per image (e.g. its index in
            the test set), to make its noise independent of batching.
        value: The value noisy pixels are set to.

    Returns:
        A tensor of the shape and dtype of `images`.

    Example:

    >>> noisy = add_pixel_noise(tf.zeros([2, 28, 28]), 0.1, seed=0)
    >>> int(tf.reduce_sum(tf.cast(noisy != 0, tf.int32)))  # 2 * int(784 * 0.1)
    156
    """
    eta = _check_level(eta)
    images = tf.convert_to_tensor(images)
    if not images.dtype.is_floating:
        raise TypeError(
            f"images must be floats in [0, 1] (scale uint8 pixels by 1/255), got dtype {images.dtype.name}."
        )
    pixels = _per_example_size(images, "images")
    count = math.floor(pixels * eta + _COUNT_EPSILON)
    if count == 0:
        return images
    flat = tf.reshape(images, [-1, pixels])
    batch = tf.shape(flat)[0]
    scores = _example_uniform(batch, pixels, seed, example_ids)
    # The `count` highest of `pixels` i.i.d. scores are a uniformly random set of
    # distinct positions. Scattering their indices (not thresholding at the count-th
    # score) keeps exactly `count` even when two float scores tie.
    _, positions = tf.math.top_k(scores, k=count, sorted=False)
    rows = tf.repeat(tf.range(batch), count)
    coords = tf.stack([rows, tf.reshape(positions, [-1])], axis=1)
    mask = tf.scatter_nd(coords, tf.ones([batch * count], tf.bool), tf.shape(flat))
    noisy = tf.where(mask, tf.cast(value, images.dtype), flat)
    return tf.reshape(noisy, tf.shape(images))


def blend_white_noise(
    waveforms: tf.Tensor,
    eta: float,
    seed: int | Sequence[int] | tf.Tensor = 0,
    example_ids: tf.Tensor | None = None,
) -> tf.Tensor:
    """The paper's speech noise: `(1 - eta) * A + eta * w` with white noise `w ~ U(-1, 1)`.

    Applied to the padded waveform (float in `[-1, 1]`) before the features. Each
    sample of each clip draws its own `w`; clip `i`'s noise depends only on `seed`
    and `example_ids[i]` (default: its position in the batch). TF ops only, usable in
    `tf.data.Dataset.map`.

    Args:
        waveforms: Float `[batch, samples]` (any `[batch, ...]`), e.g. `[B, 16000]`.
        eta: Noise level in `[0, 1]`, a Python number: 0 leaves the clips unchanged,
            1 replaces them with noise.
        seed: An int or a shape-`[2]` integer tensor (stateless seed).
        example_ids: Optional int `[batch]`: a stable index per clip.

    Returns:
        A tensor of the shape and dtype of `waveforms`.

    Example:

    >>> noisy = blend_white_noise(tf.zeros([2, 16000]), 0.5, seed=0)
    >>> bool(tf.reduce_max(tf.abs(noisy)) <= 0.5)
    True
    """
    eta = _check_level(eta)
    waveforms = tf.convert_to_tensor(waveforms)
    if not waveforms.dtype.is_floating:
        raise TypeError(f"waveforms must be floats in [-1, 1], got dtype {waveforms.dtype.name}.")
    samples = _per_example_size(waveforms, "waveforms")
    if eta == 0.0:
        return waveforms
    noise = _example_uniform(
        tf.shape(waveforms)[0], samples, seed, example_ids, minval=-1.0, maxval=1.0
    )
    noise = tf.reshape(tf.cast(noise, waveforms.dtype), tf.shape(waveforms))
    return (1.0 - eta) * waveforms + eta * noise


# --------------------------------------------------------------------------- report


@dataclasses.dataclass
class NoiseReport:
    """Accuracy of one model at each noise level, and its noise score.

    Attributes:
        model_name: Name of the model evaluated.
        dataset: Name of the test data ("mnist", "gsc" or a user's).
        noise_levels: The levels, in evaluation order.
        correct: Correct answers at each level.
        test_size: Examples per level.
        seed: Noise seed; the same seed reproduces the same noise and score.
        timing: Seconds spent: "total", "data" (waiting for noisy batches) and "model".
        versions: Package versions the numbers were produced with.

    Example:

    >>> report = NoiseReport("m", "mnist", (0.0, 0.5), (990, 800), 1000, 0)
    >>> report.noise_score, report.max_score, report.accuracies
    (1790, 2000, (0.99, 0.8))
    """

    model_name: str
    dataset: str
    noise_levels: tuple[float, ...]
    correct: tuple[int, ...]
    test_size: int
    seed: int
    timing: dict[str, float] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.seed = _check_seed(self.seed)
        self.noise_levels = tuple(float(level) for level in self.noise_levels)
        self.correct = tuple(int(count) for count in self.correct)
        if len(self.noise_levels) != len(self.correct):
            raise ValueError(
                f"{len(self.noise_levels)} noise levels but {len(self.correct)} correct counts."
            )
        if self.test_size <= 0 or any(not 0 <= c <= self.test_size for c in self.correct):
            raise ValueError(
                f"Correct counts {self.correct} do not fit test_size {self.test_size}."
            )

    @property
    def accuracies(self) -> tuple[float, ...]:
        """Fraction correct at each level."""
        return tuple(count / self.test_size for count in self.correct)

    @property
    def noise_score(self) -> int:
        """Correct answers summed over all levels (the paper's noise score)."""
        return sum(self.correct)

    @property
    def max_score(self) -> int:
        """The best possible noise score, levels x test size."""
        return len(self.noise_levels) * self.test_size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the derived accuracies and scores included."""
        return {
            "model_name": self.model_name,
            "dataset": self.dataset,
            "noise_levels": list(self.noise_levels),
            "accuracies": list(self.accuracies),
            "correct": list(self.correct),
            "noise_score": self.noise_score,
            "max_score": self.max_score,
            "test_size": self.test_size,
            "seed": self.seed,
            "timing": dict(self.timing),
            "versions": dict(self.versions),
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text; also written to `path` when given.

        The file is written under a temporary name beside `path` and renamed into
        place, so an interrupted write never leaves a truncated report; an unwritable
        `path` raises `ValueError` (see `check_output_path`) before anything is written.
        """
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            path = check_output_path(path, "report path")
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                temporary.write_text(text)
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseReport:
        """Inverse of `to_dict` (derived entries are checked, not trusted)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = {"model_name", "dataset", "noise_levels", "correct", "test_size", "seed"} - set(
            data
        )
        if missing:
            raise ValueError(f"Noise report is missing {sorted(missing)}.")
        report = cls(**{key: value for key, value in data.items() if key in fields})
        if "noise_score" in data and data["noise_score"] != report.noise_score:
            raise ValueError(
                f"Noise report says noise_score {data['noise_score']} but its counts sum to {report.noise_score}."
            )
        return report

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> NoiseReport:
        """Reads a report from JSON text or from a path to a `.json` file."""
        text = str(source)
        if isinstance(source, os.PathLike) or not text.lstrip().startswith("{"):
            text = pathlib.Path(source).read_text()
        return cls.from_dict(json.loads(text))

    def to_markdown(self) -> str:
        """A Markdown table of the curve, followed by the noise score."""
        lines = [
            f"**{self.model_name}** on {self.dataset} (test size {self.test_size:,}, seed {self.seed})",
            "",
            "| noise level | accuracy | correct |",
            "|---:|---:|---:|",
        ]
        for level, accuracy, count in zip(
            self.noise_levels, self.accuracies, self.correct, strict=True
        ):
            lines.append(f"| {level:.2f} | {100 * accuracy:.2f}% | {count:,} |")
        lines += ["", f"Noise score: **{self.noise_score:,}** / {self.max_score:,}"]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """A plain-text table for terminals."""
        lines = [
            f"{self.model_name} on {self.dataset} ({self.test_size:,} test examples, seed {self.seed})",
            f"{'noise level':>11}  {'accuracy':>8}  {'correct':>9}",
        ]
        for level, accuracy, count in zip(
            self.noise_levels, self.accuracies, self.correct, strict=True
        ):
            lines.append(f"{level:>11.2f}  {100 * accuracy:>7.2f}%  {count:>9,}")
        lines.append(f"noise score: {self.noise_score:,} / {self.max_score:,}")
        return "\n".join(lines)

    def plot(self, ax=None, **line_kwargs):
        """Plots accuracy (%) against noise level; returns the matplotlib axes.

        Args:
            ax: Axes to draw on; a new figure's axes if None.
            **line_kwargs: Passed to `ax.plot` (e.g. `label`, `color`).
        """
        ax = _new_axes() if ax is None else ax
        line_kwargs.setdefault("label", f"{self.model_name} ({self.noise_score:,})")
        line_kwargs.setdefault("marker", "o")
        ax.plot(self.noise_levels, [100 * a for a in self.accuracies], **line_kwargs)
        ax.set_xlabel("noise level η")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"Accuracy under noise ({self.dataset})")
        ax.grid(True, alpha=0.3)
        ax.legend()
        return ax


def _new_axes():
    # A bare Figure (no pyplot) works headless and leaves pyplot's global state alone;
    # savefig uses the Agg canvas.
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 4), layout="constrained").add_subplot()


def plot_reports(reports: Sequence[NoiseReport], ax=None, title: str | None = None):
    """The paper's Fig. 5B: accuracy against noise level, one line per model.

    Args:
        reports: Reports to compare (usually the same dataset and seed).
        ax: Axes to draw on; a new figure's axes if None.
        title: Axes title; defaults to one naming the dataset(s).

    Returns:
        The matplotlib axes (`ax.figure.savefig(path)` saves it).
    """
    if not reports:
        raise ValueError("plot_reports needs at least one NoiseReport.")
    ax = _new_axes() if ax is None else ax
    for report in reports:
        report.plot(ax=ax)
    datasets = sorted({report.dataset for report in reports})
    ax.set_title(title or f"Accuracy under noise ({', '.join(datasets)}); legend: noise score")
    return ax


def noise_examples_figure(
    images: np.ndarray | tf.Tensor,
    levels: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    seed: int = 0,
):
    """The paper's Fig. 5A: example images (rows) at each noise level (columns).

    Args:
        images: `[N, 28, 28]` or `[N, 28, 28, 1]`, floats in `[0, 1]` or uint8.
        levels: Noise levels, one column each.
        seed: Noise seed.

    Returns:
        A matplotlib `Figure` (`fig.savefig(path)` saves it).
    """
    from matplotlib.figure import Figure

    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images / 255.0
    images = images.astype(np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(
            f"images must be [N, height, width] with N >= 1, got shape {images.shape}."
        )
    levels = [_check_level(level) for level in levels]
    if not levels:
        raise ValueError("levels must name at least one noise level.")
    fig = Figure(figsize=(1.3 * len(levels), 1.4 * len(images) + 0.3), layout="constrained")
    axes = fig.subplots(len(images), len(levels), squeeze=False)
    for col, level in enumerate(levels):
        noisy = add_pixel_noise(images, level, seed).numpy()
        for row in range(len(images)):
            ax = axes[row, col]
            ax.imshow(noisy[row], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"η = {level:.2f}", fontsize=9)
    return fig


# --------------------------------------------------------------------------- evaluation


@dataclasses.dataclass
class _TestData:
    """Raw test examples, in memory (`arrays`) or as an unbatched `(input, label)` dataset,
    with the noise and feature functions that go with them."""

    name: str
    noise_fn: NoiseFn
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None
    num_classes: int | None
    arrays: tuple[np.ndarray, np.ndarray] | None = None
    examples: tf.data.Dataset | None = None

    def raw_batches(self, batch_size: int):
        """Yields `(first_example_index, inputs, labels)` batches of raw inputs."""
        if self.arrays is not None:
            # Slicing in-memory arrays skips a tf.data pipeline and its start-up cost per level.
            inputs, labels = self.arrays
            for start in range(0, len(labels), batch_size):
                yield (
                    start,
                    tf.constant(inputs[start : start + batch_size]),
                    labels[start : start + batch_size],
                )
            return
        start = 0
        for inputs, labels in self.examples.batch(batch_size).prefetch(tf.data.AUTOTUNE):
            labels = labels.numpy()
            yield start, inputs, labels
            start += len(labels)


def _check_levels(noise_levels: Sequence[float]) -> tuple[float, ...]:
    if isinstance(noise_levels, str | bytes) or not isinstance(noise_levels, Sequence | np.ndarray):
        raise ValueError(
            f"noise_levels must be a sequence of numbers in [0, 1], got {noise_levels!r}."
        )
    levels = tuple(_check_level(level) for level in noise_levels)
    if not levels:
        raise ValueError("noise_levels is empty: give at least one noise level in [0, 1].")
    # A level's noise is seeded by its value, so a repeated level would count the very
    # same answers twice in the noise score.
    repeated = sorted({level for level in levels if levels.count(level) > 1})
    if repeated:
        raise ValueError(
            f"noise_levels must be distinct, got {list(levels)} (repeated: {repeated}); each "
            "level's noise is fixed by its value, so a repeat would count the same answers twice."
        )
    return levels


def _positive_int(name: str, value) -> int:
    # int(2.7) would silently evaluate batches of 2; True would be a batch of 1.
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_seed(seed) -> int:
    """The noise seed as an int; floats, bools and strings are refused, not truncated."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(
            f"seed must be an integer, got {seed!r} ({type(seed).__name__}): a float seed "
            "would be truncated and give another seed's noise."
        )
    if not -(2**63) <= int(seed) < 2**63:
        raise ValueError(f"seed must fit in a signed 64-bit integer, got {seed!r}.")
    return int(seed)


def check_output_path(path: str | os.PathLike, what: str = "output file") -> pathlib.Path:
    """Checks up front that a report can be written to `path`, writing nothing.

    Commands call it before a long evaluation, so that a mistyped `--json` or
    `--plot` path fails in a second rather than after the evaluation has run.

    Args:
        path: The file to be written (it may exist: it will be replaced).
        what: How to name the path in the error, e.g. "--json path".

    Returns:
        `path` as a `pathlib.Path` (`~` expanded).

    Raises:
        ValueError: if `path` is empty, is a directory, or its parent folder does not
            exist, is not a folder, or is not writable.
    """
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise ValueError(f"The {what} must be a file path, got {path!r}.")
    path = pathlib.Path(path).expanduser()
    parent = path.parent
    if path.is_dir():
        raise ValueError(f"The {what} {str(path)!r} is a directory; expected a file path.")
    if not parent.exists():
        raise ValueError(
            f"The {what} {str(path)!r} cannot be written: its folder {str(parent)!r} does not "
            "exist (create it first)."
        )
    if not parent.is_dir():
        raise ValueError(
            f"The {what} {str(path)!r} cannot be written: {str(parent)!r} is not a folder."
        )
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(
            f"The {what} {str(path)!r} cannot be written: no write permission in {str(parent)!r}."
        )
    return path


def _mnist_data(data_dir, max_examples) -> _TestData:
    from sparse_keras.data import mnist

    images, labels = mnist.load_arrays("test", data_dir)
    images, labels = images[:max_examples], labels[:max_examples]
    pixels = images[..., None].astype(np.float32) / 255.0
    return _TestData(
        "mnist",
        add_pixel_noise,
        mnist.normalize_images,
        len(mnist.CLASS_NAMES),
        arrays=(pixels, labels),
    )


def _audio_data(name, data_dir, max_examples) -> _TestData:
    module_name = _AUDIO_MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise ValueError(
            f"Dataset {name!r} needs {module_name}, which this installation lacks."
        ) from err
    features = getattr(module, "log_mel", None)
    if features is None:
        from sparse_keras.data import audio

        features = audio.log_mel
    options = {"cache": False} if "cache" in inspect.signature(module.load).parameters else {}
    examples = module.load(
        "test", batch_size=None, data_dir=data_dir, return_waveforms=True, **options
    )
    if max_examples is not None:
        examples = examples.take(max_examples)
    # Decoding the clips once (not once per level) is most of the input cost. The cache
    # goes after `take` so that a subset is cached whole (TF discards partial caches).
    examples = examples.cache()
    return _TestData(name, blend_white_noise, features, len(module.CLASS_NAMES), examples=examples)


def _user_data(dataset: tf.data.Dataset, noise_fn, max_examples) -> _TestData:
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"A custom dataset must yield (input, label) pairs, got element spec {spec}."
        )
    if noise_fn is None:
        raise ValueError(
            "A custom dataset needs a noise_fn(inputs, eta, seed) that corrupts a batch."
        )
    label_spec = spec[1]
    if not label_spec.dtype.is_integer:
        raise ValueError(f"Labels must be integer class ids, got dtype {label_spec.dtype.name}.")
    if label_spec.shape.rank == 1:
        dataset = dataset.unbatch()  # integer labels of rank 1: a batched dataset
    elif label_spec.shape.rank != 0:
        raise ValueError(f"Labels must be class ids [] or [batch], got shape {label_spec.shape}.")
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    return _TestData("custom", noise_fn, None, None, examples=dataset)


def _takes_example_ids(noise_fn) -> bool:
    try:
        parameters = inspect.signature(noise_fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.name == "example_ids" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    )


@contextlib.contextmanager
def _quiet_tensorflow_warnings():
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _corrupt_fn(
    data: _TestData, eta: float, seed: int
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
    """A graph function `(inputs, first_example_index, batch_index) -> noisy features`."""
    # Seeding by the level's value (not its position) keeps the noise of a level the
    # same whichever other levels are evaluated.
    level_seed = tf.constant([seed, round(eta * 1_000_000)], tf.int64)
    with_ids = _takes_example_ids(data.noise_fn)

    @tf.function(reduce_retracing=True)
    def corrupt(inputs, first_example, batch_index):
        if with_ids:
            example_ids = first_example + tf.range(tf.shape(inputs, out_type=tf.int64)[0])
            inputs = data.noise_fn(inputs, eta, level_seed, example_ids=example_ids)
        else:
            inputs = data.noise_fn(
                inputs, eta, tf.random.experimental.stateless_fold_in(level_seed, batch_index)
            )
        return inputs if data.preprocess is None else data.preprocess(inputs)

    return corrupt


def _predict_fn(model) -> Callable[[tf.Tensor], Any]:
    import keras

    if isinstance(model, keras.layers.Layer):  # keras.Model included
        # A graph function runs inference several times faster than eager calls;
        # training=False selects the k-winners' inference k and frozen statistics.
        @tf.function(reduce_retracing=True)
        def predict(inputs):
            return model(inputs, training=False)

        return predict
    if callable(model):
        return model
    raise TypeError(
        f"model must be a keras.Model or a callable returning logits, got {type(model).__name__}."
    )


def _model_name(model, model_name: str | None) -> str:
    if model_name:
        return model_name
    return str(
        getattr(model, "name", None) or getattr(model, "__name__", None) or type(model).__name__
    )


def _check_outputs(
    outputs, num_classes: int | None, labels: np.ndarray, dataset: str
) -> np.ndarray:
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or outputs.shape[0] != len(labels):
        raise ValueError(
            f"The model must output [batch, classes] logits or probabilities; for a batch of "
            f"{len(labels)} it gave shape {outputs.shape}."
        )
    width = outputs.shape[1]
    if num_classes is not None and width != num_classes:
        raise ValueError(
            f"The model outputs {width} classes but {dataset} has {num_classes} classes."
        )
    if len(labels) and labels.max() >= width:
        raise ValueError(
            f"Label {labels.max()} is out of range for a model that outputs {width} classes."
        )
    if len(labels) and labels.min() < 0:
        raise ValueError(
            f"Label {labels.min()} is negative: labels must be class ids in [0, {width})."
        )
    if np.issubdtype(outputs.dtype, np.floating) and np.isnan(outputs).any():
        bad = int(np.isnan(outputs).any(axis=1).sum())
        raise ValueError(
            f"The model output NaN for {bad} of {len(labels)} examples; expected finite logits "
            "or probabilities. A NaN output has no meaningful argmax, so no accuracy or noise "
            "score is given (is the model diverged, or its weights corrupt?)."
        )
    return outputs


def _versions() -> dict[str, str]:
    import keras

    import sparse_keras

    return {
        "sparse_keras": sparse_keras.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": sys.version.split()[0],
    }


def evaluate(
    model,
    dataset: str | tf.data.Dataset = "mnist",
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    seed: int = 0,
    batch_size: int = 1000,
    data_dir: str | os.PathLike | None = None,
    noise_fn: NoiseFn | None = None,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    progress: bool = True,
    max_examples: int | None = None,
    model_name: str | None = None,
    num_classes: int | None = None,
) -> NoiseReport:
    """Accuracy at each noise level and the noise score (the paper's Fig. 5B, Tables 1-2).

    For each level, every test example is corrupted at the raw-input level, turned into
    the model's features and classified (argmax of the outputs):

    - "mnist": test images in `[0, 1]` -> `add_pixel_noise` -> normalisation -> model.
    - "gsc": padded test waveforms -> `blend_white_noise` -> log-mel -> model.
    - a `tf.data.Dataset` of `(raw_input, integer_label)` (single examples or batches)
      with your `noise_fn(inputs, eta, seed)` and optional `preprocess(inputs)`.

    Noise is reproducible: the same seed gives the same noise (and score) on every run,
    whatever the batch size. A `noise_fn` that accepts `example_ids=` (as the built-in
    ones do) is given each example's index; otherwise it gets a seed per batch, and its
    noise then depends on the batch size.

    Args:
        model: A `keras.Model` (run in inference mode as a compiled graph), any
            callable mapping a feature batch to logits or probabilities `[batch, classes]`,
            or a zoo name / `.keras` path (see `load_model`).
        dataset: "mnist", "gsc", "gsc12v2" (Speech Commands v0.02 keywords: the noise
            test uses the keyword and unknown test clips, no silence), "fsdd", or a
            `tf.data.Dataset`.
        noise_levels: Levels in `[0, 1]`; default 0.00, 0.05, ..., 0.50.
        seed: Noise seed.
        batch_size: Examples per model call.
        data_dir: The named dataset's own directory (MNIST: the IDX files; GSC: the
            v0.01 tree); default `$SPARSE_KERAS_DATA/<dataset>`.
        noise_fn: Replaces the dataset's noise: `noise_fn(inputs, eta, seed)` on a batch
            of raw inputs, TF ops (it runs in `tf.data`). Required for custom datasets.
        preprocess: Replaces the dataset's feature step (TF ops, on a batch).
        progress: Show a progress bar over the levels.
        max_examples: Evaluate only the first examples (quick checks; the score is then
            not comparable with the paper's).
        model_name: Name for the report; default the model's `name`.
        num_classes: Expected output width, checked against the model (default: the
            named dataset's classes).

    Returns:
        A `NoiseReport`.

    Raises:
        ValueError: on levels outside `[0, 1]` or repeated, an unknown dataset name,
            an empty dataset, a non-positive or non-integer `batch_size` /
            `max_examples`, labels outside `[0, classes)`, model outputs of the wrong
            shape, or NaN outputs (a model with NaN logits gets an error, never an
            accuracy; infinite logits are accepted, argmax is defined for them).
        TypeError: if `seed` is not an integer (a float or bool seed would be
            truncated into another seed's noise).

    Example:

    >>> model = sparse_keras.models.build("mnist_sparse_cnn2", seed=0)
    >>> report = evaluate(model, "mnist", noise_levels=(0.0, 0.5), max_examples=100)
    >>> report.max_score
    200
    """
    levels = _check_levels(noise_levels)
    seed = _check_seed(seed)
    if not isinstance(dataset, tf.data.Dataset) and dataset not in DATASETS:
        raise ValueError(
            f"Unknown dataset {dataset!r}; expected one of {DATASETS} or a tf.data.Dataset."
        )
    batch_size = _positive_int("batch_size", batch_size)
    if max_examples is not None:
        max_examples = _positive_int("max_examples", max_examples)
    if isinstance(model, str | os.PathLike):
        path = pathlib.Path(model)
        model_name = model_name or (path.stem if path.suffix == ".keras" else str(model))
        model = load_model(model)
    if isinstance(dataset, tf.data.Dataset):
        data = _user_data(dataset, noise_fn, max_examples)
    elif dataset == "mnist":
        data = _mnist_data(data_dir, max_examples)
    else:
        data = _audio_data(dataset, data_dir, max_examples)
    data.noise_fn = noise_fn or data.noise_fn
    data.preprocess = preprocess or data.preprocess
    data.num_classes = num_classes or data.num_classes
    predict = _predict_fn(model)

    from tqdm.auto import tqdm

    correct: list[int] = []
    test_size = None
    timing = {"data": 0.0, "model": 0.0}
    start = time.perf_counter()
    bar = tqdm(levels, desc=f"noise levels ({data.name})", unit="level", disable=not progress)
    with _quiet_tensorflow_warnings():
        for eta in bar:
            level_correct = level_total = 0
            tick = time.perf_counter()
            for features, labels in _feature_batches(data, eta, int(seed), int(batch_size)):
                tock = time.perf_counter()
                outputs = _check_outputs(predict(features), data.num_classes, labels, data.name)
                timing["data"] += tock - tick
                level_correct += int(np.sum(np.argmax(outputs, axis=1) == labels))
                level_total += len(labels)
                tick = time.perf_counter()
                timing["model"] += tick - tock
            test_size = _check_level_total(data.name, eta, level_total, test_size)
            correct.append(level_correct)
            bar.set_postfix(accuracy=f"{100 * level_correct / level_total:.2f}%")
    timing["total"] = time.perf_counter() - start
    return NoiseReport(
        model_name=_model_name(model, model_name),
        dataset=data.name,
        noise_levels=levels,
        correct=tuple(correct),
        test_size=test_size,
        seed=int(seed),
        timing={key: round(value, 3) for key, value in timing.items()},
        versions=_versions(),
    )


def _feature_batches(data: _TestData, eta: float, seed: int, batch_size: int):
    """Yields `(features, int64 labels)` of every test batch corrupted at level `eta`."""
    # Each level traces its own noise graph on purpose (the number of noisy pixels is a
    # static shape); TensorFlow would warn about "excessive retracing" after five.
    corrupt = _corrupt_fn(data, eta, seed)
    for batch_index, (first_example, inputs, labels) in enumerate(data.raw_batches(batch_size)):
        features = corrupt(
            inputs, tf.constant(first_example, tf.int64), tf.constant(batch_index, tf.int64)
        )
        yield features, np.asarray(labels).astype(np.int64)


def _check_level_total(name: str, eta: float, level_total: int, test_size: int | None) -> int:
    if level_total == 0:
        raise ValueError(f"The {name} test dataset is empty: nothing to evaluate.")
    if test_size is not None and level_total != test_size:
        raise ValueError(
            f"The dataset gave {level_total} examples at noise {eta} but {test_size} before: "
            "it must give the same examples on every pass."
        )
    return level_total


@dataclasses.dataclass
class NoisyTestSet:
    """A named dataset's test set, corrupted once at every noise level and kept in memory.

    Made by `noisy_test_set`. Evaluating several models (or one model after every
    training epoch) on it gives exactly the scores `evaluate` gives with the same seed,
    without drawing the noise and computing the features again each time.

    Attributes:
        dataset: The dataset's name.
        noise_levels: The levels, in order.
        features: One float32 array `(examples, *feature_shape)` per level.
        labels: int64 class ids `(examples,)`.
        seed: The noise seed.
    """

    dataset: str
    noise_levels: tuple[float, ...]
    features: list[np.ndarray]
    labels: np.ndarray
    seed: int
    num_classes: int | None = None

    def evaluate(self, model, batch_size: int = 1000, model_name: str | None = None) -> NoiseReport:
        """Accuracy of `model` at every level: a `NoiseReport`, as `evaluate` returns.

        Args:
            model: A `keras.Model` or a callable from a feature batch to `[batch, classes]`
                outputs (e.g. a `sparse_keras.compute.SparseInferenceModel`).
            batch_size: Examples per model call.
            model_name: Name for the report.
        """
        batch_size = _positive_int("batch_size", batch_size)
        predict = _predict_fn(model)
        start = time.perf_counter()
        correct = []
        for features in self.features:
            level_correct = 0
            for first in range(0, len(self.labels), int(batch_size)):
                labels = self.labels[first : first + int(batch_size)]
                outputs = _check_outputs(
                    predict(features[first : first + int(batch_size)]),
                    self.num_classes,
                    labels,
                    self.dataset,
                )
                level_correct += int(np.sum(np.argmax(outputs, axis=1) == labels))
            correct.append(level_correct)
        return NoiseReport(
            model_name=_model_name(model, model_name),
            dataset=self.dataset,
            noise_levels=self.noise_levels,
            correct=tuple(correct),
            test_size=len(self.labels),
            seed=self.seed,
            timing={"model": round(time.perf_counter() - start, 3)},
            versions=_versions(),
        )


def noisy_test_set(
    dataset: str = "mnist",
    noise_levels: Sequence[float] = DEFAULT_NOISE_LEVELS,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    max_examples: int | None = None,
) -> NoisyTestSet:
    """Corrupts a named dataset's test set at every level once (the noise `evaluate` draws).

    Args:
        dataset: "mnist", "gsc" or "fsdd".
        noise_levels: Levels in `[0, 1]`.
        seed: Noise seed; the same seed gives the same noise as `evaluate(seed=seed)`.
        data_dir: The dataset's directory (see `evaluate`).
        max_examples: Keep only the first examples.

    Returns:
        A `NoisyTestSet` (memory: levels x examples x features x 4 bytes; MNIST's 11 levels
        take 345 MB).
    """
    levels = _check_levels(noise_levels)
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
    seed = _check_seed(seed)
    if max_examples is not None:
        max_examples = _positive_int("max_examples", max_examples)
    data = (
        _mnist_data(data_dir, max_examples)
        if dataset == "mnist"
        else _audio_data(dataset, data_dir, max_examples)
    )
    features, labels, test_size = [], None, None
    with _quiet_tensorflow_warnings():
        for eta in levels:
            batches = list(_feature_batches(data, eta, int(seed), 1000))
            level_labels = np.concatenate([b[1] for b in batches]) if batches else np.zeros(0)
            test_size = _check_level_total(data.name, eta, len(level_labels), test_size)
            features.append(np.concatenate([np.asarray(b[0], np.float32) for b in batches]))
            labels = level_labels
    return NoisyTestSet(data.name, levels, features, labels, int(seed), data.num_classes)


# --------------------------------------------------------------------------- model loading


def load_model(name_or_path: str | os.PathLike):
    """A model from a `.keras` file or, failing that, from the model zoo by name.

    The same rule as every `sparse-keras` command's MODEL argument
    (`sparse_keras.cli.resolve.resolve_model`).

    Args:
        name_or_path: Path to a `.keras` file, or a zoo name such as "mnist_sparse_cnn2".

    Returns:
        The `keras.Model` (not compiled).

    Raises:
        FileNotFoundError: for a model path that does not exist.
        ValueError: for a file that is not a Keras model, or an unknown zoo name.
    """
    # Deferred: the resolver belongs to the command line, which imports this module.
    from sparse_keras.cli.resolve import resolve_model

    return resolve_model(name_or_path).model


def _zoo_module(name: str):
    try:
        zoo = importlib.import_module("sparse_keras.zoo")
    except ImportError as err:
        raise ValueError(
            f"{name!r} is not a .keras file and the model zoo cannot be imported: {err}"
        ) from err
    if not hasattr(zoo, "load"):
        raise ValueError(
            f"{name!r} is not a .keras file and the model zoo (sparse_keras.zoo) is not available."
        )
    return zoo


def default_dataset(name_or_path: str | os.PathLike) -> str:
    """The test data a model is meant for: the zoo's record, else its name's prefix."""
    path = pathlib.Path(name_or_path)
    if path.suffix != ".keras":
        dataset = _zoo_module(str(name_or_path)).info(str(name_or_path))["dataset"]
        if dataset in DATASETS:
            return dataset
        raise ValueError(
            f"Zoo model {str(name_or_path)!r} was trained on {dataset!r}, which evaluate does not know."
        )
    for prefix in _AUDIO_MODULES:
        if path.stem.startswith(prefix):
            return prefix
    return "mnist"
