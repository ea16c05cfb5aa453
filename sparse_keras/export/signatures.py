"""The serving signatures of an exported model: raw input -> preprocessing -> network -> answer.

Every signature takes one kind of raw input, turns it into the network's features with
the dataset descriptor's own preprocessing (`sparse_keras.data.Dataset.prepare` and
`features`, the code the training pipeline runs), runs the network in inference mode
and answers `probabilities`, `class_ids` and `class_names`. Which signatures a model
gets follows from its dataset's raw input (see `sparse_keras.export`):

- images (uint8): `serving_default` (uint8 pixels) and `serving_float` ([0, 1] floats);
- waveforms (float, 16 kHz): `serving_default` and `serving_pcm16` (int16 samples), plus
  `serving_<rate>khz` for data recorded at another rate (FSDD: `serving_8khz`);
- always `serving_features`, the network's own input.

Every signature checks its request inside the graph before any model op runs.

Example:

>>> [endpoint.signature for endpoint in endpoints(sparse_keras.data.dataset("fsdd"))]
['serving_default', 'serving_pcm16', 'serving_8khz', 'serving_features']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from sparse_keras.data import Dataset, audio

OUTPUT_NAMES = ("probabilities", "class_ids", "class_names")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One signature: its raw input and how that input becomes the network's features.

    Attributes:
        signature: The signature's name, e.g. "serving_default".
        spec: The input's dtype, name and expected shape (`[None, ...]`).
        to_features: TF ops, a batch of this input -> the network's features.
        from_signals: NumPy, a batch of the dataset's clean signals (`[0, 1]` pixels,
            1-s 16 kHz clips) -> this input, for the warm-up requests.
        value_range: Inclusive bounds every value must lie in (None: any finite value).
    """

    signature: str
    spec: tf.TensorSpec
    to_features: Callable[[tf.Tensor], tf.Tensor]
    from_signals: Callable[[np.ndarray], np.ndarray]
    value_range: tuple[float, float] | None = None


def _request_checks(inputs: tf.Tensor, endpoint: Endpoint) -> tf.Tensor:
    """Validates one request inside the graph; returns `inputs` with its static shape.

    A SavedModel served by TF Serving or run by `saved_model_cli` feeds the request
    straight into the graph: the signature's declared shape is not enforced there, and
    a tensor of another rank reaching a convolution aborts the whole process (oneDNN
    "Check failed"). So every check here runs as an op the model's first op depends on,
    and fails with an `InvalidArgumentError` that names the signature, the input, the
    shape or value received and what was expected. The signature itself is declared
    with an unknown rank (see `serving_spec`) so that graph optimisation cannot fold
    these checks away on the strength of the declared shape.

    Checks: rank, every non-batch dimension (`None` in the expected shape: any size but
    0), a non-empty batch, and for float inputs that every value is finite (and within
    `endpoint.value_range` when it has one). Integer inputs are finite by nature and
    every int16 / uint8 value is legal.
    """
    name, signature = endpoint.spec.name, endpoint.signature
    expected = endpoint.spec.shape  # [None, *inner]
    rank = expected.rank
    # No quotes around names: TF escapes them in the message.
    what = f"{signature}: input {name} must be {endpoint.spec.dtype.name} of shape"
    shown = "[batch, " + ", ".join("samples" if d is None else str(d) for d in expected[1:]) + "]"
    if None in expected[1:]:
        shown += " with samples >= 1"
    # Real ops (not tf.rank / tf.shape's static shortcuts): the input's rank is unknown.
    shape = tf.raw_ops.Shape(input=inputs, out_type=tf.int32)
    rank_ok = tf.equal(tf.raw_ops.Size(input=shape, out_type=tf.int32), rank)
    # Padded so that indexing is safe when the rank is wrong (that check then fails).
    dims = tf.concat([shape, tf.ones([rank], tf.int32)], 0)[:rank]
    dims_ok = tf.constant(True)
    for axis, size in enumerate(expected[1:], start=1):
        dims_ok &= dims[axis] >= 1 if size is None else tf.equal(dims[axis], size)
    checks = [
        tf.debugging.Assert(
            rank_ok, [f"{what} {shown}; got a tensor of shape", shape], summarize=8
        ),
        tf.debugging.Assert(
            tf.logical_not(rank_ok) | dims_ok,
            [f"{what} {shown}; got shape", shape],
            summarize=rank + 1,
        ),
        tf.debugging.Assert(
            tf.logical_not(rank_ok) | (dims[0] >= 1),
            [f"{what} {shown} with at least one example; got an empty batch of shape", shape],
        ),
    ]
    with tf.control_dependencies(checks):
        inputs = tf.identity(inputs)
    if inputs.dtype.is_floating:
        inputs = tf.debugging.check_numerics(
            inputs, f"{signature}: input {name} must hold finite values (no NaN or Inf)"
        )
        if endpoint.value_range is not None:
            low, high = endpoint.value_range
            in_range = tf.reduce_all((inputs >= low) & (inputs <= high))
            smallest, largest = tf.reduce_min(inputs), tf.reduce_max(inputs)
            check = tf.debugging.Assert(
                in_range,
                [
                    f"{signature}: input {name} must hold values in [{low:g}, {high:g}]; "
                    "got values from",
                    smallest,
                    "to",
                    largest,
                ],
            )
            with tf.control_dependencies([check]):
                inputs = tf.identity(inputs)
    return tf.ensure_shape(inputs, expected)


def serving_spec(endpoint: Endpoint) -> tf.TensorSpec:
    """The signature's declared input: the endpoint's dtype and name, any shape.

    The expected shape is checked inside the graph (`_request_checks`); declaring it
    here instead would let Grappler fold those checks into constants, while TF Serving
    and `saved_model_cli` still feed tensors of any shape.
    """
    return tf.TensorSpec(None, endpoint.spec.dtype, name=endpoint.spec.name)


