"""The paper's two noise protocols: pixel noise for images, white-noise blending for audio.

The paper measures robustness by corrupting the *raw* test inputs at noise levels
`eta` in `[0, 1]` (Fig. 5, Tables 1-2), before any normalisation or features:

- images (`add_pixel_noise`): in `[0, 1]` pixel space, set `int(pixels * eta)` distinct
  random pixels of every image to one value (MNIST: its training mean plus two standard
  deviations, `sparse_keras.data.mnist.NOISE_VALUE`);
- speech (`blend_white_noise`): `(1 - eta) * A + eta * w`, `w ~ U(-1, 1)` per sample,
  on the padded waveform before the log-mel features.

Each dataset's descriptor names its protocol (`sparse_keras.data.dataset(name).add_noise`);
`sparse_keras.robustness.evaluate` runs it at every level.

Noise is drawn with stateless random ops from `(seed, example index)`, so it is
reproducible: the same seed gives the same noise whatever the batch size. Everything
here is TensorFlow ops and runs inside `tf.data.Dataset.map`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

# How many examples the per-example noise draws run side by side.
_PARALLEL_ROWS = 128
# Guards int(784 * eta) against float error just below a whole number (0.1 + 0.15).
_COUNT_EPSILON = 1e-9


def check_level(eta: float) -> float:
    """A noise level as a float in `[0, 1]`.

    Raises:
        TypeError: if `eta` is not a number.
        ValueError: if it is outside `[0, 1]` (or NaN).
    """
    try:
        eta = float(eta)
    except TypeError as err:
        raise TypeError(f"The noise level must be a Python number, got {eta!r}.") from err
    if not 0.0 <= eta <= 1.0:  # also rejects NaN
        raise ValueError(f"Noise level must be in [0, 1], got {eta!r}.")
    return eta


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
    *,
    value: float,
) -> tf.Tensor:
    """The paper's image noise: sets `int(pixels * eta)` distinct random pixels to `value`.

    Every image gets its own random positions. Images are in `[0, 1]` pixel space (the
    noise is added before normalisation, as in the paper). For MNIST, `value` is the
    training mean plus two standard deviations, `0.7469`: `sparse_keras.data.mnist.add_noise`
    is this function with that value.

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

    >>> noisy = add_pixel_noise(tf.zeros([2, 28, 28]), 0.1, seed=0, value=0.75)
    >>> int(tf.reduce_sum(tf.cast(noisy != 0, tf.int32)))  # 2 * int(784 * 0.1)
    156
    """
    eta = check_level(eta)
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
    eta = check_level(eta)
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
