"""The zoo: packaging, checking, publishing, and loading through a local Hugging Face Hub.

The Hub is olah, a real HF-compatible server from PyPI, serving git repositories on
127.0.0.1 (why, and how: see `tests/hf_server.py`). The models are tiny
`mnist_sparse_cnn2` variants packaged in a temporary folder with the zoo's own
`package`, registered in a temporary registry (`SPARSE_KERAS_ZOO_REGISTRY`), so these
tests do not depend on which trained checkpoints exist. The last tests check the real
`zoo/` folders and registry of the checkout, whatever they hold.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("olah", reason="the zoo tests serve models with olah: pip install -e '.[dev]'")

import hf_server  # noqa: E402

from sparse_keras import zoo  # noqa: E402
from sparse_keras.zoo import artifacts, hub  # noqa: E402
from sparse_keras.zoo import registry as zoo_registry  # noqa: E402
from training import packaging  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
NAME = "mnist_tiny_cnn2"
FALLBACK_WARNING = "Could not download zoo model"


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A packaged tiny model: its folder, registry, and reference inputs and outputs."""
    root = tmp_path_factory.mktemp("tiny_zoo")
    model = hf_server.make_training_run(root)
    registry = hf_server.empty_registry(root / "registry.json")
    folder = packaging.package(
        "mnist_sparse_cnn2",
        0,
        name=NAME,
        runs_dir=root / "runs",
        results_dir=root / "results",
        zoo_dir=root / "zoo",
        registry=registry,
    )
    x = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype("float32")
    return {
        "root": root,
        "folder": folder,
        "registry": registry,
        "x": x,
        "expected": np.asarray(model(x)),
    }


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory):
    server = hf_server.LocalHub(tmp_path_factory.mktemp("hub"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean Hub environment: empty cache, no offline mode, no local zoo copies."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv(zoo_registry.ZOO_DIR_ENV, str(tmp_path / "no-zoo-copies"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return monkeypatch


def serve(server, tiny_zoo, monkeypatch, tmp_path, repo_id: str, pin: bool = False) -> str:
    """Puts the tiny model in a new Hub repository and points the zoo at it; returns the commit."""
    commit = server.add_repo(repo_id, tiny_zoo["folder"])
    data = json.loads(tiny_zoo["registry"].read_text())
    data["models"][NAME].update({"repo_id": repo_id, "revision": commit if pin else None})
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(data))
    monkeypatch.setenv(zoo_registry.REGISTRY_ENV, str(registry))
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    return commit


def zoo_cli(*argv: str) -> int:
    """Runs `sparse-keras zoo ...` through the command's own parser (`sparse_keras.cli.zoo`).

    (Not `sparse_keras.cli.main`, so that another module's sub-command cannot break these tests.)
    """
    from sparse_keras.cli import zoo as zoo_cli_module

    parser = argparse.ArgumentParser(prog="sparse-keras")
    zoo_cli_module.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["zoo", *argv])
    return args.func(args)


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{hf_server.free_port()}"


def cache_file(tmp_path, repo_id: str, commit: str, file_name: str) -> pathlib.Path:
    return (
        tmp_path
        / "hf-cache"
        / f"models--{repo_id.replace('/', '--')}"
        / "snapshots"
        / commit
        / file_name
    )


def assert_same_model(model, tiny_zoo):
    np.testing.assert_allclose(
        np.asarray(model(tiny_zoo["x"])), tiny_zoo["expected"], rtol=0, atol=1e-6
    )


def assert_same_tensors(source, compact, compressed: bool) -> None:
    """Both weights files hold the same groups, attributes and tensors (bit for bit)."""
    import h5py

    def tree(path):
        items = {}
        with h5py.File(path, "r") as f:

            def visit(name, obj):
                attrs = {k: np.asarray(v).tolist() for k, v in obj.attrs.items()}
                if isinstance(obj, h5py.Dataset):
                    items[name] = (attrs, obj[()], obj.compression)
                else:
                    items[name] = (attrs, None, None)

            f.visititems(visit)
        return items

    want, got = tree(source), tree(compact)
    assert want.keys() == got.keys()
    for name, (attrs, data, _) in want.items():
        assert got[name][0] == attrs, name
        if data is not None:
            np.testing.assert_array_equal(got[name][1], data, err_msg=name)
            if compressed and np.size(data) > 1:
                assert got[name][2] == "gzip", name


def fallback_warnings(record) -> list[str]:
    return [str(w.message) for w in record if FALLBACK_WARNING in str(w.message)]


def fallback_warnings_of(record) -> list:
    return [w for w in record if FALLBACK_WARNING in str(w.message)]


@pytest.fixture
def no_deserialisation(monkeypatch):
    """Fails the test if a model is built from a config (i.e. anything is deserialised)."""
    calls = []
    monkeypatch.setattr(artifacts, "model_from_config", lambda config: calls.append(config))
    return calls


# ----------------------------------------------------------------------------- loading


