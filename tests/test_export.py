"""Export for TF Serving: signatures, equivalence with Keras, warm-up file, gRPC requests."""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import sparse_keras
from sparse_keras import KWinners, cli, export, models
from sparse_keras.data import audio, mnist

predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")

SAVED_MODEL_CLI = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
NUM_MNIST = 100
TOLERANCE = 1e-5


def _subprocess(args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result


def _softmax(logits) -> np.ndarray:
    return tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()


def _kwinners_variables(model) -> list:
    return [v for layer in model.layers if isinstance(layer, KWinners) for v in layer.weights]


def _crop_or_pad(waves: list[np.ndarray], length: int) -> np.ndarray:
    return np.stack([np.pad(w, (0, max(0, length - len(w))))[:length] for w in waves])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mnist_test(data_dir):
    images, labels = mnist.load_arrays("test", data_dir=data_dir / "mnist", download=False)
    return images[:NUM_MNIST], labels[:NUM_MNIST]


@pytest.fixture(scope="module")
def mnist_export(data_dir, mnist_test, tmp_path_factory):
    """mnist_sparse_cnn2 after one training step (non-zero duty cycles), exported."""
    keras.utils.set_random_seed(0)
    model = models.build("mnist_sparse_cnn2", seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    train_images, train_labels = mnist.load_arrays(
        "train", data_dir=data_dir / "mnist", download=False
    )
    x = mnist_features_np(train_images[:64])
    model.train_on_batch(x, train_labels[:64])
    duty_cycles = [
        layer.duty_cycles.numpy() for layer in model.layers if isinstance(layer, KWinners)
    ]
    assert len(duty_cycles) == 3 and all(d.max() > 0 for d in duty_cycles)

    export_dir = tmp_path_factory.mktemp("serving")
    version_dir = export.export_for_serving(model, export_dir)
    images, _ = mnist_test
    features = mnist_features_np(images)
    reference = _softmax(model(features, training=False))
    # Training mode (k winners instead of 1.5 k) changes the duty cycles: put them back.
    state = [v.numpy() for v in _kwinners_variables(model)]
    training_mode = _softmax(model(features, training=True))
    for variable, saved in zip(_kwinners_variables(model), state, strict=True):
        variable.assign(saved)
    assert np.abs(reference - training_mode).max() > 1e-3, "test cannot tell the modes apart"
    return {
        "model": model,
        "dir": version_dir,
        "export_dir": export_dir,
        "reference": reference,
        "training_mode": training_mode,
    }


def mnist_features_np(images: np.ndarray) -> np.ndarray:
    """The training pipeline's features for uint8 images (mnist.load's own steps)."""
    return mnist.normalize_images(tf.cast(images[..., None], tf.float32) / 255.0).numpy()


@pytest.fixture(scope="module")
def audio_clips(data_dir):
    """Real 16 kHz clips: GSC test clips (sample tree) and FSDD test clips (8 kHz, resampled)."""
    from sparse_keras.data import gsc

    sample_tree = data_dir / "gsc" / "sample_v0.01"
    if not sample_tree.is_dir():
        pytest.skip(f"no GSC sample tree at {sample_tree}")
    paths, _ = gsc.list_clips("test", data_dir=sample_tree, download=False)
    gsc_waves = np.stack([audio.fix_length(audio.read_wav(p)[0]).numpy() for p in paths])
    fsdd = sorted((data_dir / "fsdd" / "recordings").glob("*_theo_[0-4].wav"))[:20]
    if not fsdd:
        pytest.skip(f"no FSDD recordings in {data_dir / 'fsdd'}")
    fsdd_waves = [audio.resample_poly(audio.read_wav(p)[0], 2, 1).numpy() for p in fsdd]
    return gsc_waves, fsdd_waves


@pytest.fixture(scope="module")
def audio_export(tmp_path_factory):
    """A small gsc_sparse_cnn2 with non-zero duty cycles, exported."""
    keras.utils.set_random_seed(1)
    model = models.build("gsc_sparse_cnn2", seed=1, hidden_units=200)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, KWinners):
            layer.duty_cycles.assign(
                rng.uniform(0.0, 0.2, layer.duty_cycles.shape).astype("float32")
            )
    version_dir = export.export_for_serving(
        model, tmp_path_factory.mktemp("serving"), dataset="gsc"
    )
    return {"model": model, "dir": version_dir}


@pytest.fixture(scope="module")
def fresh_process_outputs(mnist_export, mnist_test, audio_export, audio_clips, tmp_path_factory):
    """Both exports reloaded and run in a new Python process (no Keras objects in it)."""
    work = tmp_path_factory.mktemp("fresh")
    gsc_waves, fsdd_waves = audio_clips
    inputs = {
        "images": mnist_test[0],
        "gsc": gsc_waves,
        # Shorter and longer than 1 s: padded and cropped inside the graph.
        "short": _crop_or_pad(fsdd_waves, 12000),
        "long": _crop_or_pad(fsdd_waves, 20000),
    }
    np.savez(work / "inputs.npz", **inputs)
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import tensorflow as tf

        mnist_dir, audio_dir, work = sys.argv[1:]
        x = np.load(work + "/inputs.npz")
        out = {}
        mnist = tf.saved_model.load(mnist_dir).signatures
        result = mnist["serving_default"](images=tf.constant(x["images"]))
        out["mnist_uint8"] = result["probabilities"].numpy()
        out["mnist_names"] = result["class_names"].numpy().astype(str)
        floats = tf.constant(x["images"].astype(np.float32) / 255.0)
        out["mnist_float"] = mnist["serving_float"](images=floats)["probabilities"].numpy()
        sound = tf.saved_model.load(audio_dir).signatures["serving_default"]
        for key in ("gsc", "short", "long"):
            result = sound(waveforms=tf.constant(x[key]))
            out["audio_" + key] = result["probabilities"].numpy()
            out["audio_" + key + "_names"] = result["class_names"].numpy().astype(str)
        np.savez(work + "/outputs.npz", **out)
        """
    )
    (work / "reload.py").write_text(script)
    _subprocess(
        [
            sys.executable,
            str(work / "reload.py"),
            str(mnist_export["dir"]),
            str(audio_export["dir"]),
            str(work),
        ]
    )
    return inputs, dict(np.load(work / "outputs.npz"))


# --------------------------------------------------------------------------- layout and signatures


def test_layout_and_default_version(mnist_export):
    version_dir = mnist_export["dir"]
    assert version_dir == mnist_export["export_dir"] / "mnist_sparse_cnn2" / "1"
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables" / "variables.index").is_file()
    assert (version_dir / "assets.extra" / export.WARMUP_FILE).is_file()
    # Nothing left behind from the atomic write.
    assert [p.name for p in version_dir.parent.iterdir()] == ["1"]


def _signature_blocks(show_output: str) -> dict[str, str]:
    parts = re.split(r"signature_def\['([^']+)'\]:", show_output)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_saved_model_cli_show_lists_documented_signatures(mnist_export):
    out = _subprocess([*SAVED_MODEL_CLI, "show", "--all", "--dir", str(mnist_export["dir"])]).stdout
    blocks = _signature_blocks(out.split("Concrete Functions:")[0])
    expected_inputs = {
        "serving_default": ("images", "DT_UINT8", "(-1, 28, 28)"),
        "serving_float": ("images", "DT_FLOAT", "(-1, 28, 28)"),
        "serving_features": ("features", "DT_FLOAT", "(-1, 28, 28, 1)"),
    }
    assert set(expected_inputs) <= set(blocks)
    for signature, (name, dtype, shape) in expected_inputs.items():
        block = blocks[signature]
        inputs, outputs = block.split("contains the following output(s):")
        assert re.search(
            rf"inputs\['{name}'\] tensor_info:\s+dtype: {dtype}\s+shape: {re.escape(shape)}", inputs
        ), block
        assert inputs.count("inputs[") == 1, block
        for output, out_dtype, out_shape in (
            ("probabilities", "DT_FLOAT", "(-1, 10)"),
            ("class_ids", "DT_INT64", "(-1)"),
            ("class_names", "DT_STRING", "(-1)"),
        ):
            assert re.search(
                rf"outputs\['{output}'\] tensor_info:\s+dtype: {out_dtype}\s+shape: {re.escape(out_shape)}",
                outputs,
            ), block
        assert "tensorflow/serving/predict" in block


def test_saved_model_cli_run_gives_keras_class(mnist_export, mnist_test, tmp_path):
    images, _ = mnist_test
    reference = mnist_export["reference"]
    top2 = np.sort(reference, axis=1)[:, -2:]
    # Images whose top class is clear, so float round-off cannot flip the comparison.
    chosen = np.flatnonzero(top2[:, 1] - top2[:, 0] > 1e-3)[:3]
    assert len(chosen) > 0
    np.save(tmp_path / "images.npy", images[chosen])
    _subprocess(
        [
            *SAVED_MODEL_CLI,
            "run",
            "--dir",
            str(mnist_export["dir"]),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={tmp_path / 'images.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ]
    )
    class_ids = np.load(tmp_path / "out" / "class_ids.npy")
    np.testing.assert_array_equal(class_ids, reference[chosen].argmax(axis=1))
    names = np.load(tmp_path / "out" / "class_names.npy", allow_pickle=True).astype(str)
    np.testing.assert_array_equal(names, [str(i) for i in class_ids])


# --------------------------------------------------------------------------- equivalence with Keras


def test_fresh_process_mnist_matches_keras_inference_mode(mnist_export, fresh_process_outputs):
    _, outputs = fresh_process_outputs
    reference = mnist_export["reference"]
    for key in ("mnist_uint8", "mnist_float"):
        assert outputs[key].shape == (NUM_MNIST, 10)
        assert np.abs(outputs[key] - reference).max() <= TOLERANCE, key
        # Inference mode (1.5 k winners, frozen duty cycles), not training mode.
        assert np.abs(outputs[key] - mnist_export["training_mode"]).max() > 1e-3, key
    np.testing.assert_array_equal(outputs["mnist_names"], reference.argmax(axis=1).astype(str))


def test_fresh_process_audio_matches_keras(audio_export, fresh_process_outputs):
    from sparse_keras.data import gsc

    inputs, outputs = fresh_process_outputs
    model = audio_export["model"]
    for key in ("gsc", "short", "long"):
        # The training pipeline's steps: pad/crop to 16,000 samples, then log-mel.
        features = audio.log_mel(audio.fix_length(tf.constant(inputs[key], tf.float32)))
        reference = _softmax(model(features, training=False))
        assert outputs["audio_" + key].shape == (len(inputs[key]), 12)
        assert np.abs(outputs["audio_" + key] - reference).max() <= TOLERANCE, key
        expected_names = np.array(gsc.CLASS_NAMES)[reference.argmax(axis=1)]
        np.testing.assert_array_equal(outputs["audio_" + key + "_names"], expected_names)


def test_features_signature_matches_keras(mnist_export, mnist_test):
    loaded = tf.saved_model.load(str(mnist_export["dir"]))
    features = mnist_features_np(mnist_test[0][:10])
    result = loaded.signatures["serving_features"](features=tf.constant(features))
    assert (
        np.abs(result["probabilities"].numpy() - mnist_export["reference"][:10]).max() <= TOLERANCE
    )


def test_exported_graph_has_no_training_ops(mnist_export):
    loaded = tf.saved_model.load(str(mnist_export["dir"]))
    for name, function in loaded.signatures.items():
        graph_def = function.graph.as_graph_def()
        ops = {node.op for node in graph_def.node}
        ops |= {node.op for f in graph_def.library.function for node in f.node_def}
        assert not {op for op in ops if op.startswith("Assign")}, name
        assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}, name


# --------------------------------------------------------------------------- clients


def _warmup_logs(version_dir: pathlib.Path) -> list:
    path = version_dir / "assets.extra" / export.WARMUP_FILE
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(str(path))
    ]


@pytest.mark.parametrize("which", ["mnist", "audio"])
def test_warmup_requests_match_signatures(which, mnist_export, audio_export, mnist_test):
    exported = mnist_export if which == "mnist" else audio_export
    version_dir = exported["dir"]
    signatures = tf.saved_model.load(str(version_dir)).signatures
    logs = _warmup_logs(version_dir)
    assert 2 <= len(logs) <= 1000  # TF Serving reads at most 1000
    seen = set()
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.name == version_dir.parent.name
        signature = signatures[request.model_spec.signature_name]
        seen.add(request.model_spec.signature_name)
        _, specs = signature.structured_input_signature
        assert set(request.inputs) == set(specs)
        arrays = {}
        for name, proto in request.inputs.items():
            array = tf.make_ndarray(proto)
            assert tf.as_dtype(proto.dtype) == specs[name].dtype, name
            assert specs[name].shape.is_compatible_with(array.shape), (name, array.shape)
            arrays[name] = tf.constant(array)
        result = signature(**arrays)
        assert result["probabilities"].shape[0] == next(iter(arrays.values())).shape[0]
    assert seen == set(signatures)
    if which == "mnist":
        # Real test images, not zeros.
        first = tf.make_ndarray(logs[1].predict_log.request.inputs["images"])
        np.testing.assert_array_equal(first, mnist_test[0][: len(first)])
    else:
        waves = tf.make_ndarray(logs[1].predict_log.request.inputs["waveforms"])
        assert np.abs(waves).max() > 0.05  # real speech, not silence


def test_grpc_predict_request_gives_keras_answer(mnist_export, mnist_test):
    """What TF Serving does with a gRPC PredictRequest: tensor protos → the signature."""
    images = mnist_test[0][:5]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist_sparse_cnn2"
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    # Over the wire and back.
    received = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    signature = tf.saved_model.load(str(mnist_export["dir"])).signatures[
        received.model_spec.signature_name
    ]
    inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in received.inputs.items()}
    result = signature(**inputs)
    reference = mnist_export["reference"][:5]
    assert np.abs(result["probabilities"].numpy() - reference).max() <= TOLERANCE
    np.testing.assert_array_equal(result["class_ids"].numpy(), reference.argmax(axis=1))


def test_rest_json_body_gives_keras_answer(mnist_export, mnist_test):
    """The REST API's "instances" rows, as docs/serving.md sends them."""
    images = mnist_test[0][:3]
    body = json.dumps({"signature_name": "serving_default", "instances": images.tolist()})
    request = json.loads(body)
    signature = tf.saved_model.load(str(mnist_export["dir"])).signatures[request["signature_name"]]
    # The server converts the rows to the signature's dtype.
    result = signature(images=tf.constant(np.array(request["instances"], np.uint8)))
    np.testing.assert_array_equal(
        result["class_ids"].numpy(), mnist_export["reference"][:3].argmax(axis=1)
    )


# --------------------------------------------------------------------------- versions and errors


def _tiny_model(*middle: keras.layers.Layer, input_shape=(28, 28, 1), outputs=10) -> keras.Model:
    keras.utils.set_random_seed(0)
    layers = [
        keras.Input(input_shape),
        keras.layers.Flatten(),
        *middle,
        keras.layers.Dense(outputs),
    ]
    return keras.Sequential(layers, name="tiny")


def test_versions_increment_and_never_overwrite(tmp_path):
    model = _tiny_model(keras.layers.Dense(8), KWinners(4))
    first = export.export_for_serving(model, tmp_path)
    second = export.export_for_serving(model, tmp_path)
    assert (first.name, second.name) == ("1", "2")
    before = (second / "saved_model.pb").read_bytes()
    with pytest.raises(FileExistsError, match=r"tiny/2 already exists"):
        export.export_for_serving(model, tmp_path, version=2)
    assert (second / "saved_model.pb").read_bytes() == before
    assert export.export_for_serving(model, tmp_path, version=7).name == "7"
    assert export.export_for_serving(model, tmp_path).name == "8"
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["1", "2", "7", "8"]


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_warmup_requests", broken)
    with pytest.raises(OSError, match="disk full"):
        export.export_for_serving(_tiny_model(), tmp_path)
    assert list((tmp_path / "tiny").iterdir()) == []


class _Unbuilt(keras.Model):
    def __init__(self):
        super().__init__(name="unbuilt")
        self.dense = keras.layers.Dense(10)

    def call(self, inputs):
        return self.dense(keras.ops.reshape(inputs, (-1, 784)))


class _ShapeKeeping(keras.layers.Layer):
    # Keras then never runs `call` symbolically while building the model.
    def compute_output_shape(self, input_shape):
        return input_shape


class _PythonCallback(_ShapeKeeping):
    def call(self, inputs):
        outputs = tf.py_function(lambda x: x * 2, [inputs], tf.float32)
        outputs.set_shape(inputs.shape)
        return outputs


class _UpdatesAlways(_ShapeKeeping):
    def build(self, input_shape):
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, inputs, training=None):
        self.count.assign_add(1.0)
        return inputs


