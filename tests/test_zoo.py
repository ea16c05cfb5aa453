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

REPO = pathlib.Path(__file__).resolve().parents[1]
NAME = "mnist_tiny_cnn2"
FALLBACK_WARNING = "Could not download zoo model"


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A packaged tiny model: its folder, registry, and reference inputs and outputs."""
    root = tmp_path_factory.mktemp("tiny_zoo")
    model = hf_server.make_training_run(root)
    registry = hf_server.empty_registry(root / "registry.json")
    folder = zoo.package(
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
    """Runs `sparse-keras zoo ...` through the zoo's own `register_cli`.

    (Not `sparse_keras.cli.main`, so that another module's sub-command cannot break these tests.)
    """
    parser = argparse.ArgumentParser(prog="sparse-keras")
    zoo.register_cli(parser.add_subparsers(dest="command"))
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


def fallback_warnings(record) -> list[str]:
    return [str(w.message) for w in record if FALLBACK_WARNING in str(w.message)]


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


def test_unknown_name_lists_the_available_models(tiny_zoo, env):
    with pytest.raises(ValueError, match=f"Unknown zoo model 'mnist_nope'. Available: {NAME}"):
        zoo.load("mnist_nope", registry=tiny_zoo["registry"])
    with pytest.raises(ValueError, match="gsc_sparse_cnn2"):
        zoo.info("nope", registry=zoo_registry.PACKAGE_REGISTRY)


def test_gsc_models_are_listed_without_weights(env):
    env.delenv(zoo_registry.REGISTRY_ENV, raising=False)
    info = zoo.info("gsc_sparse_cnn2")
    assert info["dataset"] == "gsc" and not info["available"] and not info["files"]
    with pytest.raises(
        zoo.WeightsNotAvailableError,
        match="Speech Commands.*python -m training.train --recipe gsc_sparse_cnn2",
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
    assert zoo_registry.file_sha256(folder / "model.weights.h5") == zoo_registry.file_sha256(
        weights
    )
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
        zoo.package("fsdd_sparse_cnn2", 0, name="gsc_sparse_cnn2", registry=registry, **dirs)
    assert zoo_registry.read_registry(registry)["models"] == {}

    folder = zoo.package("fsdd_sparse_cnn2", 0, registry=registry, **dirs)
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

    commit = zoo.publish(folder_copy, registry=registry, token="hf_test")
    assert commit == "0123456789abcdef0123456789abcdef01234567"
    assert RecordingHfApi.calls[0] == ("init", "http://127.0.0.1:9", "hf_test")
    upload = RecordingHfApi.calls[-1][1]
    assert upload["repo_id"] == f"sparse-keras/{NAME}" and upload["folder_path"] == str(folder_copy)
    assert zoo_registry.get_entry(NAME, registry)["revision"] == commit

    RecordingHfApi.calls = []
    (folder_copy / "README.md").unlink()
    with pytest.raises(zoo.ZooCheckError, match="README.md is missing"):
        zoo.publish(folder_copy, registry=registry)
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
