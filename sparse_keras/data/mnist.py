"""MNIST: the original IDX files, read and served as `tf.data` pipelines, and its descriptor.

Images come as float32 `[28, 28, 1]`, either in `[0, 1]` pixel space (the space the
paper's noise protocol works in) or normalised with the paper's mean 0.1307 and std
0.3081 (`normalize_images`, the one place that normalisation is written). Labels are
int32 class ids 0..9. `DATASET` describes MNIST for evaluation, export and the zoo.
"""

from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np
import tensorflow as tf

from sparse_keras import _embedded, noise
from sparse_keras.data.descriptor import Dataset, RawInput
from sparse_keras.data.download import DataNotFoundError, data_root, fetch, verify_file

MEAN = 0.1307
STD = 0.3081
# The paper's pixel noise sets pixels to the training mean plus two standard deviations.
NOISE_VALUE = MEAN + 2 * STD
CLASS_NAMES = tuple(str(digit) for digit in range(10))
IMAGE_SHAPE = (28, 28, 1)

# Mirrors of the original files, tried in order (the original host is often down).
BASE_URLS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# The decompressed IDX files, which `load_arrays` reads as well (the widely published
# digests of the official files).
SHA256_DECOMPRESSED = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SPLITS = ("train", "validation", "test")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (gzip-compressed or not) into a NumPy array.

    Args:
        path: Path to an `.idx*-ubyte` file or its `.gz`.

    Returns:
        The array, with the shape and dtype its header declares.

    Raises:
        ValueError: if the magic number, dimensions or length are inconsistent.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"Cannot read IDX file {path}: {err} (truncated or not gzip?)") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: magic bytes {data[:4].hex()!r}, expected 0000 + a type "
            "code (08 for uint8) + the number of dimensions."
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise ValueError(
            f"{path}: IDX header declares {ndim} dimensions but the file is {len(data)} bytes."
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes in all) but the file has "
            f"{len(data)} bytes: truncated or corrupt."
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _ensure_file(
    root: pathlib.Path, name: str, download: bool, base_urls, verify: bool | None = None
) -> pathlib.Path:
    for candidate in (root / name, root / name.removesuffix(".gz")):
        if candidate.exists():
            # A file on disk may be altered or corrupt yet still parse: a changed pixel
            # file once gave 38% accuracy without a word. Checked once, then cached.
            expected = {**SHA256, **SHA256_DECOMPRESSED}[candidate.name]
            return verify_file(candidate, expected, verify, what="MNIST file")
    if not download:
        raise DataNotFoundError(
            f"MNIST file {name} not found in {root}. Put the four original IDX files there, set "
            "SPARSE_KERAS_DATA to a directory with an 'mnist' folder holding them, or pass "
            "download=True."
        )
    errors = []
    for base in base_urls:
        try:
            return fetch(base + name, root / name, SHA256[name])
        except (DataNotFoundError, ValueError) as err:
            errors.append(str(err))
    raise DataNotFoundError(
        f"MNIST file {name} is not in {root} and could not be downloaded:\n  "
        + "\n  ".join(errors)
        + f"\nExpected files: {', '.join(SHA256)} in {root} (or set SPARSE_KERAS_DATA)."
    )


