"""Export a model as a TensorFlow Serving SavedModel that takes the raw input.

The zoo's networks map *features* (normalised MNIST images, log-mel spectrograms) to
*logits*. A served model should take what a client actually has, so the exported
graph puts the dataset's preprocessing in front of the network and a softmax behind
it:

| dataset | `serving_default` input | other signatures |
| --- | --- | --- |
| mnist | `images`: uint8 `[batch, 28, 28]` (0-255) | `serving_float` (`images`, float32 in [0, 1]), `serving_features` |
| gsc, fsdd | `waveforms`: float32 `[batch, samples]`, 16 kHz in [-1, 1], any length | `serving_pcm16` (`waveforms`, int16 PCM), `serving_features` |
| fsdd | | `serving_8khz` (`waveforms`, float32 at FSDD's own 8 kHz, resampled inside) |

Audio is padded with zeros or cropped to 1 s as the dataset's training pipeline does
it: at the end for GSC (the paper's `FixAudioLength`), centred for FSDD's trimmed
clips (`fsdd.load`'s default).

`serving_features` (input `features`) takes the network's own input, for clients
that compute features themselves. Every signature returns `probabilities` (float32
`[batch, classes]`), `class_ids` (int64 `[batch]`) and `class_names` (string
`[batch]`). The network runs in inference mode: k-winners keep
`round(k * k_inference_factor)` winners with frozen duty cycles, batch norm uses its
moving statistics, dropout is off.

Every signature checks its request inside the graph before any model op runs, and
answers a bad one with an `InvalidArgumentError` (HTTP 400 / gRPC INVALID_ARGUMENT from
TF Serving) that names the signature, the input, what it got and what it expects: the
rank and the non-batch dimensions of the table, a batch of at least one example, audio
of at least one sample, float values that are all finite (no NaN or Inf), and
`serving_float` pixels in [0, 1]. The signatures therefore declare their input with an
unknown shape (`saved_model_cli show` prints `unknown_rank`): TF Serving does not
enforce a declared shape, and declaring one would let graph optimisation drop the
checks, so that a request of the wrong rank could reach a convolution and abort the
server. A request of the wrong dtype is refused by TensorFlow itself before the graph
runs. Waveform amplitudes are not range-checked: the log-mel features are relative to
each clip's maximum, so a clip at another scale gives (nearly) the same features.

The directory layout is the one TF Serving polls: `<export_dir>/<model_name>/<version>/`
with `saved_model.pb`, `variables/` and `assets.extra/tf_serving_warmup_requests`
(a few real requests the server replays on load, so the first client does not pay
for graph optimisation).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import uuid
import warnings
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from sparse_keras.data import audio, fsdd, gsc, mnist
from sparse_keras.data.download import data_root, remove_created_folders

DATASETS = ("mnist", "gsc", "fsdd")
FEATURE_SHAPES = {
    "mnist": mnist.IMAGE_SHAPE,
    "gsc": audio.FEATURE_SHAPE,
    "fsdd": audio.FEATURE_SHAPE,
}
# Where a clip shorter or longer than 1 s sits in the window, as each training
# pipeline has it: GSC pads/crops at the end (the paper's FixAudioLength), FSDD's
# trimmed clips are centred (`fsdd.load(align="center")`, its default).
AUDIO_ALIGN = {"gsc": "start", "fsdd": "center"}
WARMUP_FILE = "tf_serving_warmup_requests"
OUTPUT_NAMES = ("probabilities", "class_ids", "class_names")
# Examples in the warm-up file; requests of batch 1 and of all of them, per signature.
WARMUP_EXAMPLES = 4

# Ops that must not be in a serving graph: Python callbacks cannot be loaded by a
# C++ server, and variable updates mean a training-mode code path was traced.
_PYTHON_CALLBACK_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
_STATE_UPDATE_PREFIXES = ("Assign", "ResourceApply", "ResourceSparseApply", "ResourceScatter")
_VALID_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclasses.dataclass(frozen=True)
class _Endpoint:
    """One signature: its raw input and how that input becomes the network's features."""

    signature: str
    spec: tf.TensorSpec
    to_features: Callable[[tf.Tensor], tf.Tensor]
    # Turns the dataset's raw warm-up examples into this signature's input.
    from_raw: Callable[[np.ndarray], np.ndarray]
    # Inclusive bounds every value must lie in (None: any finite value).
    value_range: tuple[float, float] | None = None