def test_first_download_then_cached_load_with_the_server_stopped(tiny_zoo, env, tmp_path):
    # A server of its own, so that stopping it leaves the session's server running.
    server = hf_server.LocalHub(tmp_path / "own-hub")
    (tmp_path / "own-hub").mkdir()
    commit = serve(server, tiny_zoo, env, tmp_path, "sparse-keras/first-download")
    server.start()
    try:
        model = zoo.load(NAME)
    finally:
        server.stop()
    assert_same_model(model, tiny_zoo)
    for file_name in zoo_registry.LOAD_FILES:
        assert cache_file(tmp_path, "sparse-keras/first-download", commit, file_name).is_symlink()

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # Same HF_ENDPOINT, nothing listening there now: the cache answers.
        again = zoo.load(NAME, compile=True)
    assert not fallback_warnings(record)
    assert again.optimizer is not None
    assert_same_model(again, tiny_zoo)


def test_pinned_revision_survives_a_tampered_main(
    local_hub, tiny_zoo, env, tmp_path, no_deserialisation
):
    repo_id = "sparse-keras/pinned"
    first = serve(local_hub, tiny_zoo, env, tmp_path, repo_id, pin=True)
    weights = (tiny_zoo["folder"] / "model.weights.h5").read_bytes()
    tampered = bytearray(weights)
    tampered[len(weights) // 2] ^= 0xFF
    second = local_hub.commit(repo_id, {"model.weights.h5": bytes(tampered)}, "replace the weights")

    paths = hub.fetch(NAME)  # the registry pins the first commit: main moving changes nothing
    assert paths["model.weights.h5"] == cache_file(tmp_path, repo_id, first, "model.weights.h5")
    assert hub.fetch(NAME, revision=first) == paths

    with pytest.raises(zoo.ChecksumError, match=r"model\.weights\.h5.*Nothing was loaded"):
        zoo.load(NAME, revision="main")
    assert not no_deserialisation
    bad = cache_file(tmp_path, repo_id, second, "model.weights.h5")
    assert not bad.exists() and not bad.is_symlink()
    # Only registered contents remain in the cache: the tampered blob went with its link.
    registered = set(zoo_registry.get_entry(NAME, tiny_zoo["registry"])["files"].values())
    blobs = (tmp_path / "hf-cache" / "models--sparse-keras--pinned" / "blobs").iterdir()
    assert {zoo_registry.file_sha256(blob) for blob in blobs} <= registered


def test_tampered_cached_file_is_refused_and_removed(
    local_hub, tiny_zoo, env, tmp_path, monkeypatch
):
    repo_id = "sparse-keras/tampered-cache"
    commit = serve(local_hub, tiny_zoo, env, tmp_path, repo_id)
    zoo.load(NAME)
    link = cache_file(tmp_path, repo_id, commit, "model.weights.h5")
    blob = link.resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))

    calls = []
    real = artifacts.model_from_config
    monkeypatch.setattr(artifacts, "model_from_config", lambda config: calls.append(config))
    with pytest.raises(zoo.ChecksumError, match=r"model\.weights\.h5: expected sha256"):
        zoo.load(NAME)
    assert not calls, "a model was built from a tampered download"
    assert not link.exists() and not link.is_symlink() and not blob.exists()

    monkeypatch.setattr(artifacts, "model_from_config", real)
    assert_same_model(zoo.load(NAME), tiny_zoo)  # the next load downloads a good copy


def test_offline_mode_uses_the_cache_then_the_checkout_copy(local_hub, tiny_zoo, env, tmp_path):
    serve(local_hub, tiny_zoo, env, tmp_path, "sparse-keras/offline")
    zoo.load(NAME)
    env.setenv("HF_HUB_OFFLINE", "1")
    env.setenv("HF_ENDPOINT", dead_endpoint())  # proves no request is needed
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert_same_model(zoo.load(NAME), tiny_zoo)
    assert not fallback_warnings(record)

    env.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match="no local copy"):
        zoo.load(NAME)
    env.setenv(zoo_registry.ZOO_DIR_ENV, str(tiny_zoo["folder"].parent))
    with pytest.warns(UserWarning, match=FALLBACK_WARNING):
        assert_same_model(zoo.load(NAME), tiny_zoo)


def test_unreachable_endpoint_falls_back_to_the_checkout_copy(tiny_zoo, env, tmp_path, monkeypatch):
    env.setenv(zoo_registry.REGISTRY_ENV, str(tiny_zoo["registry"]))
    env.setenv("HF_ENDPOINT", dead_endpoint())
    env.setenv(zoo_registry.ZOO_DIR_ENV, str(tiny_zoo["folder"].parent))
    with pytest.warns(UserWarning, match="Using the copy in .*verifying its sha256"):
        assert_same_model(zoo.load(NAME), tiny_zoo)

    # A tampered checkout copy is refused too, and left where it is.
    copy = tmp_path / "zoo" / NAME
    shutil.copytree(tiny_zoo["folder"], copy)
    (copy / "config.json").write_text(
        (copy / "config.json").read_text().replace('"seed": 0', '"seed": 1')
    )
    env.setenv(zoo_registry.ZOO_DIR_ENV, str(copy.parent))
    calls = []
    monkeypatch.setattr(artifacts, "model_from_config", lambda config: calls.append(config))
    with (
        pytest.warns(UserWarning, match=FALLBACK_WARNING),
        pytest.raises(zoo.ChecksumError, match="config.json"),
    ):
        zoo.load(NAME)
    assert not calls and (copy / "config.json").exists()