def load_arrays(
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    validation_size: int = 0,
    base_urls: tuple[str, ...] = BASE_URLS,
    verify: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST as NumPy arrays: uint8 images `[N, 28, 28]` and int32 labels `[N]`.

    Args:
        split: "train", "validation" or "test". "validation" is the last
            `validation_size` training images, which "train" then leaves out.
        data_dir: Directory with the IDX files; default as `data_root` says. Without
            one, the test split falls back to the copy shipped with the package when
            the files are neither there nor downloadable.
        download: Download missing files from the official mirrors (verified).
        validation_size: Training images held out for validation (0 = none).
        base_urls: Mirrors to download from, tried in order.
        verify: Check files already on disk against the official sha256 (once per
            file version: see `sparse_keras.data.download.verify_file`). False skips
            it, for files altered on purpose; None (default) follows
            `$SPARSE_KERAS_VERIFY_DATA` (on unless "0"). Downloads are always checked.

    Raises:
        DataNotFoundError: if a file is missing and cannot be downloaded.
        DataIntegrityError: (a ValueError) if a file on disk is not the official one.
        ValueError: on a bad split or validation size, or unreadable files.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown MNIST split {split!r}; expected one of {SPLITS}.")
    if not 0 <= validation_size < 60000:
        raise ValueError(f"validation_size must be in [0, 60000), got {validation_size!r}.")
    if split == "validation" and validation_size == 0:
        raise ValueError(
            "split='validation' needs validation_size > 0 training images to hold out."
        )
    root = data_root(data_dir, "mnist")
    image_file, label_file = FILES["test" if split == "test" else "train"]
    try:
        images = read_idx(_ensure_file(root, image_file, download, base_urls, verify))
        labels = read_idx(_ensure_file(root, label_file, download, base_urls, verify))
        labels = labels.astype(np.int32)
    except DataNotFoundError:
        if split != "test" or data_dir is not None:
            raise
        # The package ships the test files (byte-identical to the originals), so that
        # evaluation works with no data folder and no network. An explicit data_dir
        # without the files stays an error: the caller meant that folder.
        root = _embedded.MNIST_DIR
        images = read_idx(root / image_file)
        labels = read_idx(root / label_file).astype(np.int32)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(
            f"MNIST files in {root} disagree: images {images.shape}, labels {labels.shape}."
        )
    if split == "train" and validation_size:
        images, labels = images[:-validation_size], labels[:-validation_size]
    elif split == "validation":
        images, labels = images[-validation_size:], labels[-validation_size:]
    return images, labels


def normalize_images(images: tf.Tensor) -> tf.Tensor:
    """Maps `[0, 1]` pixels to the paper's normalised space, `(x - 0.1307) / 0.3081`."""
    return (images - MEAN) / STD


def to_pixels(images: tf.Tensor) -> tf.Tensor:
    """uint8 images (0-255) -> float32 pixels in `[0, 1]`."""
    return tf.cast(images, tf.float32) / 255.0


def features(pixels: tf.Tensor) -> tf.Tensor:
    """`[batch, 28, 28]` pixels in `[0, 1]` -> the networks' input, normalised `[batch, 28, 28, 1]`."""
    return normalize_images(tf.convert_to_tensor(pixels, tf.float32))[..., None]


def add_noise(
    pixels: tf.Tensor, eta: float, seed: int | tf.Tensor = 0, example_ids: tf.Tensor | None = None
) -> tf.Tensor:
    """The paper's MNIST noise: `int(784 * eta)` random pixels of each image set to 0.7469.

    `sparse_keras.noise.add_pixel_noise` with `value=NOISE_VALUE` (see it for the arguments).
    """
    return noise.add_pixel_noise(pixels, eta, seed, example_ids, value=NOISE_VALUE)


def clean_test_set(
    data_dir: str | os.PathLike | None = None,
    max_examples: int | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The test images as float32 `[N, 28, 28]` pixels in `[0, 1]`, and their labels.

    Args:
        data_dir: See `load_arrays`.
        max_examples: Keep only the first images.
        download: Download missing files.
    """
    images, labels = load_arrays("test", data_dir, download)
    images, labels = images[:max_examples], labels[:max_examples]
    return np.asarray(to_pixels(images)), labels


def load(
    split: str,
    batch_size: int | None = None,
    data_dir: str | os.PathLike | None = None,
    normalize: bool = True,
    shuffle: bool | None = None,
    seed: int = 0,
    validation_size: int = 0,
    download: bool = True,
    verify: bool | None = None,
) -> tf.data.Dataset:
    """MNIST as a `tf.data.Dataset` of `(image, label)`.

    Args:
        split: "train", "validation" or "test" (see `load_arrays`).
        batch_size: Batch size, or None for single examples.
        data_dir: Directory with the IDX files; default as `data_root` says.
        normalize: True for the paper's normalised inputs, False for `[0, 1]` pixels
            (the space noise is added in).
        shuffle: Shuffle each epoch; defaults to True for "train" only. The order is
            deterministic given `seed`.
        seed: Shuffle seed.
        validation_size: Training images held out as the "validation" split.
        download: Download missing files.
        verify: Check the files' sha256 (see `load_arrays`).

    Returns:
        Dataset of float32 images `[28, 28, 1]` (batched: `[B, 28, 28, 1]`) and int32
        labels.
    """
    images, labels = load_arrays(split, data_dir, download, validation_size, verify=verify)
    ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels))
    if shuffle if shuffle is not None else split == "train":
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)

    def to_float(image, label):
        image = to_pixels(image)
        return (normalize_images(image) if normalize else image), label

    if batch_size is not None:
        ds = ds.batch(batch_size).map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


DATASET = Dataset(
    name="mnist",
    title="MNIST",
    class_names=CLASS_NAMES,
    raw_input=RawInput("images", (28, 28), "uint8"),
    feature_shape=IMAGE_SHAPE,
    test_size=10_000,
    prepare=to_pixels,
    features=features,
    add_noise=add_noise,
    clean_test_set=clean_test_set,
    load=load,
    preprocessing={
        "description": (
            "28x28 grayscale digit image, white on black as in MNIST; pixels scaled to [0, 1] "
            f"(divide uint8 by 255), then normalised as (x - {MEAN}) / {STD}."
        ),
        "pixel_scale": 1 / 255,
        "mean": MEAN,
        "std": STD,
        "function": "sparse_keras.data.mnist.normalize_images",
    },
    noise_protocol=(
        "for each noise level η in 0.00, 0.05, ..., 0.50, int(784·η) distinct random pixels of "
        f"every test image are set to {NOISE_VALUE:.4f} (mean + 2·std) in [0, 1] pixel space, before "
        "normalisation; the noise score is the number of correct predictions over all levels "
        "and the 10,000 test images"
    ),
    hub_id="ylecun/mnist",
    task=("image-classification", "Image Classification"),
)
