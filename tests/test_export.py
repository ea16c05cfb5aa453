"""Export for TF Serving: signatures, equivalence with Keras, warm-up file, gRPC requests."""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from sparse_keras import KWinners, export, models
from sparse_keras.data import audio, mnist, wav
from sparse_keras.zoo import hub

predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")

SAVED_MODEL_CLI = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
NUM_MNIST = 100
TOLERANCE = 1e-5


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _check(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (
        f"{result.args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _softmax(logits) -> np.ndarray:
    return tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()


def _kwinners_variables(model) -> list:
    return [v for layer in model.layers if isinstance(layer, KWinners) for v in layer.weights]


def _crop_or_pad(waves: list[np.ndarray], length: int) -> np.ndarray:
    return np.stack([np.pad(w, (0, max(0, length - len(w))))[:length] for w in waves])


def mnist_features_np(images: np.ndarray) -> np.ndarray:
    """The training pipeline's features for uint8 images (mnist.load's own steps)."""
    return mnist.normalize_images(tf.cast(images[..., None], tf.float32) / 255.0).numpy()


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
        "data_dir": data_dir,
    }


@pytest.fixture(scope="module")
def audio_clips(data_dir):
    """Real 16 kHz clips: GSC test clips (sample tree) and FSDD clips (8 kHz, resampled).

    None when neither is on disk (the audio test then skips, naming the reason).
    """
    from sparse_keras.data import gsc

    waves = {}
    sample_tree = data_dir / "gsc" / "sample_v0.01"
    if sample_tree.is_dir():
        paths, _ = gsc.list_clips("test", data_dir=sample_tree, download=False)
        waves["gsc"] = np.stack([audio.fix_length(wav.read_wav(p)[0]).numpy() for p in paths])
    fsdd = sorted((data_dir / "fsdd" / "recordings").glob("*_theo_[0-4].wav"))[:20]
    if fsdd:
        resampled = [audio.resample_poly(wav.read_wav(p)[0], 2, 1).numpy() for p in fsdd]
        # Shorter and longer than 1 s: padded and cropped inside the graph.
        waves["short"] = _crop_or_pad(resampled, 12000)
        waves["long"] = _crop_or_pad(resampled, 20000)
    return waves or None


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
def fsdd_export(audio_export, tmp_path_factory):
    """The same audio network exported for FSDD (centred clips, an 8 kHz signature)."""
    version_dir = export.export_for_serving(
        audio_export["model"],
        tmp_path_factory.mktemp("serving"),
        dataset="fsdd",
        model_name="fsdd_small",
    )
    return {"model": audio_export["model"], "dir": version_dir}


@pytest.fixture(scope="module")
def fsdd_test(data_dir):
    """10 FSDD test clips: raw 8 kHz samples and the features `fsdd.load` gives them."""
    from sparse_keras.data import fsdd

    root = data_dir / "fsdd"
    if not (root / "recordings").is_dir():
        return None
    paths, labels = fsdd.list_clips("test", data_dir=root, download=False)
    dataset = fsdd.load("test", batch_size=len(paths), data_dir=root, download=False, cache=False)
    features, _ = next(iter(dataset))
    chosen = np.arange(0, len(paths), len(paths) // 10)[:10]
    raw = {f"fsdd8k_{i}": wav.read_wav(paths[index])[0][None] for i, index in enumerate(chosen)}
    return {"raw": raw, "features": features.numpy()[chosen]}


_RELOAD_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf

mnist_dir, audio_dir, fsdd_dir, work = sys.argv[1:]
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
    if key in x.files:
        result = sound(waveforms=tf.constant(x[key]))
        out["audio_" + key] = result["probabilities"].numpy()
        out["audio_" + key + "_names"] = result["class_names"].numpy().astype(str)
fsdd = tf.saved_model.load(fsdd_dir).signatures
clips = sorted((key for key in x.files if key.startswith("fsdd8k_")), key=lambda k: int(k[7:]))
if clips:
    # One request per clip, at FSDD's 8 kHz and upsampled to 16 kHz by the client.
    at_8k = [fsdd["serving_8khz"](waveforms=tf.constant(x[k]))["probabilities"] for k in clips]
    at_16k = [fsdd["serving_default"](waveforms=tf.constant(x["fsdd16k" + k[6:]]))["probabilities"] for k in clips]
    out["fsdd_8k"] = np.concatenate(at_8k)
    out["fsdd_16k"] = np.concatenate(at_16k)
np.savez(work + "/outputs.npz", **out)
"""


@pytest.fixture(scope="module")
def out_of_process(
    mnist_export, mnist_test, audio_export, audio_clips, fsdd_export, fsdd_test, tmp_path_factory
):
    """`saved_model_cli show`, `saved_model_cli run` and a fresh-process reload.

    Started side by side when the module's first test asks for this fixture, and
    collected by the last tests: each pays for its own TensorFlow import, which
    dominates its time, so they run while the in-process tests do.
    """
    work = tmp_path_factory.mktemp("out_of_process")
    reference = mnist_export["reference"]
    top2 = np.sort(reference, axis=1)[:, -2:]
    # Images whose top class is clear, so float round-off cannot flip the comparison.
    chosen = np.flatnonzero(top2[:, 1] - top2[:, 0] > 1e-3)[:3]
    assert len(chosen) > 0
    np.save(work / "images.npy", mnist_test[0][chosen])
    fsdd_raw = fsdd_test["raw"] if fsdd_test else {}
    fsdd_16k = {
        f"fsdd16k_{key[7:]}": audio.resample_poly(clip[0], 2, 1).numpy()[None]
        for key, clip in fsdd_raw.items()
    }
    np.savez(
        work / "inputs.npz", images=mnist_test[0], **(audio_clips or {}), **fsdd_raw, **fsdd_16k
    )
    (work / "reload.py").write_text(_RELOAD_SCRIPT)
    version_dir = str(mnist_export["dir"])
    commands = {
        "show": [*SAVED_MODEL_CLI, "show", "--all", "--dir", version_dir],
        "run": [
            *SAVED_MODEL_CLI,
            "run",
            "--dir",
            version_dir,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={work / 'images.npy'}",
            "--outdir",
            str(work / "run"),
        ],
        "reload": [
            sys.executable,
            str(work / "reload.py"),
            version_dir,
            str(audio_export["dir"]),
            str(fsdd_export["dir"]),
            str(work),
        ],
    }
    processes = {name: _start(args) for name, args in commands.items()}
    yield {"work": work, "chosen": chosen, "processes": processes, "results": {}}
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def _result(out_of_process: dict, name: str) -> subprocess.CompletedProcess:
    """Waits for one of the `out_of_process` commands (once) and returns its result."""
    results = out_of_process["results"]
    if name not in results:
        results[name] = _finish(out_of_process["processes"][name])
    return results[name]


@pytest.fixture(scope="module")
def fresh_process_outputs(out_of_process):
    _check(_result(out_of_process, "reload"))
    work = out_of_process["work"]
    return dict(np.load(work / "inputs.npz")), dict(np.load(work / "outputs.npz"))


# --------------------------------------------------------------------------- layout and signatures


def test_layout_and_default_version(mnist_export, out_of_process):
    version_dir = mnist_export["dir"]
    assert version_dir == mnist_export["export_dir"] / "mnist_sparse_cnn2" / "1"
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables" / "variables.index").is_file()
    assert (version_dir / "assets.extra" / export.WARMUP_FILE).is_file()
    # Nothing left behind from the atomic write.
    assert [p.name for p in version_dir.parent.iterdir()] == ["1"]


# --------------------------------------------------------------------------- equivalence with Keras


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


@pytest.mark.parametrize("which", ["mnist", "gsc", "fsdd"])
def test_warmup_requests_match_signatures(
    which, mnist_export, audio_export, fsdd_export, mnist_test
):
    exported = {"mnist": mnist_export, "gsc": audio_export, "fsdd": fsdd_export}[which]
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
        assert set(result) == set(export.OUTPUT_NAMES)
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
    """A PredictRequest over a real gRPC channel, handled as TF Serving handles it.

    The stand-in server decodes the request's tensor protos with `tf.make_ndarray`,
    runs the requested signature of the reloaded SavedModel and encodes the outputs;
    the client is the one in docs/serving.md.
    """
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    from tensorflow_serving.apis import prediction_service_pb2_grpc

    signatures = tf.saved_model.load(str(mnist_export["dir"])).signatures

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (the gRPC method name)
            signature = signatures[request.model_spec.signature_name]
            inputs = {
                name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()
            }
            response = predict_pb2.PredictResponse(model_spec=request.model_spec)
            for name, value in signature(**inputs).items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        images = mnist_test[0][:5]
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist_sparse_cnn2"
        request.model_spec.signature_name = "serving_default"
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
        with grpc.insecure_channel(f"localhost:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=60.0)
    finally:
        server.stop(None)
    reference = mnist_export["reference"][:5]
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    assert np.abs(probabilities - reference).max() <= TOLERANCE
    class_ids = tf.make_ndarray(response.outputs["class_ids"])
    np.testing.assert_array_equal(class_ids, reference.argmax(axis=1))
    names = tf.make_ndarray(response.outputs["class_names"]).astype(str)
    np.testing.assert_array_equal(names, class_ids.astype(str))


class RestPredictServer:
    """TF Serving's REST predict API for one SavedModel, on 127.0.0.1 (no Docker here).

    `POST /v1/models/<name>:predict` with the JSON of the REST API reference: the row
    format (`"instances"`: one entry per example, a dict per example when the signature
    has several inputs) or the columnar one (`"inputs"`: a value, or a dict by input
    name). As the model server does, each input is converted to its signature's dtype
    and shape, a request that does not fit is answered with status 400 and an
    `"error"`, and the answer is `{"predictions": [...]}` (one dict of named outputs per
    example) or `{"outputs": {...}}`, with string tensors as UTF-8 text.
    """

    def __init__(self, saved_model_dir, model_name: str):
        import http.server
        import threading

        loaded = tf.saved_model.load(str(saved_model_dir))
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server hook's name)
                status, answer = server.predict(
                    self.path, self.rfile.read(int(self.headers["Content-Length"]))
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.loaded, self.model_name = loaded, model_name
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def predict(self, path: str, body: bytes) -> tuple[int, dict]:
        if path != f"/v1/models/{self.model_name}:predict":
            return 404, {"error": f"Servable not found for request: {path}"}
        try:
            request = json.loads(body)
            signature = self.loaded.signatures[request.get("signature_name", "serving_default")]
            specs = signature.structured_input_signature[1]
            row = "instances" in request
            values = request["instances"] if row else request["inputs"]
            if len(specs) == 1 and not (isinstance(values, dict) and set(values) == set(specs)):
                values = {next(iter(specs)): values}
            elif row:  # one dict per example: gather each input's rows
                values = {name: [instance[name] for instance in values] for name in specs}
            tensors = {}
            for name, spec in specs.items():
                array = np.asarray(values[name])
                # JSON numbers: integers for an integer input (within its range), any
                # number for a float input.
                kinds = (
                    "iu" if spec.dtype.is_integer else "iuf" if spec.dtype.is_floating else "USO"
                )
                if array.dtype.kind not in kinds or (
                    spec.dtype.is_integer
                    and (array.min() < spec.dtype.min or array.max() > spec.dtype.max)
                ):
                    raise ValueError(f"{name}: {array.dtype} values do not fit {spec.dtype.name}")
                tensor = tf.constant(array, spec.dtype)
                if not spec.shape.is_compatible_with(tensor.shape):
                    raise ValueError(f"{name}: shape {tensor.shape} does not match {spec.shape}")
                tensors[name] = tensor  # (the graph checks the shape it needs)
            outputs = {
                name: (
                    np.char.decode(value.numpy().astype(bytes), "utf-8")
                    if value.dtype == tf.string
                    else value.numpy()
                ).tolist()
                for name, value in signature(**tensors).items()
            }
        except (KeyError, TypeError, ValueError, tf.errors.InvalidArgumentError) as err:
            # The model server answers a request it cannot run with 400 and the reason
            # (a shape check inside the graph raises InvalidArgumentError).
            return 400, {"error": getattr(err, "message", None) or str(err)}
        if not row:
            return 200, {"outputs": outputs}
        count = len(next(iter(outputs.values())))
        return 200, {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(count)]}


def _post(url: str, body: dict) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_rest_predict_requests_give_the_keras_answer(mnist_export, mnist_test, monkeypatch):
    """JSON predict requests over HTTP, in both REST formats, against the exported model."""
    images = mnist_test[0][:3]
    reference = mnist_export["reference"][:3]
    with RestPredictServer(mnist_export["dir"], "mnist_sparse_cnn2") as server:
        url = f"{server.url}/v1/models/mnist_sparse_cnn2:predict"
        status, answer = _post(
            url, {"signature_name": "serving_default", "instances": images.tolist()}
        )
        assert status == 200, answer
        rows = answer["predictions"]
        assert len(rows) == 3
        probabilities = np.array([row["probabilities"] for row in rows])
        assert np.abs(probabilities - reference).max() <= TOLERANCE
        assert [row["class_ids"] for row in rows] == reference.argmax(axis=1).tolist()
        assert [row["class_names"] for row in rows] == [str(c) for c in reference.argmax(1)]

        status, answer = _post(url, {"inputs": {"images": images.tolist()}})
        assert status == 200, answer
        assert np.abs(np.array(answer["outputs"]["probabilities"]) - reference).max() <= TOLERANCE

        # What the server refuses: a wrong image size, pixels outside uint8, a wrong path.
        status, answer = _post(url, {"instances": images[:, :27, :27].tolist()})
        assert status == 400 and "28" in answer["error"], answer
        status, answer = _post(url, {"instances": (images.astype(int) + 300).tolist()})
        assert status == 400 and "do not fit uint8" in answer["error"]
        assert _post(f"{server.url}/v1/models/other:predict", {"instances": []})[0] == 404

        # The REST client of docs/serving.md, unchanged but for the server's address.
        page = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
        client = re.search(r"## REST client\n.*?```python\n(.*?)```", page, re.S).group(1)
        assert "http://localhost:8501" in client
        monkeypatch.setenv("SPARSE_KERAS_DATA", str(mnist_export["data_dir"]))
        namespace: dict = {}
        exec(client.replace("http://localhost:8501", server.url), namespace)
        assert [p["class_names"] for p in namespace["predictions"]] == [
            str(c) for c in reference.argmax(1)
        ]


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
    # Versions 1 and 7 exist already (a stand-in file each; the default export of a
    # fresh directory writes version 1, see test_layout_and_default_version).
    for version in ("1", "7"):
        (tmp_path / "tiny" / version).mkdir(parents=True)
        (tmp_path / "tiny" / version / "saved_model.pb").write_text(f"version {version}")
    (tmp_path / "tiny" / "notes").mkdir()  # not a version: ignored
    model = _tiny_model(keras.layers.Dense(8), KWinners(4))
    # The next integer after the highest existing version, gaps or not.
    assert export.export_for_serving(model, tmp_path) == tmp_path / "tiny" / "8"
    with pytest.raises(FileExistsError, match=r"tiny/7 already exists"):
        export.export_for_serving(model, tmp_path, version=7)
    assert (tmp_path / "tiny" / "7" / "saved_model.pb").read_text() == "version 7"
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["1", "7", "8", "notes"]


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export.saved_model, "write_warmup_requests", broken)
    with pytest.raises(OSError, match="disk full"):
        export.export_for_serving(_tiny_model(), tmp_path)
    # Not even the model folder the export created.
    assert list(tmp_path.iterdir()) == []


def test_export_without_serving_api_warns_and_skips_warmup(tmp_path, monkeypatch):
    # None entries make `import tensorflow_serving...` raise ImportError.
    for name in [name for name in sys.modules if name.startswith("tensorflow_serving")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.warns(UserWarning, match="tensorflow-serving-api is not installed"):
        version_dir = export.export_for_serving(_tiny_model(), tmp_path)
    assert (version_dir / "saved_model.pb").is_file()
    assert not (version_dir / "assets.extra").exists()


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


# --------------------------------------------------------------------------- CLI


def _export_cli(*argv: str) -> int:
    """`sparse-keras export ...` through the command's own parser (`sparse_keras.cli.export`).

    Errors propagate here; `cli.main` turns them into one line and exit status 1.
    """
    from sparse_keras.cli import export as export_cli

    parser = argparse.ArgumentParser(prog="sparse-keras")
    export_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", *argv])
    return args.func(args)


def test_cli_exports_keras_file_and_zoo_model(tmp_path, monkeypatch, capsys):
    model = _tiny_model(keras.layers.Dense(8), KWinners(4))
    model.save(tmp_path / "tiny.keras")
    out = tmp_path / "out"
    assert _export_cli(str(tmp_path / "tiny.keras"), str(out), "--version", "3") == 0
    assert (out / "tiny" / "3" / "saved_model.pb").is_file()
    assert capsys.readouterr().out.strip() == str(out / "tiny" / "3")
    with pytest.raises(FileExistsError, match="tiny/3 already exists"):
        _export_cli(str(tmp_path / "tiny.keras"), str(out), "--version", "3")
    with pytest.raises(FileNotFoundError, match="missing.keras' not found"):
        _export_cli(str(tmp_path / "missing.keras"), str(out))

    def load(name):
        assert name == "mnist_tiny"
        return model

    # A zoo entry, as the model resolver (sparse_keras.zoo.resolve) reads it from the hub.
    monkeypatch.setattr(hub, "load", load)
    monkeypatch.setattr(hub, "info", lambda name: {"dataset": "mnist"})
    names = [f"class_{i}" for i in range(10)]
    assert _export_cli("mnist_tiny", str(out), "--class-names", ",".join(names)) == 0
    serve = tf.saved_model.load(str(out / "mnist_tiny" / "1")).signatures["serving_default"]
    result = serve(images=tf.zeros([1, 28, 28], tf.uint8))
    assert result["class_names"].numpy()[0].decode() == names[result["class_ids"].numpy()[0]]


# --------------------------------------------------------------------------- out of process (collected last)


def _signature_blocks(show_output: str) -> dict[str, str]:
    parts = re.split(r"signature_def\['([^']+)'\]:", show_output)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_saved_model_cli_show_lists_documented_signatures(out_of_process):
    out = _check(_result(out_of_process, "show"))
    blocks = _signature_blocks(out.split("Concrete Functions:")[0])
    # Declared with an unknown shape: the graph checks it (see export.signatures._request_checks).
    expected_inputs = {
        "serving_default": ("images", "DT_UINT8", "unknown_rank"),
        "serving_float": ("images", "DT_FLOAT", "unknown_rank"),
        "serving_features": ("features", "DT_FLOAT", "unknown_rank"),
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


def test_saved_model_cli_run_gives_keras_class(mnist_export, out_of_process):
    _check(_result(out_of_process, "run"))
    chosen, out_dir = out_of_process["chosen"], out_of_process["work"] / "run"
    class_ids = np.load(out_dir / "class_ids.npy")
    np.testing.assert_array_equal(class_ids, mnist_export["reference"][chosen].argmax(axis=1))
    names = np.load(out_dir / "class_names.npy", allow_pickle=True).astype(str)
    np.testing.assert_array_equal(names, [str(i) for i in class_ids])


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
    keys = [key for key in ("gsc", "short", "long") if key in inputs]
    if not keys:
        pytest.skip(
            "no real audio: neither data/gsc/sample_v0.01 nor data/fsdd under SPARSE_KERAS_DATA"
        )
    model = audio_export["model"]
    for key in keys:
        # The training pipeline's steps: pad/crop to 16,000 samples, then log-mel.
        features = audio.log_mel(audio.fix_length(tf.constant(inputs[key], tf.float32)))
        reference = _softmax(model(features, training=False))
        assert outputs["audio_" + key].shape == (len(inputs[key]), 12)
        assert np.abs(outputs["audio_" + key] - reference).max() <= TOLERANCE, key
        expected_names = np.array(gsc.CLASS_NAMES)[reference.argmax(axis=1)]
        np.testing.assert_array_equal(outputs["audio_" + key + "_names"], expected_names)


def test_fresh_process_fsdd_matches_training_pipeline(
    fsdd_export, fsdd_test, fresh_process_outputs
):
    """Raw FSDD clips in, the probabilities of the features `fsdd.load` gives them out."""
    if fsdd_test is None:
        pytest.skip("no FSDD recordings under SPARSE_KERAS_DATA/fsdd")
    _, outputs = fresh_process_outputs
    reference = _softmax(fsdd_export["model"](fsdd_test["features"], training=False))
    for key in ("fsdd_8k", "fsdd_16k"):
        assert outputs[key].shape == reference.shape
        assert np.abs(outputs[key] - reference).max() <= TOLERANCE, key


def test_gsc12v2_zoo_model_serves_raw_waveforms(tmp_path, monkeypatch, data_dir):
    """The real-Speech-Commands zoo model, exported: raw 16 kHz clips in, the class of the
    training pipeline's features out (issue 24), from a SavedModel loaded back."""
    from sparse_keras import data, zoo
    from sparse_keras.data import gsc12v2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(UserWarning, match="Using the copy in"):
        model = zoo.load("gsc12v2_sparse_cnn2")
    paths, labels = gsc12v2.list_clips(
        "test", data_dir / gsc12v2.DATASET_SUBDIR, download=False, check_files=False
    )
    chosen = np.linspace(0, len(paths) - 1, 6).astype(int)
    # Recordings are at most 1 s; the served graph pads them, as the pipeline does.
    clips = [wav.read_wav(paths[i])[0] for i in chosen]
    length = max(len(c) for c in clips)
    batch = np.stack([np.pad(c, (0, length - len(c))) for c in clips]).astype(np.float32)
    descriptor = data.dataset("gsc12v2")
    reference = _softmax(model(descriptor.preprocess(tf.constant(batch)), training=False))
    version_dir = export.export_for_serving(model, tmp_path, dataset="gsc12v2")
    served = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    out = served(waveforms=tf.constant(batch))
    assert np.abs(out["probabilities"].numpy() - reference).max() <= TOLERANCE
    names = out["class_names"].numpy().astype(str)
    np.testing.assert_array_equal(names, np.array(gsc12v2.CLASS_NAMES)[reference.argmax(1)])
    # A trained model: most of these real clips get their own label.
    assert np.mean(reference.argmax(1) == labels[chosen]) >= 0.5