def test_two_processes_load_the_same_model_at_once(local_hub, tiny_zoo, env, tmp_path):
    """This process and a child load the same model into one empty cache at the same moment.

    The child imports everything first and waits for a go-ahead, so that both downloads
    overlap instead of one process finding the other's finished cache entry.
    """
    repo_id = "sparse-keras/concurrent"
    serve(local_hub, tiny_zoo, env, tmp_path, repo_id)
    script = (
        "import json, sys, numpy as np\n"
        "from sparse_keras import zoo\n"
        "print('READY', flush=True)\n"
        "sys.stdin.readline()\n"
        f"model = zoo.load({NAME!r})\n"
        "x = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype('float32')\n"
        "print('OUTPUT', json.dumps(np.asarray(model(x)).tolist()), flush=True)\n"
    )
    stderr = tmp_path / "child.err"
    with open(stderr, "w") as err_file:
        child = subprocess.Popen(
            [sys.executable, "-c", script],
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "READY", stderr.read_text()[-3000:]
            child.stdin.write("go\n")
            child.stdin.flush()
            model = zoo.load(NAME)
            out, _ = child.communicate(timeout=240)
        finally:
            child.kill()
    assert child.returncode == 0, stderr.read_text()[-3000:]
    assert_same_model(model, tiny_zoo)
    line = next(line for line in out.splitlines() if line.startswith("OUTPUT "))
    np.testing.assert_allclose(np.array(json.loads(line[7:])), tiny_zoo["expected"], atol=1e-6)
    blobs = sorted(
        p.name
        for p in (tmp_path / "hf-cache" / "models--sparse-keras--concurrent" / "blobs").iterdir()
    )
    assert len(blobs) == len(zoo_registry.LOAD_FILES) and not any(
        b.endswith(".incomplete") for b in blobs
    )


# ----------------------------------------------------------------------------- why the Hub failed


def load_error(name: str = NAME, **kwargs) -> str:
    with pytest.raises(FileNotFoundError) as err:
        zoo.load(name, **kwargs)
    return str(err.value)


def test_offline_mode_is_named_as_such(tiny_zoo, env, tmp_path):
    env.setenv(zoo_registry.REGISTRY_ENV, str(tiny_zoo["registry"]))
    env.setenv("HF_HUB_OFFLINE", "1")  # set after import: read at call time
    message = load_error()
    assert "offline mode is set (HF_HUB_OFFLINE)" in message
    assert "unset HF_HUB_OFFLINE" in message and "could not be reached" not in message
    assert "outgoing traffic has been disabled" not in message  # the Hub library's wording


def test_offline_mode_unset_after_import_is_honoured(local_hub, tiny_zoo, env, tmp_path):
    from huggingface_hub import constants

    serve(local_hub, tiny_zoo, env, tmp_path, "sparse-keras/back-online")
    env.setattr(constants, "HF_HUB_OFFLINE", True)  # as if HF_HUB_OFFLINE=1 at import
    assert_same_model(zoo.load(NAME), tiny_zoo)  # the variable is unset now: downloads
    assert constants.HF_HUB_OFFLINE is True  # and the library's own setting is left alone


def test_unreachable_hub_is_named_with_its_endpoint(tiny_zoo, env):
    env.setenv(zoo_registry.REGISTRY_ENV, str(tiny_zoo["registry"]))
    endpoint = dead_endpoint()
    env.setenv("HF_ENDPOINT", endpoint)
    message = load_error()
    assert f"{endpoint} could not be reached" in message and "HF_ENDPOINT" in message
    assert "offline mode" not in message
    assert f"{zoo_registry.ZOO_DIR_ENV}" in message and "no local copy" in message


def test_missing_repository_is_named_and_the_warning_points_at_the_caller(
    local_hub, tiny_zoo, env, tmp_path
):
    serve(local_hub, tiny_zoo, env, tmp_path, "sparse-keras/served")
    data = json.loads((tmp_path / "registry.json").read_text())
    data["models"][NAME]["repo_id"] = "sparse-keras/never-published"
    (tmp_path / "registry.json").write_text(json.dumps(data))
    message = load_error()
    assert "sparse-keras/never-published" in message and "not found" in message
    assert "could not be reached" not in message

    env.setenv(zoo_registry.ZOO_DIR_ENV, str(tiny_zoo["folder"].parent))
    from sparse_keras import robustness

    for load in (zoo.load, robustness.load_model):  # directly, and from inside the package
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            assert_same_model(load(NAME), tiny_zoo)
        (warning,) = fallback_warnings_of(record)
        assert "not found" in str(warning.message) and "verifying its sha256" in str(
            warning.message
        )
        assert warning.filename == __file__, warning.filename


def test_an_explicit_revision_that_does_not_exist_never_falls_back(
    local_hub, tiny_zoo, env, tmp_path
):
    serve(local_hub, tiny_zoo, env, tmp_path, "sparse-keras/explicit-revision")
    env.setenv(zoo_registry.ZOO_DIR_ENV, str(tiny_zoo["folder"].parent))  # a copy exists
    message = load_error(revision="0" * 40)
    assert "No local copy is used for an explicit revision" in message
    assert "0" * 40 in message
    # Without network the same holds: the copy is not that revision.
    env.setenv("HF_ENDPOINT", dead_endpoint())
    assert "could not be reached" in load_error(revision="v9")


def test_checksum_mismatch_says_what_to_do(local_hub, tiny_zoo, env, tmp_path):
    repo_id = "sparse-keras/checksum-advice"
    serve(local_hub, tiny_zoo, env, tmp_path, repo_id)
    local_hub.commit(repo_id, {"config.json": b"{}"}, "break the config")
    with pytest.raises(zoo.ChecksumError) as err:
        zoo.load(NAME)
    assert "config.json: expected sha256" in str(err.value)
    assert "load without a revision" in str(err.value)


def test_the_package_ships_the_readme_models(env, tmp_path):
    """No Hub, no checkout copy: the two README models come from the package, verified."""
    from sparse_keras import _embedded

    env.delenv(zoo_registry.REGISTRY_ENV, raising=False)
    env.setenv("HF_HUB_OFFLINE", "1")
    for name in _embedded.EMBEDDED_MODELS:
        with pytest.warns(UserWarning, match="offline mode is set") as record:
            paths = zoo.fetch(name)
        assert all(path.parent == _embedded.ZOO_DIR / name for path in paths.values())
        assert f"_embedded/zoo/{name}" in str(record[0].message)
    message = load_error("mnist_sparse_cnn1")
    assert "from the Hub or from a folder of zoo copies named by SPARSE_KERAS_ZOO_DIR" in message
    assert "only mnist_sparse_cnn2 and mnist_dense_cnn2 ship with the package" in message


def test_embedded_models_equal_the_registry_and_the_zoo_folders():
    """The wheel's copies are the registered files (`python -m training.publish embed`)."""
    from sparse_keras import _embedded

    for name in _embedded.EMBEDDED_MODELS:
        entry = zoo_registry.get_entry(name, zoo_registry.PACKAGE_REGISTRY)
        for file_name in zoo_registry.LOAD_FILES:
            shipped = _embedded.ZOO_DIR / name / file_name
            assert zoo_registry.file_sha256(shipped) == entry["files"][file_name], (
                f"{shipped} differs from the registry: run python -m training.publish embed"
            )
            if (REPO / "zoo" / name).is_dir():
                assert shipped.read_bytes() == (REPO / "zoo" / name / file_name).read_bytes()


def test_refresh_embedded_copies_the_zoo_files(tiny_zoo, tmp_path):
    zoo_dir = tmp_path / "zoo"
    shutil.copytree(tiny_zoo["folder"], zoo_dir / "mnist_sparse_cnn2")
    written = packaging.refresh_embedded(
        zoo_dir, names=("mnist_sparse_cnn2",), embedded_dir=tmp_path / "embedded"
    )
    assert written == [tmp_path / "embedded" / "mnist_sparse_cnn2"]
    assert sorted(p.name for p in written[0].iterdir()) == sorted(zoo_registry.LOAD_FILES)
    with pytest.raises(ValueError, match="not embedded"):
        packaging.refresh_embedded(zoo_dir, names=(NAME,), embedded_dir=tmp_path / "e")


def test_committed_weights_are_stored_compressed():
    import h5py

    def compression_of_tensors(path) -> dict[str, str | None]:
        found = {}
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda name, obj: (
                    found.__setitem__(name, obj.compression)
                    if isinstance(obj, h5py.Dataset) and obj.size > 1
                    else None
                )
            )
        return found

    for folder in _checkout_folders():
        found = compression_of_tensors(folder / "model.weights.h5")
        assert found and set(found.values()) == {"gzip"}, (folder.name, found)


