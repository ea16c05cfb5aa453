"""Writing a model as a TF Serving SavedModel: checks, signatures, warm-up file, versions.

`export_for_serving` checks the model, resolves its dataset (`sparse_keras.data`),
traces one signature per raw input (`sparse_keras.export.signatures`), refuses a graph
TF Serving cannot run, and writes the version folder atomically with its warm-up
requests.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import uuid
import warnings
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from sparse_keras import data
from sparse_keras.data.download import data_root, remove_created_folders
from sparse_keras.export import signatures

WARMUP_FILE = "tf_serving_warmup_requests"
# Examples in the warm-up file; requests of batch 1 and of all of them, per signature.
WARMUP_EXAMPLES = 4

# Ops that must not be in a serving graph: Python callbacks cannot be loaded by a
# C++ server, and variable updates mean a training-mode code path was traced.
_PYTHON_CALLBACK_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
_STATE_UPDATE_PREFIXES = ("Assign", "ResourceApply", "ResourceSparseApply", "ResourceScatter")
_VALID_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


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


def _resolve_dataset(model, dataset: str | None) -> data.Dataset:
    input_shape = _known_input_shape(model)
    if dataset is not None:
        descriptor = data.dataset(dataset)
        if input_shape is not None and input_shape != tuple(descriptor.feature_shape):
            raise ValueError(
                f"Model {model.name!r} takes features of shape {input_shape}, but dataset "
                f"{dataset!r} gives {descriptor.feature_shape}."
            )
        return descriptor
    if input_shape is None:
        raise ValueError(
            f"Cannot infer the dataset of model {model.name!r}: it records no input shape "
            f"(subclassed model?). Pass dataset= one of {tuple(data.DATASETS)}."
        )
    shapes: dict[tuple, list[str]] = {}
    for descriptor in data.DATASETS.values():
        shapes.setdefault(tuple(descriptor.feature_shape), []).append(descriptor.name)
    if input_shape not in shapes:
        expected = " or ".join(f"{shape} ({'/'.join(names)})" for shape, names in shapes.items())
        raise ValueError(
            f"Cannot infer the dataset of model {model.name!r} from its input shape "
            f"{input_shape}: expected {expected}. Pass dataset= explicitly."
        )
    # Datasets of one feature shape (GSC, FSDD) differ in their raw input; zoo names start
    # with the dataset the weights were trained on (DESIGN.md), so use that, else the first.
    named = data.for_model(model.name, input_shape)
    return named or data.dataset(shapes[input_shape][0])


def default_class_names(dataset: str) -> tuple[str, ...]:
    """The class names of a dataset, in the order of the networks' outputs.

    Args:
        dataset: A name in `sparse_keras.data.DATASETS`.

    Returns:
        Its descriptor's `class_names`: MNIST "0".."9"; GSC 12 ("unknown", "silence",
        "zero".."nine"); FSDD the same ids as GSC.

    Example:

    >>> default_class_names("mnist")[:3]
    ('0', '1', '2')
    """
    return data.dataset(dataset).class_names


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


def _clean_signals(descriptor: data.Dataset, count: int) -> np.ndarray | None:
    """The first `count` clean test signals of the dataset, if any are on disk (no download).

    Looks where the dataset's loader looks, then in each folder below the dataset's
    data folder (such as GSC's 300-clip `sample_v0.01`).
    """
    root = data_root(None, descriptor.name)
    folders = [None, *sorted(p for p in root.glob("*") if p.is_dir())] if root.is_dir() else [None]
    for folder in folders:
        try:
            clean = descriptor.clean_test_set(folder, count, download=False)
            if isinstance(clean, tuple):
                signals = clean[0]
            else:
                signals = np.stack([signal.numpy() for signal, _ in clean])
        except (OSError, ValueError, tf.errors.OpError):
            continue
        if len(signals):
            return signals
    return None


def warmup_examples(dataset: str, count: int = WARMUP_EXAMPLES) -> np.ndarray:
    """Clean test signals for warm-up requests: real ones when the data is at hand.

    Args:
        dataset: A name in `sparse_keras.data.DATASETS`.
        count: Number of examples.

    Returns:
        The dataset's signals (see `sparse_keras.data.Dataset`): MNIST float32
        `[count, 28, 28]` test images in `[0, 1]` (blank if MNIST is not on disk); audio
        float32 `[count, 16000]` 16 kHz test clips as the dataset's pipeline reads them
        (silence if none is on disk).

    Example:

    >>> warmup_examples("mnist", count=2).shape
    (2, 28, 28)
    """
    descriptor = data.dataset(dataset)
    signals = _clean_signals(descriptor, count)
    if signals is None:
        raw = descriptor.raw_input
        blank = np.zeros([count, *(1 if size is None else size for size in raw.shape)], raw.dtype)
        return np.asarray(descriptor.prepare(blank), np.float32)
    # Fewer real examples than asked for: repeat them, the server only needs the shapes.
    return np.resize(signals, (count, *signals.shape[1:])).astype(np.float32)


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
        dataset: A name in `sparse_keras.data.DATASETS` ("mnist", "gsc", "gsc12v2",
            "fsdd"); default inferred from the input shape (28×28×1 → mnist; 32×32×1 →
            the audio dataset the model's name starts with, else gsc). It decides the
            raw-input preprocessing, so pass it for an audio model whose name does not say.
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
    descriptor = _resolve_dataset(model, dataset)
    model_name = model.name if model_name is None else model_name
    if not isinstance(model_name, str) or not _VALID_MODEL_NAME.fullmatch(model_name):
        raise ValueError(
            f"Invalid model name {model_name!r}: use letters, digits, '_', '-' and '.' "
            "(it becomes a directory and the name clients call)."
        )
    endpoints = signatures.endpoints(descriptor)
    num_classes = _num_classes(model, endpoints[-1].spec)
    names = tuple(descriptor.class_names if class_names is None else class_names)
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
            signatures.serving_function(model, endpoint, class_names_tensor),
            input_signature=[signatures.serving_spec(endpoint)],
        )
        try:
            concrete = function.get_concrete_function()
        except Exception as err:  # any tracing failure of user code, reported uniformly
            raise ValueError(
                f"Could not trace model {model.name!r} for the {endpoint.signature!r} signature "
                f"(input {endpoint.spec}): {type(err).__name__}: {err}"
            ) from err
        _check_graph(model, endpoint.signature, concrete)

    clean = warmup_examples(descriptor.name)
    requests = []
    for endpoint in endpoints:
        example = endpoint.from_signals(clean)
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
