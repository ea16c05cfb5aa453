"""What a user installs: the wheel's contents, its offline main job, the documented extras.

The wheel is built once per session from this checkout (`pip wheel --no-deps
--no-build-isolation`, about 20 s). The end-to-end test installs it into a fresh virtual
environment and runs `sparse-keras evaluate mnist_sparse_cnn2` outside the checkout, offline,
with no data folder: it is marked slow (the full 110,000-image protocol takes minutes on CPU).
"""

from __future__ import annotations

import configparser
import json
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EMBEDDED = (
    "sparse_keras/_embedded/mnist/t10k-images-idx3-ubyte.gz",
    "sparse_keras/_embedded/mnist/t10k-labels-idx1-ubyte.gz",
    "sparse_keras/_embedded/mnist/README.md",
    "sparse_keras/_embedded/zoo/mnist_sparse_cnn2/config.json",
    "sparse_keras/_embedded/zoo/mnist_sparse_cnn2/model.weights.h5",
    "sparse_keras/_embedded/zoo/mnist_dense_cnn2/config.json",
    "sparse_keras/_embedded/zoo/mnist_dense_cnn2/model.weights.h5",
    "sparse_keras/zoo/registry.json",
)


def _extras() -> dict[str, set[str]]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    extras = {}
    for name, value in config["options.extras_require"].items():
        extras[name] = {
            re.split(r"[<>=!~; ]", line.strip(), maxsplit=1)[0].lower()
            for line in value.splitlines()
            if line.strip()
        }
    return extras


def test_extras_table_in_the_docs_matches_setup_cfg():
    text = (REPO / "docs" / "installation.md").read_text()
    section = text.split("## Extras", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        match = re.match(r"\| `([\w-]+)` \| ([^|]+) \|", line)
        if match:
            documented[match.group(1)] = {
                part.strip().lower() for part in match.group(2).split(",") if part.strip()
            }
    assert documented == _extras()


def test_required_dependencies_leave_out_tensorflow_io():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert "tensorflow-io" not in config["options"]["install_requires"]
    assert "scipy" in _extras()["reproduce"]  # training.aggregate needs it


def test_every_required_dependency_is_imported_by_the_package():
    """A required dependency that only training/ or the tests use belongs in an extra."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    required = [
        re.split(r"[<>=!\[ ]", line.strip())[0]
        for line in config["options"]["install_requires"].strip().splitlines()
    ]
    source = "\n".join(p.read_text() for p in (REPO / "sparse_keras").rglob("*.py"))
    unused = [
        name
        for name in required
        if not re.search(rf"^\s*(import|from) {name.replace('-', '_')}\b", source, re.MULTILINE)
    ]
    assert unused == []


def test_license_and_attributions():
    license_text = (REPO / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the sparse_keras authors" in license_text
    mnist_readme = (REPO / "sparse_keras" / "_embedded" / "mnist" / "README.md").read_text()
    assert "CC BY-SA 3.0" in mnist_readme and "LeCun" in mnist_readme


def test_docs_never_ask_for_sudo():
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    offenders = [
        f"{page.relative_to(REPO)}:{number}"
        for page in pages
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if re.search(r"\bsudo\b", line)
    ]
    assert not offenders, offenders


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (path,) = out.glob("sparse_keras-*.whl")
    return path


def test_wheel_ships_the_embedded_data_and_stays_small(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert set(EMBEDDED) <= names, sorted(set(EMBEDDED) - names)
        # setuptools >= 77 puts it under licenses/, older releases beside METADATA.
        assert any(".dist-info/" in name and name.endswith("/LICENSE") for name in names)
        assert "sparse_keras/cli/__init__.py" in names and "sparse_keras/cli.py" not in names
        # The C++ sources compiled on first use: the k-winners training op, the inference kernels.
        assert "sparse_keras/layers/_native/kwinners_ops.cc" in names
        assert "sparse_keras/compute/_native/sparse_kernels.cc" in names
        # Nothing stale from an earlier build folder: every module is in the source tree.
        modules = [n for n in names if n.startswith("sparse_keras/") and n.endswith(".py")]
        assert [n for n in modules if not (REPO / n).is_file()] == []
        # The training split and the other zoo models stay out.
        assert not any("train-images" in name for name in names)
        assert not [n for n in names if n.startswith("zoo/") or "mnist_sparse_cnn1" in n]
        entry_points = archive.read(
            next(n for n in names if n.endswith("entry_points.txt"))
        ).decode()
    assert "sparse-keras = sparse_keras.cli:main" in entry_points
    assert wheel.stat().st_size < 8_000_000, wheel.stat().st_size


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_evaluates_offline_with_the_cards_numbers(wheel, tmp_path):
    """Issue 21's goal: pip install <wheel>; no network, no data, no variables; card's numbers."""
    venv = tmp_path / "venv"
    # --system-site-packages: TensorFlow and the other dependencies come from this
    # interpreter (no network here); sparse_keras itself must come from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--force-reinstall",
            str(wheel),
        ],
        check=True,
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SPARSE_KERAS_", "TF_CPP_", "PYTHONPATH", "HF_"))
    }
    env.update(
        HF_HUB_OFFLINE="1",  # no network: the Hub is never asked
        HF_HUB_CACHE=str(tmp_path / "hf-cache"),  # an empty cache
        KERAS_HOME=str(tmp_path / "keras-home"),  # no cached MNIST
    )
    where = subprocess.run(
        [str(python), "-c", "import sparse_keras; print(sparse_keras.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert str(venv) in where.stdout, (where.stdout, where.stderr[-2000:])
    run = subprocess.run(
        [str(venv / "bin" / "sparse-keras"), "evaluate", "mnist_sparse_cnn2", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((REPO / "zoo" / "mnist_sparse_cnn2" / "metrics.json").read_text())
    assert f"noise score: {metrics['noise_score']:,} / {metrics['max_score']:,}" in run.stdout
    assert f"{100 * metrics['clean_accuracy']:.2f}%" in run.stdout.splitlines()[2]
    for level, accuracy in zip(metrics["noise_levels"], metrics["noise_accuracy"], strict=True):
        assert re.search(rf"^\s+{level:.2f}\s+{100 * accuracy:.2f}%", run.stdout, re.M), level
    # stderr: only the one-line note that the shipped copy was used; no TensorFlow log line.
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "offline mode is set" in lines[0], run.stderr[-3000:]
    assert "_embedded/zoo/mnist_sparse_cnn2" in lines[0]


def test_shipped_mnist_test_set_is_the_canonical_one():
    from sparse_keras import _embedded
    from sparse_keras.data import mnist
    from sparse_keras.data.download import sha256_of

    for name in _embedded.MNIST_FILES:
        assert sha256_of(_embedded.MNIST_DIR / name) == mnist.SHA256[name], name


def test_mnist_test_split_falls_back_to_the_shipped_copy(tmp_path, monkeypatch):
    import numpy as np

    from sparse_keras.data import mnist
    from sparse_keras.data.download import DataNotFoundError

    monkeypatch.setenv("SPARSE_KERAS_DATA", str(tmp_path / "empty"))
    nowhere = (f"file://{tmp_path}/no-mirror/",)  # every download fails at once
    images, labels = mnist.load_arrays("test", base_urls=nowhere)
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert list(np.bincount(labels)[:3]) == [980, 1135, 1032]
    with pytest.raises(DataNotFoundError):  # only the test split is shipped
        mnist.load_arrays("train", base_urls=nowhere)
    with pytest.raises(DataNotFoundError):  # an explicit folder stays an error
        mnist.load_arrays("test", data_dir=tmp_path / "empty", base_urls=nowhere)