def test_unknown_name_lists_the_available_models(tiny_zoo, env):
    with pytest.raises(ValueError, match=f"Unknown zoo model 'mnist_nope'.* Available: {NAME}"):
        zoo.load("mnist_nope", registry=tiny_zoo["registry"])
    with pytest.raises(ValueError, match="gsc_sparse_cnn2"):
        zoo.info("nope", registry=zoo_registry.PACKAGE_REGISTRY)


def test_closest_available_prefers_the_same_network():
    models = {
        "gsc_sparse_cnn2": {"available": False},
        "fsdd_sparse_cnn2": {"available": True},
        "gsc12v2_sparse_cnn2": {"available": True},
        "gsc12v2_dense_cnn2": {"available": True},
        "mnist_sparse_cnn2": {"available": True},
        "mnist_dense_cnn1": {"available": False},
    }
    closest = zoo_registry.closest_available
    # Same network; of those, a dataset that starts with the one asked for.
    assert closest("gsc_sparse_cnn2", models) == "gsc12v2_sparse_cnn2"
    assert closest("gsc_dense_cnn2", models) == "gsc12v2_dense_cnn2"
    # Same network, no dataset match: the first such name.
    assert closest("kws_sparse_cnn2", models) == "fsdd_sparse_cnn2"
    # No available model of that network: the most similar available name.
    assert closest("mnist_sparse_cnn3", models) == "mnist_sparse_cnn2"
    assert closest("zzz", models) is None
    # Never itself, never a model without weights.
    assert closest("mnist_dense_cnn1", models) != "mnist_dense_cnn1"
    assert closest("mnist_dense_cnn1", {"mnist_dense_cnn1": {"available": True}}) is None