# Recorded-rate samples kept on each side of the 1-s window before resampling: more than
# the resampling filter's half-length (`audio.lowpass_filter(2, 1)` has 41 taps at 16 kHz,
# so it reaches 10 samples at 8 kHz), so the window's samples come out exactly as if the
# whole clip had been resampled.
_RESAMPLE_MARGIN = 16


def _upsample(waveforms: tf.Tensor, descriptor: Dataset) -> tf.Tensor:
    """Clips at the recorded rate `[batch, samples]` -> the 1-s window at 16 kHz.

    Crops to the part of the clip that can reach the 16,000-sample window (plus
    `_RESAMPLE_MARGIN`) *before* resampling, so a long clip costs what a 1-s one does
    (resampling a 20-minute clip whole took 3.5 GB). The result equals
    `audio.fix_length(audio.resample_poly(clip, up, 1), align=descriptor.align)` of the
    whole clip, as the dataset's loader reads it.

    Returns:
        float32 `[batch, samples']`: the window (16,000 samples) for a clip longer than
        1 s, else the whole clip at 16 kHz, to be padded by `descriptor.prepare`.
    """
    up = descriptor.raw_input.sample_rate // descriptor.raw_input.recorded_rate
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    n = tf.shape(waveforms)[1]
    # Where `fix_length` starts its window in the 16 kHz clip.
    start = tf.maximum(up * n - audio.CLIP_SAMPLES, 0) // 2 if descriptor.align == "center" else 0
    first = tf.maximum(start // up - _RESAMPLE_MARGIN, 0)
    last = tf.minimum((start + audio.CLIP_SAMPLES) // up + 1 + _RESAMPLE_MARGIN, n)
    resampled = tf.map_fn(
        lambda clip: audio.resample_poly(clip, up, 1),
        waveforms[:, first:last],
        fn_output_signature=tf.TensorSpec([None], tf.float32),
    )
    offset = start - up * first
    return resampled[:, offset : offset + audio.CLIP_SAMPLES]


def _image_endpoints(descriptor: Dataset) -> list[Endpoint]:
    raw = descriptor.raw_input
    shape = [None, *raw.shape]
    return [
        Endpoint(
            "serving_default",
            tf.TensorSpec(shape, tf.uint8, name=raw.name),
            descriptor.preprocess,
            lambda pixels: np.round(pixels * 255.0).astype(np.uint8),
        ),
        Endpoint(
            "serving_float",
            tf.TensorSpec(shape, tf.float32, name=raw.name),
            descriptor.features,
            lambda pixels: pixels.astype(np.float32),
            # A client sending 0-255 floats would get confident nonsense.
            value_range=(0.0, 1.0),
        ),
    ]


def _waveform_endpoints(descriptor: Dataset) -> list[Endpoint]:
    raw = descriptor.raw_input
    shape = [None, *raw.shape]

    def pcm16_to_features(samples):
        # int16 full scale is 32768, as in `tf.audio.decode_wav` and librosa.
        return descriptor.preprocess(tf.cast(samples, tf.float32) / 32768.0)

    endpoints = [
        Endpoint(
            "serving_default",
            tf.TensorSpec(shape, tf.float32, name=raw.name),
            descriptor.preprocess,
            lambda waves: waves.astype(np.float32),
        ),
        Endpoint(
            "serving_pcm16",
            tf.TensorSpec(shape, tf.int16, name=raw.name),
            pcm16_to_features,
            lambda waves: np.clip(np.round(waves * 32768.0), -32768, 32767).astype(np.int16),
        ),
    ]
    if raw.recorded_rate and raw.recorded_rate != raw.sample_rate:
        step = raw.sample_rate // raw.recorded_rate
        endpoints.append(
            Endpoint(
                f"serving_{raw.recorded_rate // 1000}khz",
                tf.TensorSpec(shape, tf.float32, name=raw.name),
                lambda waves: descriptor.preprocess(_upsample(waves, descriptor)),
                # Every `step`-th sample of the 16 kHz warm-up clip: a clip at the recorded rate.
                lambda waves: waves[:, ::step].astype(np.float32),
            )
        )
    return endpoints


def endpoints(descriptor: Dataset) -> list[Endpoint]:
    """The signatures of a model for `descriptor`'s data, `serving_default` first.

    Args:
        descriptor: The dataset (`sparse_keras.data.dataset(name)`).

    Returns:
        One `Endpoint` per signature; the last is `serving_features`.
    """
    if descriptor.raw_input.dtype == "uint8":
        raw = _image_endpoints(descriptor)
    else:
        raw = _waveform_endpoints(descriptor)
    default = raw[0]
    features = Endpoint(
        "serving_features",
        tf.TensorSpec([None, *descriptor.feature_shape], tf.float32, name="features"),
        lambda features: tf.convert_to_tensor(features, tf.float32),
        lambda signals: default.to_features(default.from_signals(signals)).numpy(),
    )
    return [*raw, features]


def serving_function(model, endpoint: Endpoint, class_names: tf.Tensor) -> Callable:
    """The signature's function: checked request -> features -> network -> the answers."""

    def serve(inputs):
        inputs = _request_checks(inputs, endpoint)
        logits = model(endpoint.to_features(inputs), training=False)
        # Softmax in float32 even for a mixed-precision model, as a client expects.
        logits = tf.cast(logits, tf.float32)
        class_ids = tf.argmax(logits, axis=-1, output_type=tf.int64)
        return {
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "class_ids": class_ids,
            "class_names": tf.gather(class_names, class_ids),
        }

    return serve