class _EagerOnly(_ShapeKeeping):
    def call(self, inputs):
        return inputs * float(inputs.numpy().max())


def test_unbuilt_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"'unbuilt' \(_Unbuilt\) has not been built"):
        export.export_for_serving(_Unbuilt(), tmp_path, dataset="mnist")


def test_subclassed_model_once_called_exports(tmp_path):
    model = _Unbuilt()
    model(np.zeros([1, 28, 28, 1], "float32"))
    with pytest.raises(ValueError, match="Cannot infer the dataset"):
        export.export_for_serving(model, tmp_path)
    version_dir = export.export_for_serving(model, tmp_path, dataset="mnist")
    result = tf.saved_model.load(str(version_dir)).signatures["serving_default"](
        images=tf.zeros([2, 28, 28], tf.uint8)
    )
    assert result["probabilities"].shape == (2, 10)


def test_not_a_model_is_refused(tmp_path):
    with pytest.raises(TypeError, match="expects a keras.Model"):
        export.export_for_serving(lambda x: x, tmp_path)


@pytest.mark.parametrize(
    "layer, message",
    [
        (_PythonCallback(), "calls back into Python"),
        (_UpdatesAlways(), "updates variables in inference mode"),
        (_EagerOnly(), "Could not trace model 'tiny'"),
    ],
)
def test_unservable_custom_layers_are_refused(layer, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        export.export_for_serving(_tiny_model(layer), tmp_path)
    assert not (tmp_path / "tiny").exists() or list((tmp_path / "tiny").iterdir()) == []


def test_bad_arguments_are_refused(tmp_path):
    model = _tiny_model()
    with pytest.raises(ValueError, match=r"Cannot infer the dataset .* input shape \(5,\)"):
        export.export_for_serving(_tiny_model(input_shape=(5,)), tmp_path)
    with pytest.raises(
        ValueError, match=r"takes features of shape \(28, 28, 1\), but dataset 'gsc'"
    ):
        export.export_for_serving(model, tmp_path, dataset="gsc")
    with pytest.raises(ValueError, match="Unknown dataset 'cifar'"):
        export.export_for_serving(model, tmp_path, dataset="cifar")
    with pytest.raises(ValueError, match=r"3 class names .* which has 10 outputs"):
        export.export_for_serving(model, tmp_path, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="12 class names"):
        export.export_for_serving(_tiny_model(input_shape=(32, 32, 1), outputs=10), tmp_path)
    with pytest.raises(ValueError, match="version must be a positive integer"):
        export.export_for_serving(model, tmp_path, version=0)
    with pytest.raises(ValueError, match="Invalid model name '../up'"):
        export.export_for_serving(model, tmp_path, model_name="../up")
    assert not (tmp_path / "tiny").exists()


def test_class_names_override(tmp_path):
    names = [f"class_{i}" for i in range(10)]
    version_dir = export.export_for_serving(_tiny_model(), tmp_path, class_names=names)
    result = tf.saved_model.load(str(version_dir)).signatures["serving_default"](
        images=tf.zeros([1, 28, 28], tf.uint8)
    )
    assert result["class_names"].numpy()[0].decode() in names


# --------------------------------------------------------------------------- CLI


def test_cli_exports_keras_file_and_zoo_model(tmp_path, monkeypatch, capsys):
    model = _tiny_model(keras.layers.Dense(8), KWinners(4))
    model.save(tmp_path / "tiny.keras")
    assert (
        cli.main(["export", str(tmp_path / "tiny.keras"), str(tmp_path / "out"), "--version", "3"])
        == 0
    )
    assert (tmp_path / "out" / "tiny" / "3" / "saved_model.pb").is_file()
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "tiny" / "3")

    assert (
        cli.main(["export", str(tmp_path / "tiny.keras"), str(tmp_path / "out"), "--version", "3"])
        == 1
    )
    assert "tiny/3 already exists" in capsys.readouterr().err

    class FakeZoo:
        @staticmethod
        def register_cli(subparsers):
            pass  # the real zoo's sub-command is not under test

        @staticmethod
        def load(name):
            assert name == "mnist_tiny"
            return model

        @staticmethod
        def info(name):
            return {"dataset": "mnist"}

    monkeypatch.setattr(sparse_keras, "zoo", FakeZoo, raising=False)
    monkeypatch.setitem(sys.modules, "sparse_keras.zoo", FakeZoo)
    assert cli.main(["export", "mnist_tiny", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "mnist_tiny" / "1" / "saved_model.pb").is_file()