def test_unknown_name_suggests_the_closest(env):
    env.delenv(zoo_registry.REGISTRY_ENV, raising=False)
    with pytest.raises(ValueError, match="Did you mean 'mnist_sparse_cnn2'"):
        zoo.load("mnist_sparse_cnn3")


def test_gsc_models_are_listed_without_weights(env):
    env.delenv(zoo_registry.REGISTRY_ENV, raising=False)
    info = zoo.info("gsc_sparse_cnn2")
    assert info["dataset"] == "gsc" and not info["available"] and not info["files"]
    with pytest.raises(
        zoo.WeightsNotAvailableError,
        match="Speech Commands.*The closest available model is 'gsc12v2_sparse_cnn2' "
        r"\(the same network.*python -m training.train --recipe gsc_sparse_cnn2",
    ):
        zoo.load("gsc_sparse_cnn2")
    rows = {row["name"]: row for row in zoo.list_models()}
    assert rows["gsc_super_sparse_cnn2"]["available"] is False
    assert set(rows["gsc_dense_cnn2"]) == {
        "name",
        "dataset",
        "clean_accuracy",
        "noise_score",
        "max_score",
        "parameters",
        "nonzero_parameters",
        "available",
    }


def test_cli_list_and_info(tiny_zoo, env, capsys):
    assert zoo_cli("list", "--registry", str(tiny_zoo["registry"])) == 0
    out = capsys.readouterr().out
    assert NAME in out and "11.00%" in out and "yes" in out
    assert zoo_cli("info", NAME, "--registry", str(tiny_zoo["registry"])) == 0
    info = json.loads(capsys.readouterr().out)
    assert (
        info["dataset"] == "mnist"
        and info["metrics"]["nonzero_parameters"] < info["metrics"]["parameters"]
    )


# ----------------------------------------------------------------------------- packaging