def _request_checks(inputs: tf.Tensor, endpoint: _Endpoint) -> tf.Tensor:
    """Validates one request inside the graph; returns `inputs` with its static shape.

    A SavedModel served by TF Serving or run by `saved_model_cli` feeds the request
    straight into the graph: the signature's declared shape is not enforced there, and
    a tensor of another rank reaching a convolution aborts the whole process (oneDNN
    "Check failed"). So every check here runs as an op the model's first op depends on,
    and fails with an `InvalidArgumentError` that names the signature, the input, the
    shape or value received and what was expected. The signature itself is declared
    with an unknown rank (see `_serving_spec`) so that graph optimisation cannot fold
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


def _serving_spec(endpoint: _Endpoint) -> tf.TensorSpec:
    """The signature's declared input: the endpoint's dtype and name, any shape.

    The expected shape is checked inside the graph (`_request_checks`); declaring it
    here instead would let Grappler fold those checks into constants, while TF Serving
    and `saved_model_cli` still feed tensors of any shape.
    """
    return tf.TensorSpec(None, endpoint.spec.dtype, name=endpoint.spec.name)


def mnist_features(pixels: tf.Tensor) -> tf.Tensor:
    """MNIST pixels in [0, 1] → the networks' normalised input (as `mnist.load` makes it).

    Args:
        pixels: float `[batch, 28, 28]`.

    Returns:
        float32 `[batch, 28, 28, 1]`, `(pixels - 0.1307) / 0.3081`.
    """
    return mnist.normalize_images(tf.convert_to_tensor(pixels, tf.float32))[..., None]


def audio_features(waveforms: tf.Tensor, align: str = "start") -> tf.Tensor:
    """16 kHz waveforms → the networks' log-mel input, as the GSC/FSDD pipelines make it.

    Pads with zeros or crops to 16,000 samples (`audio.fix_length`), then the paper's
    log-mel spectrogram (`audio.log_mel`).

    Args:
        waveforms: float `[batch, samples]` in [-1, 1], any number of samples.
        align: Where a clip sits in the 1-s window: "start" (GSC, the paper's
            `FixAudioLength`) or "center" (the FSDD pipeline's default).

    Returns:
        float32 `[batch, 32, 32, 1]` in [-80, 0] dB.
    """
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    return audio.log_mel(audio.fix_length(waveforms, audio.CLIP_SAMPLES, align=align))


# 8 kHz samples kept on each side of the 1-s window before resampling: more than the
# resampling filter's half-length (`audio.lowpass_filter(2, 1)` has 41 taps at 16 kHz,
# so it reaches 10 samples at 8 kHz), so the window's samples come out exactly as if
# the whole clip had been resampled.
_RESAMPLE_MARGIN = 16


def _upsample_fsdd(waveforms: tf.Tensor) -> tf.Tensor:
    """8 kHz `[batch, samples]` → the centred 1-s window at 16 kHz, FSDD's own resampler.

    Crops to the part of the clip that can reach the centred 16,000-sample window
    (plus `_RESAMPLE_MARGIN`) *before* resampling, so a long clip costs what a 1-s
    one does (resampling a 20-minute clip whole took 3.5 GB). The result equals
    `audio.fix_length(resample_poly(clip, 2, 1), align="center")` of the whole clip.

    Returns:
        float32 `[batch, samples']`: the window (16,000 samples) for a clip longer than
        1 s, else the whole clip at 16 kHz, to be padded by `audio_features`.
    """
    up = audio.SAMPLE_RATE // fsdd.SAMPLE_RATE
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    n = tf.shape(waveforms)[1]
    # Where `fix_length(align="center")` starts its window in the 16 kHz clip.
    start = tf.maximum(up * n - audio.CLIP_SAMPLES, 0) // 2
    first = tf.maximum(start // up - _RESAMPLE_MARGIN, 0)
    last = tf.minimum((start + audio.CLIP_SAMPLES) // up + 1 + _RESAMPLE_MARGIN, n)
    resampled = tf.map_fn(
        lambda clip: audio.resample_poly(clip, up, 1),
        waveforms[:, first:last],
        fn_output_signature=tf.TensorSpec([None], tf.float32),
    )
    offset = start - up * first
    return resampled[:, offset : offset + audio.CLIP_SAMPLES]


def _endpoints(dataset: str) -> list[_Endpoint]:
    if dataset == "mnist":

        def uint8_to_features(images):
            return mnist_features(tf.cast(images, tf.float32) / 255.0)

        raw = [
            _Endpoint(
                "serving_default",
                tf.TensorSpec([None, 28, 28], tf.uint8, name="images"),
                uint8_to_features,
                lambda images: images.astype(np.uint8),
            ),
            _Endpoint(
                "serving_float",
                tf.TensorSpec([None, 28, 28], tf.float32, name="images"),
                mnist_features,
                lambda images: images.astype(np.float32) / 255.0,
                # A client sending 0-255 floats would get confident nonsense.
                value_range=(0.0, 1.0),
            ),
        ]
    else:
        align = AUDIO_ALIGN[dataset]

        def float_to_features(waveforms):
            return audio_features(waveforms, align)

        def pcm16_to_features(samples):
            # int16 full scale is 32768, as in `tf.audio.decode_wav` and librosa.
            return audio_features(tf.cast(samples, tf.float32) / 32768.0, align)

        raw = [
            _Endpoint(
                "serving_default",
                tf.TensorSpec([None, None], tf.float32, name="waveforms"),
                float_to_features,
                lambda waves: waves.astype(np.float32),
            ),
            _Endpoint(
                "serving_pcm16",
                tf.TensorSpec([None, None], tf.int16, name="waveforms"),
                pcm16_to_features,
                lambda waves: np.clip(np.round(waves * 32768.0), -32768, 32767).astype(np.int16),
            ),
        ]
        if dataset == "fsdd":
            raw.append(
                _Endpoint(
                    "serving_8khz",
                    tf.TensorSpec([None, None], tf.float32, name="waveforms"),
                    lambda waves: float_to_features(_upsample_fsdd(waves)),
                    # Every other sample of the 16 kHz warm-up clip: an 8 kHz clip.
                    lambda waves: waves[:, ::2].astype(np.float32),
                )
            )
    default = raw[0]
    features = _Endpoint(
        "serving_features",
        tf.TensorSpec([None, *FEATURE_SHAPES[dataset]], tf.float32, name="features"),
        lambda features: tf.convert_to_tensor(features, tf.float32),
        lambda examples: default.to_features(default.from_raw(examples)).numpy(),
    )
    return [*raw, features]


def _check_model(model) -> None:
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            f"export_for_serving expects a keras.Model, got {type(model).__name__}: {model!r}."
        )
    if not model.built or not model.weights:
        raise ValueError(
            f"Model {model.name!r} ({type(model).__name__}) has not been built: it has no "
            "weights yet. Call it once on a batch of features (or build it with "
            "`model.build(input_shape)`), or load trained weights, before exporting."
        )


def _known_input_shape(model) -> tuple | None:
    """The model's feature shape without the batch axis, or None if it has none recorded."""
    try:
        shape = model.input_shape
    except (AttributeError, ValueError, TypeError):
        return None  # a subclassed model: no recorded inputs
    if isinstance(shape, list | dict) or (shape and isinstance(shape[0], tuple | list)):
        raise ValueError(
            f"Model {model.name!r} has several inputs {shape}; export_for_serving supports "
            "single-input networks (features → logits)."
        )
    return tuple(shape[1:])


def _resolve_dataset(model, dataset: str | None) -> str:
    input_shape = _known_input_shape(model)
    if dataset is not None:
        if dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
        if input_shape is not None and input_shape != tuple(FEATURE_SHAPES[dataset]):
            raise ValueError(
                f"Model {model.name!r} takes features of shape {input_shape}, but dataset "
                f"{dataset!r} gives {FEATURE_SHAPES[dataset]}."
            )
        return dataset
    if input_shape is None:
        raise ValueError(
            f"Cannot infer the dataset of model {model.name!r}: it records no input shape "
            f"(subclassed model?). Pass dataset= one of {DATASETS}."
        )
    if input_shape == tuple(mnist.IMAGE_SHAPE):
        return "mnist"
    if input_shape == tuple(audio.FEATURE_SHAPE):
        # GSC and FSDD share the features but not the clip alignment; zoo names start
        # with the dataset the weights were trained on (DESIGN.md), so use that.
        return "fsdd" if model.name.startswith("fsdd") else "gsc"
    raise ValueError(
        f"Cannot infer the dataset of model {model.name!r} from its input shape {input_shape}: "
        f"expected {tuple(mnist.IMAGE_SHAPE)} (mnist) or {tuple(audio.FEATURE_SHAPE)} (gsc/fsdd). "
        "Pass dataset= explicitly."
    )


def default_class_names(dataset: str) -> tuple[str, ...]:
    """The class names of a dataset, in the order of the networks' outputs.

    Args:
        dataset: "mnist", "gsc" or "fsdd".

    Returns:
        MNIST: "0".."9". GSC: `sparse_keras.data.gsc.CLASS_NAMES` (12: "unknown",
        "silence", "zero".."nine"). FSDD: its loader's names, which share GSC's ids.

    Example:

    >>> default_class_names("mnist")[:3]
    ('0', '1', '2')
    """
    if dataset == "mnist":
        return tuple(mnist.CLASS_NAMES)
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
    return tuple(fsdd.CLASS_NAMES if dataset == "fsdd" else gsc.CLASS_NAMES)


def _num_classes(model, features_spec: tf.TensorSpec) -> int:
    try:
        output_shape = model.output_shape
    except (AttributeError, ValueError, TypeError):
        # A subclassed model records no output: trace it once to find out.
        output_shape = tuple(
            tf.function(lambda x: model(x, training=False), autograph=False)
            .get_concrete_function(features_spec)
            .structured_outputs.shape
        )
    if not isinstance(output_shape, tuple) or len(output_shape) != 2 or output_shape[-1] is None:
        raise ValueError(
            f"Model {model.name!r} outputs shape {output_shape}; export_for_serving expects "
            "one logits tensor of shape (batch, classes)."
        )
    return int(output_shape[-1])


def _serving_function(model, endpoint: _Endpoint, class_names: tf.Tensor) -> Callable:
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


def _graph_op_names(concrete_function) -> list[tuple[str, str]]:
    """(op type, node name) of every op, including those in nested functions."""
    graph_def = concrete_function.graph.as_graph_def()
    ops = [(node.op, node.name) for node in graph_def.node]
    for function in graph_def.library.function:
        ops += [(node.op, f"{function.signature.name}/{node.name}") for node in function.node_def]
    return ops


def _check_graph(model, signature: str, concrete_function) -> None:
    ops = _graph_op_names(concrete_function)
    callbacks = [name for op, name in ops if op in _PYTHON_CALLBACK_OPS]
    if callbacks:
        raise ValueError(
            f"Model {model.name!r} cannot be served: its {signature!r} graph calls back into "
            f"Python ({', '.join(callbacks[:5])}), which TF Serving cannot run. Replace the "
            "tf.py_function / tf.numpy_function in that layer with TensorFlow ops."
        )
    updates = [f"{name} ({op})" for op, name in ops if op.startswith(_STATE_UPDATE_PREFIXES)]
    if updates:
        raise ValueError(
            f"Model {model.name!r} updates variables in inference mode ({', '.join(updates[:5])}): "
            f"the {signature!r} graph would change the model on every request. Make that layer "
            "update its state only when called with training=True."
        )


def _check_writable_folder(folder: pathlib.Path) -> None:
    """Refuses, before any work, a target folder that cannot be created or written.

    Checks the folder itself if it exists, else its nearest existing ancestor: each
    must be a folder (not a file) with write permission.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"Cannot export into {folder}: {existing} is a file, not a folder. Pass a folder "
            "as export_dir."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"Cannot export into {folder}: no write permission in {existing}.")


def _serving_api_available() -> bool:
    try:
        from tensorflow_serving.apis import prediction_log_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def _next_version(model_dir: pathlib.Path) -> int:
    versions = (
        [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if model_dir.is_dir()
        else []
    )
    return max(versions, default=0) + 1


def write_warmup_requests(
    path: str | os.PathLike,
    model_name: str,
    requests: Sequence[tuple[str, dict[str, np.ndarray]]],
) -> pathlib.Path:
    """Writes TF Serving warm-up requests: a TFRecord of `PredictionLog` protos.

    Args:
        path: The file to write, normally
            `<version dir>/assets.extra/tf_serving_warmup_requests`.
        model_name: The name the server serves the model under (`MODEL_NAME`).
        requests: `(signature_name, {input_name: array})` pairs, one per request.

    Returns:
        The path written.

    Example:

    >>> path = write_warmup_requests(
    ...     "m/1/assets.extra/tf_serving_warmup_requests", "mnist",
    ...     [("serving_default", {"images": np.zeros([1, 28, 28], np.uint8)})])
    >>> path.stat().st_size > 0
    True
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as err:
        raise ImportError(
            "Writing TF Serving warm-up requests needs the tensorflow-serving-api package: "
            "pip install 'sparse_keras[serving]'."
        ) from err
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for name, array in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def _real_mnist_images(count: int) -> np.ndarray | None:
    try:
        images, _ = mnist.load_arrays("test", download=False)
    except (FileNotFoundError, ValueError):
        return None
    return images[:count]


def _gsc_test_waveforms(count: int) -> list[tf.Tensor]:
    """Digit clips of the official test list, read as `gsc.load` reads them."""
    root = data_root(None, "gsc")
    # The full tree where `gsc.find_tree` looks, else any tree below the data folder
    # (such as the 300-clip `sample_v0.01`).
    trees = [None, *sorted(p for p in root.glob("*") if p.is_dir())] if root.is_dir() else [None]
    for tree in trees:
        try:
            paths, _ = gsc.list_clips("test", data_dir=tree, download=False, check_files=False)
        except (FileNotFoundError, ValueError):
            continue
        if paths:
            return [
                audio.fix_length(audio.decode_wav(tf.constant(str(p)), gsc.SAMPLE_RATE))
                for p in paths[:count]
            ]
    return []


def _fsdd_test_waveforms(count: int) -> list[tf.Tensor]:
    """FSDD test clips, read (8 → 16 kHz, centred) as `fsdd.load` reads them."""
    try:
        paths, _ = fsdd.list_clips("test", download=False, check_files=False)
    except (FileNotFoundError, ValueError):
        return []
    # Spread over the sorted list, so different digits and speakers.
    chosen = paths[:: max(1, len(paths) // count)][:count]
    return [fsdd.load_waveform(tf.constant(str(p))) for p in chosen]


def warmup_examples(dataset: str, count: int = WARMUP_EXAMPLES) -> np.ndarray:
    """Raw test inputs for warm-up requests: real ones when the data is at hand.

    Args:
        dataset: "mnist", "gsc" or "fsdd".
        count: Number of examples.

    Returns:
        MNIST: uint8 `[count, 28, 28]` test images (zeros if MNIST is not on disk).
        Audio: float32 `[count, 16000]` 16 kHz test clips, as the dataset's pipeline
        reads them (silence if none is on disk).
    """
    if dataset == "mnist":
        images = _real_mnist_images(count)
        return images if images is not None else np.zeros([count, 28, 28], np.uint8)
    try:
        clips = _fsdd_test_waveforms(count) if dataset == "fsdd" else _gsc_test_waveforms(count)
    except (OSError, tf.errors.OpError):  # an unreadable clip: warm up on silence instead
        clips = []
    if not clips:
        return np.zeros([count, audio.CLIP_SAMPLES], np.float32)
    waves = np.stack([clip.numpy() for clip in clips])
    # Fewer real clips than asked for: repeat them, the server only needs the shapes.
    return np.resize(waves, (count, waves.shape[1])).astype(np.float32)


def export_for_serving(
    model: keras.Model,
    export_dir: str | os.PathLike,
    version: int | None = None,
    dataset: str | None = None,
    class_names: Sequence[str] | None = None,
    model_name: str | None = None,
) -> pathlib.Path:
    """Exports a features → logits network as a TF Serving model that takes raw input.

    Writes `<export_dir>/<model_name>/<version>/` (`saved_model.pb`, `variables/`,
    `assets.extra/tf_serving_warmup_requests`). The version directory is written
    under a temporary name beside it and renamed when complete, so a server polling
    `export_dir` never loads a half-written model, and an existing version is never
    overwritten.

    Signatures (see the module docstring for the table): `serving_default` takes
    uint8 MNIST images `[batch, 28, 28]` (input `images`) or float32 16 kHz
    waveforms `[batch, samples]` of any length (input `waveforms`); `serving_float`
    (MNIST, [0, 1] floats), `serving_pcm16` (audio, int16 samples) and
    `serving_8khz` (FSDD, 8 kHz floats) take other common raw forms;
    `serving_features` takes the network's own features. All return
    `probabilities`, `class_ids` and `class_names`. Preprocessing is the training
    pipeline's own code, and the network runs with `training=False`. Each signature
    validates its request in the graph (rank, shape, non-empty batch and clip,
    finite values; see the module docstring) and answers a bad one with an
    `InvalidArgumentError`, never with a crash or a guess.

    Args:
        model: A built Keras model from features `[batch, 28, 28, 1]` (MNIST) or
            `[batch, 32, 32, 1]` (GSC/FSDD log-mel) to logits `[batch, classes]`.
        export_dir: The TF Serving base directory (what is mounted at `/models`).
        version: Version number, a positive integer; default one more than the
            highest version already in `<export_dir>/<model_name>` (1 if none).
        dataset: "mnist", "gsc" or "fsdd"; default inferred from the input shape
            (28×28×1 → mnist; 32×32×1 → fsdd if the model's name starts with "fsdd",
            else gsc). It decides the raw-input preprocessing, so pass it for an
            audio model whose name does not say.
        class_names: One name per output class; default the dataset's.
        model_name: The name TF Serving serves it under; default `model.name`.

    Returns:
        The version directory written.

    Raises:
        ValueError: unbuilt model, unknown or mismatching dataset, class names that do
            not match the output width, a graph TF Serving cannot run (Python
            callbacks, variable updates in inference mode), a bad name or version, or
            an `export_dir` that is a file or not writable (checked before any work;
            a failed export leaves nothing behind).
        FileExistsError: if the version directory already exists.
        TypeError: if `model` is not a Keras model.

    Example:

    >>> model = sparse_keras.models.build("mnist_sparse_cnn2", seed=0)
    >>> path = export_for_serving(model, "serving")
    >>> path.as_posix()
    'serving/mnist_sparse_cnn2/1'
    """
    _check_model(model)
    dataset = _resolve_dataset(model, dataset)
    model_name = model.name if model_name is None else model_name
    if not isinstance(model_name, str) or not _VALID_MODEL_NAME.fullmatch(model_name):
        raise ValueError(
            f"Invalid model name {model_name!r}: use letters, digits, '_', '-' and '.' "
            "(it becomes a directory and the name clients call)."
        )
    endpoints = _endpoints(dataset)
    num_classes = _num_classes(model, endpoints[-1].spec)
    names = tuple(default_class_names(dataset) if class_names is None else class_names)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"class_names must be strings, got {names!r}.")
    if len(names) != num_classes:
        raise ValueError(
            f"{len(names)} class names {names} for model {model.name!r}, which has "
            f"{num_classes} outputs. Pass class_names= with exactly one name per output."
        )

    model_dir = pathlib.Path(export_dir).expanduser() / model_name
    if version is None:
        version = _next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, int | np.integer) or version < 1:
        raise ValueError(
            f"version must be a positive integer (TF Serving's version), got {version!r}."
        )
    version_dir = model_dir / str(int(version))
    if version_dir.exists():
        raise FileExistsError(
            f"{version_dir} already exists: version {version} of {model_name!r} was exported "
            "before. Pass another version (or none, for the next free one) or remove it."
        )

    _check_writable_folder(model_dir)

    archive = keras.export.ExportArchive()
    class_names_tensor = tf.constant(names, tf.string)
    for endpoint in endpoints:
        function = archive.add_endpoint(
            endpoint.signature,
            _serving_function(model, endpoint, class_names_tensor),
            input_signature=[_serving_spec(endpoint)],
        )
        try:
            concrete = function.get_concrete_function()
        except Exception as err:  # any tracing failure of user code, reported uniformly
            raise ValueError(
                f"Could not trace model {model.name!r} for the {endpoint.signature!r} signature "
                f"(input {endpoint.spec}): {type(err).__name__}: {err}"
            ) from err
        _check_graph(model, endpoint.signature, concrete)

    raw = warmup_examples(dataset)
    requests = []
    for endpoint in endpoints:
        example = endpoint.from_raw(raw)
        requests += [(endpoint.signature, {endpoint.spec.name: example[:1]})]
        requests += [(endpoint.signature, {endpoint.spec.name: example})]

    created = [p for p in (model_dir, *model_dir.parents) if not p.exists()]
    model_dir.mkdir(parents=True, exist_ok=True)
    # A non-numeric name, so a polling server ignores it until the rename.
    staging = model_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    exported = False
    try:
        try:
            archive.write_out(str(staging), verbose=False)
        except Exception as err:
            raise ValueError(
                f"Could not save model {model.name!r} as a SavedModel: {type(err).__name__}: {err}"
            ) from err
        if _serving_api_available():
            write_warmup_requests(staging / "assets.extra" / WARMUP_FILE, model_name, requests)
        else:
            warnings.warn(
                "tensorflow-serving-api is not installed, so no warm-up requests were written "
                f"to {WARMUP_FILE}: the model serves, but its first requests will be slow. "
                "pip install 'sparse_keras[serving]' to get them.",
                stacklevel=2,
            )
        if version_dir.exists():  # exported by someone else meanwhile
            raise FileExistsError(f"{version_dir} appeared while exporting; not overwriting it.")
        os.rename(staging, version_dir)
        exported = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not exported:
            remove_created_folders(created)  # deepest first, only while empty
    return version_dir