def test_packaged_folder_matches_its_run(tiny_zoo):
    folder = tiny_zoo["folder"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(zoo_registry.FILE_NAMES)
    result = json.loads(
        (tiny_zoo["root"] / "results" / "mnist_sparse_cnn2" / "seed0.json").read_text()
    )
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["clean_accuracy"] == result["clean_accuracy"]
    assert (
        metrics["noise_accuracy"] == result["noise"]["accuracies"]
        and metrics["noise_score"] == result["noise_score"]
    )
    assert metrics["max_score"] == 110_000 and metrics["seed"] == 0
    config = json.loads((folder / "config.json").read_text())
    assert config["arguments"] == {
        "name": "mnist_sparse_cnn2",
        "seed": 0,
        "overrides": hf_server.TINY_OVERRIDES,
    }
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: keras" in card and "model-index" in card
    assert "99.09 ± 0.05" in card and "11.00" in card  # the paper's row next to ours
    weights = tiny_zoo["root"] / "runs" / "mnist_sparse_cnn2" / "seed0" / "final.weights.h5"
    assert_same_tensors(weights, folder / "model.weights.h5", compressed=True)
    entry = zoo_registry.get_entry(NAME, tiny_zoo["registry"])
    assert (
        entry["available"]
        and entry["revision"] is None
        and entry["repo_id"] == f"sparse-keras/{NAME}"
    )
    assert entry["metrics"]["noise_score"] == result["noise_score"]


def test_weights_trained_on_other_data_never_get_a_gsc_name(tmp_path):
    """A GSC network trained on FSDD is packaged as fsdd_..., described as FSDD, without the paper's row."""
    overrides = {"conv_filters": [4, 4], "conv_k": [60, 20], "hidden_units": 16, "hidden_k": 4}
    hf_server.make_training_run(
        tmp_path, "fsdd_sparse_cnn2", 0, overrides, 0, network="gsc_sparse_cnn2", dataset="fsdd"
    )
    registry = hf_server.empty_registry(tmp_path / "registry.json")
    dirs = {
        "runs_dir": tmp_path / "runs",
        "results_dir": tmp_path / "results",
        "zoo_dir": tmp_path / "zoo",
    }
    with pytest.raises(ValueError, match="must start with 'fsdd_'"):
        packaging.package("fsdd_sparse_cnn2", 0, name="gsc_sparse_cnn2", registry=registry, **dirs)
    assert zoo_registry.read_registry(registry)["models"] == {}

    folder = packaging.package("fsdd_sparse_cnn2", 0, registry=registry, **dirs)
    config = json.loads((folder / "config.json").read_text())
    assert config["dataset"] == "fsdd" and config["arguments"]["name"] == "gsc_sparse_cnn2"
    assert config["class_names"][2:] == [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    ]
    card = (folder / "README.md").read_text()
    assert "not comparable" in card and "paper, Table" not in card and "- fsdd" in card
    assert zoo_registry.get_entry("fsdd_sparse_cnn2", registry)["dataset"] == "fsdd"
    zoo.check(folder, registry=registry)


@pytest.fixture
def folder_copy(tiny_zoo, tmp_path):
    copy = tmp_path / "zoo" / NAME
    shutil.copytree(tiny_zoo["folder"], copy)
    return copy


def test_check_accepts_the_packaged_folder(tiny_zoo, folder_copy, capsys):
    zoo.check(folder_copy, registry=tiny_zoo["registry"])
    assert zoo_cli("check", str(folder_copy), "--registry", str(tiny_zoo["registry"])) == 0
    assert "OK" in capsys.readouterr().out


def test_check_catches_a_missing_card(tiny_zoo, folder_copy, capsys):
    (folder_copy / "README.md").unlink()
    with pytest.raises(zoo.ZooCheckError, match="README.md is missing"):
        zoo.check(folder_copy, registry=tiny_zoo["registry"])
    from training import publish

    assert publish.main(["check", str(folder_copy), "--registry", str(tiny_zoo["registry"])]) == 1
    assert "README.md is missing" in capsys.readouterr().out


def test_check_catches_a_card_without_header_and_bad_checksums(tiny_zoo, folder_copy):
    card = (folder_copy / "README.md").read_text()
    (folder_copy / "README.md").write_text(card.split("\n---\n", 1)[1])
    weights = bytearray((folder_copy / "model.weights.h5").read_bytes())
    weights[len(weights) // 2] ^= 0x01
    (folder_copy / "model.weights.h5").write_bytes(bytes(weights))
    with pytest.raises(zoo.ZooCheckError) as err:
        zoo.check(folder_copy, registry=tiny_zoo["registry"], load_weights=False)
    problems = "\n".join(err.value.problems)
    assert "no YAML header" in problems
    assert "model.weights.h5 sha256" in problems and "README.md sha256" in problems


def test_check_catches_a_card_whose_metrics_disagree(tiny_zoo, folder_copy):
    card = (folder_copy / "README.md").read_text()
    (folder_copy / "README.md").write_text(card.replace("value: 11.0\n", "value: 99.5\n", 1))
    with pytest.raises(
        zoo.ZooCheckError, match="model-index accuracy is 99.5, metrics.json says 11.0"
    ):
        zoo.check(folder_copy, registry=tiny_zoo["registry"], load_weights=False)


class RecordingHfApi:
    """Stands in for `huggingface_hub.HfApi` (olah cannot receive uploads)."""

    calls: list = []

    def __init__(self, endpoint=None, token=None):
        self.calls.append(("init", endpoint, token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return type("CommitInfo", (), {"oid": "0123456789abcdef0123456789abcdef01234567"})()


def test_publish_checks_uploads_and_pins_the_commit(tiny_zoo, folder_copy, tmp_path, monkeypatch):
    import huggingface_hub

    registry = tmp_path / "registry.json"
    shutil.copyfile(tiny_zoo["registry"], registry)
    RecordingHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")

    commit = packaging.publish(folder_copy, registry=registry, token="hf_test")
    assert commit == "0123456789abcdef0123456789abcdef01234567"
    assert RecordingHfApi.calls[0] == ("init", "http://127.0.0.1:9", "hf_test")
    upload = RecordingHfApi.calls[-1][1]
    assert upload["repo_id"] == f"sparse-keras/{NAME}" and upload["folder_path"] == str(folder_copy)
    assert zoo_registry.get_entry(NAME, registry)["revision"] == commit

    RecordingHfApi.calls = []
    (folder_copy / "README.md").unlink()
    with pytest.raises(zoo.ZooCheckError, match="README.md is missing"):
        packaging.publish(folder_copy, registry=registry)
    assert RecordingHfApi.calls == []


# ----------------------------------------------------------------------------- the checkout's zoo


def _checkout_folders() -> list[pathlib.Path]:
    zoo_root = REPO / "zoo"
    return sorted(p for p in zoo_root.iterdir() if p.is_dir()) if zoo_root.is_dir() else []


def test_registry_names_match_their_training_data():
    models = zoo_registry.read_registry(zoo_registry.PACKAGE_REGISTRY)["models"]
    assert models, "the package registry is empty"
    for name, entry in models.items():
        assert name.startswith(entry["dataset"] + "_"), name
        assert entry["repo_id"] and entry["network"]
        if entry["available"]:
            assert set(entry["files"]) == set(zoo_registry.FILE_NAMES) and entry["metrics"], name
            assert (REPO / "zoo" / name).is_dir(), (
                f"{name} is available but zoo/{name}/ is not committed"
            )
        else:
            assert entry["train_command"] and entry["unavailable_reason"], name


@pytest.mark.parametrize(
    "folder", _checkout_folders() or [None], ids=lambda p: p.name if p else "none"
)
def test_committed_zoo_folders_match_the_registry_and_results(folder):
    if folder is None:
        pytest.skip("no zoo/<name>/ folders committed yet")
    entry = zoo_registry.get_entry(folder.name, zoo_registry.PACKAGE_REGISTRY)
    for file_name in zoo_registry.FILE_NAMES:
        assert zoo_registry.file_sha256(folder / file_name) == entry["files"][file_name], file_name
    metrics = json.loads((folder / "metrics.json").read_text())
    result = json.loads((REPO / metrics["source"]).read_text())
    assert (metrics["recipe"], metrics["seed"]) == (result["recipe"], result["seed"])
    assert metrics["clean_accuracy"] == result["clean_accuracy"]
    assert metrics["noise_score"] == result["noise_score"]
    assert metrics["noise_levels"] == result["noise"]["noise_levels"]
    assert metrics["noise_accuracy"] == result["noise"]["accuracies"]
    assert entry["metrics"]["clean_accuracy"] == result["clean_accuracy"]
    assert entry["metrics"]["noise_score"] == result["noise_score"]


def data_subdir(metrics: dict) -> str:
    from sparse_keras.data import gsc12v2

    return gsc12v2.DATASET_SUBDIR if metrics["dataset"] == "gsc12v2" else metrics["dataset"]


@pytest.mark.parametrize(
    "folder", _checkout_folders() or [None], ids=lambda p: p.name if p else "none"
)
def test_committed_zoo_weights_reproduce_their_clean_accuracy(folder, data_dir):
    """The weights themselves, run on the real test set, give the accuracy the card claims.

    (The test above compares the files' numbers with each other; this one runs the model.)
    """
    from sparse_keras import robustness

    if folder is None:
        pytest.skip("no zoo/<name>/ folders committed yet")
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    model = artifacts.model_from_config(config)
    model.load_weights(folder / "model.weights.h5")
    # Each dataset finds its own folder under the data root (gsc12v2 lives in gsc_test_v0.02).
    report = robustness.evaluate(
        model, metrics["dataset"], (0.0,), data_dir=data_dir / data_subdir(metrics), progress=False
    )
    (correct,) = report.correct
    # Within one test example: the features of a clip or image may round differently
    # from those of the run that measured it (another batch size, another library build).
    assert abs(correct - metrics["clean_accuracy"] * report.test_size) <= 1, (
        f"{folder.name}: {correct} of {report.test_size} correct, the card claims "
        f"{metrics['clean_accuracy']:.4%}"
    )


# ----------------------------------------------------------------------------- the publish runbook


class LocalHubApi:
    """`huggingface_hub.HfApi` for the local hub: an upload becomes a git commit there.

    olah is a read-only mirror, so the stand-in does what the Hub does on
    `upload_folder`: one new commit holding the folder's files, whose id it returns.
    """

    hub: hf_server.LocalHub | None = None

    def __init__(self, endpoint=None, token=None):
        assert endpoint == self.hub.endpoint and token is None  # HfApi reads HF_TOKEN itself

    def create_repo(self, repo_id, repo_type="model", private=False, exist_ok=False):
        assert repo_type == "model" and exist_ok

    def upload_folder(self, repo_id, repo_type, folder_path, commit_message):
        folder, repo = pathlib.Path(folder_path), self.hub.repo_path(repo_id)
        files = {f.name: f.read_bytes() for f in folder.iterdir()}
        if not repo.exists():
            commit = self.hub.add_repo(repo_id, folder)
        elif all((repo / n).is_file() and (repo / n).read_bytes() == d for n, d in files.items()):
            # As the Hub does: no empty commit; the current head is returned.
            commit = hf_server._git(repo, "rev-parse", "HEAD")
        else:
            commit = self.hub.commit(repo_id, files, commit_message)
        return type("CommitInfo", (), {"oid": commit})()


def _runbook_commands() -> list[list[str]]:
    """The `python -m training.publish ...` lines of docs/zoo.md's runbook, as argv lists."""
    import shlex

    text = (REPO / "docs" / "zoo.md").read_text()
    block = text.split("## Making and publishing a model", 1)[1].split("```bash", 1)[1]
    block = block.split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line.split("#", 1)[0])
        if "training.publish" in words:
            commands.append(words[words.index("training.publish") + 1 :])
    return commands


def test_publish_runbook_end_to_end(local_hub, env, tmp_path, monkeypatch, capsys):
    """docs/zoo.md's commands, run as written: package, check, publish, then `load` pins."""
    import huggingface_hub

    from training import publish

    commands = _runbook_commands()
    assert [c[0] for c in commands] == ["package", "check", "publish"], commands
    name = commands[0][commands[0].index("--recipe") + 1]
    model = hf_server.make_training_run(tmp_path / "train", recipe=name)
    registry = hf_server.empty_registry(tmp_path / "registry.json")
    env.setenv(zoo_registry.REGISTRY_ENV, str(registry))
    env.setenv(zoo_registry.ZOO_DIR_ENV, str(tmp_path / "zoo"))
    env.setenv("HF_ENDPOINT", local_hub.endpoint)
    env.setenv("HF_TOKEN", "hf_test")
    LocalHubApi.hub = local_hub
    monkeypatch.setattr(huggingface_hub, "HfApi", LocalHubApi)
    # Only the training folders differ from a checkout (they default to training/).
    extra = {
        "package": [
            "--runs-dir",
            str(tmp_path / "train" / "runs"),
            "--results-dir",
            str(tmp_path / "train" / "results"),
        ]
    }
    for argv in commands:
        assert publish.main([*argv, *extra.get(argv[0], [])]) == 0, capsys.readouterr()

    entry = zoo_registry.get_entry(name, registry)
    repo = local_hub.repo_path(entry["repo_id"])
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert entry["revision"] == head.stdout.strip()  # pinned to the uploaded commit
    assert f"commit {entry['revision']}" in capsys.readouterr().out
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        loaded = zoo.load(name)  # from the Hub at the pinned revision, no fallback
    assert not fallback_warnings(record)
    x = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    snapshot = cache_file(tmp_path, entry["repo_id"], entry["revision"], "model.weights.h5")
    assert snapshot.is_symlink()

    # Publishing again without changes moves nothing: no new commit, the same pin.
    assert publish.main(commands[2]) == 0
    assert zoo_registry.get_entry(name, registry)["revision"] == entry["revision"]


def _result_with_validation(results: pathlib.Path, recipe: str, seed: int, val: list[float]):
    folder = results / recipe
    folder.mkdir(parents=True, exist_ok=True)
    history = [{"epoch": e, "val_accuracy": v} for e, v in enumerate(val)]
    selected = max(range(len(val)), key=lambda e: (val[e], -e))
    (folder / f"seed{seed}.json").write_text(
        json.dumps({"seed": seed, "history": history, "selected_epoch": selected})
    )


def test_best_validation_seed_never_looks_at_the_test_set(tmp_path):
    # Kept epochs: seed 0 at 0.88, seed 1 at 0.90, seed 2 at 0.90 (a tie: the lower seed).
    _result_with_validation(tmp_path, "r", 0, [0.5, 0.88, 0.87])
    _result_with_validation(tmp_path, "r", 1, [0.90, 0.6])
    _result_with_validation(tmp_path, "r", 2, [0.7, 0.90])
    assert packaging.best_validation_seed(tmp_path, "r") == (
        1,
        "the best validation accuracy (0.9000) of 3 seeds",
    )
    # MNIST-style runs record no validation accuracy: a clear error, not a guess.
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "seed0.json").write_text(json.dumps({"seed": 0, "history": [{}]}))
    with pytest.raises(FileNotFoundError, match="records a validation accuracy"):
        packaging.best_validation_seed(tmp_path, "m")
    with pytest.raises(ValueError, match="non-negative integer or 'best-val', got 'best'"):
        packaging.package("r", "best", runs_dir=tmp_path, results_dir=tmp_path, zoo_dir=tmp_path)


def test_package_cli_takes_best_val_or_a_seed(capsys):
    import argparse

    from training import publish

    parser = argparse.ArgumentParser()
    publish.add_packaging_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["package", "--recipe", "r", "--seed", "best-val"])
    assert args.seed == "best-val"
    assert parser.parse_args(["package", "--recipe", "r", "--seed", "3"]).seed == 3
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["package", "--recipe", "r", "--seed", "-1"])
    assert exit_info.value.code == 2
    assert "expected a non-negative integer or 'best-val', got '-1'" in capsys.readouterr().err


def test_gsc12v2_cards_say_what_the_data_are():
    for name in ("gsc12v2_sparse_cnn2", "gsc12v2_dense_cnn2", "gsc12v2_super_sparse_cnn2"):
        folder = pathlib.Path(__file__).resolve().parents[1] / "zoo" / name
        card = (folder / "README.md").read_text()
        metrics = json.loads((folder / "metrics.json").read_text())
        assert "official v0.02 12-class **test set**" in card and "re-split here by speaker" in card
        assert "Table 2" in card and "**not comparable**" in card
        # Chosen by validation: the packaged seed has the best kept validation accuracy.
        assert metrics["seeds"]["packaged_because"].startswith("the best validation accuracy")
        assert "chosen for the best validation accuracy" in card
        assert metrics["selection"].startswith("epoch with the best validation accuracy")
