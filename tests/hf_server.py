"""A local Hugging Face Hub for the zoo tests, and the tiny zoo models it serves.

Route taken: a real HF-compatible server from PyPI, olah (`pip install olah`, in the
`dev` extra), not a hand-written imitation. Its `mirrors-path` serves local git
repositories (`<mirrors>/models/<org>/<repo>`, branch `main`) with the same routes and
headers as the Hub (`/<repo>/resolve/<rev>/<file>` HEAD and GET with `X-Repo-Commit`,
`ETag` = git blob id, `/api/models/<repo>/revision/<rev>`), and `hf_hub_download`
from huggingface_hub 2.4 works against it unchanged on 127.0.0.1. Run with
`offline = true` it never contacts huggingface.co. Every zoo folder becomes a git
repository whose commits are real revisions, so pinned revisions, moving branches and
tampered uploads are tested as the Hub would show them. olah cannot receive uploads
(it is a read-only mirror), so `publish` is tested against a recording `HfApi`.

The models served are tiny `mnist_sparse_cnn2` variants made by `make_training_run`
and packaged with the zoo's own `package`, so the tests do not depend on which real
checkpoints exist.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import keras
import numpy as np

from sparse_keras import models

# Small enough to build and save in well under a second, with every k-winners layer
# really sparse (conv1 60 of 576, conv2 20 of 128, hidden 8 of 32).
TINY_OVERRIDES = {"conv_filters": [4, 8], "conv_k": [60, 20], "hidden_units": 32, "hidden_k": 8}
NOISE_LEVELS = [round(0.05 * i, 2) for i in range(11)]


def free_port() -> int:
    """A TCP port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_training_run(
    root: pathlib.Path,
    recipe: str = "mnist_sparse_cnn2",
    seed: int = 0,
    overrides: dict | None = None,
    train_steps: int = 3,
    network: str = "mnist_sparse_cnn2",
    dataset: str = "mnist",
) -> keras.Model:
    """Writes what `python -m training.train` leaves behind, for a tiny model.

    `root/runs/<recipe>/seed<k>/final.weights.h5` and `root/results/<recipe>/seed<k>.json`
    (its "noise" entry as `sparse_keras.robustness.NoiseReport.to_dict` writes it). The
    model is trained for a few steps on random data so that its duty cycles are not zero;
    the result numbers are placeholders (labelled so in `command`).

    Returns:
        The model whose weights were saved.
    """
    overrides = TINY_OVERRIDES if overrides is None else overrides
    keras.utils.set_random_seed(seed)
    model = models.build(
        network,
        seed=seed,
        **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()},
    )
    if train_steps:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(16 * train_steps, *model.input_shape[1:])).astype("float32")
        y = rng.integers(0, model.output_shape[-1], size=16 * train_steps)
        model.compile(
            optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    run = root / "runs" / recipe / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    model.save_weights(run / "final.weights.h5")
    test_size = 10_000 if dataset == "mnist" else 300
    correct = [round((0.11 - 0.001 * i) * test_size) for i in range(len(NOISE_LEVELS))]
    accuracies = [c / test_size for c in correct]
    result = {
        "recipe": recipe,
        "network": network,
        "dataset": dataset,
        "seed": seed,
        "clean_accuracy": accuracies[0],
        "noise": {
            "model_name": network,
            "dataset": dataset,
            "noise_levels": NOISE_LEVELS,
            "accuracies": accuracies,
            "correct": correct,
            "noise_score": sum(correct),
            "max_score": len(NOISE_LEVELS) * test_size,
            "test_size": test_size,
            "seed": seed,
        },
        "noise_score": sum(correct),
        "epochs": 1,
        "selected_epoch": 0,
        "selection": "last epoch (no test-set peeking)",
        "train_seconds": 1.0,
        "history": [],
        "recipe_config": {
            "name": recipe,
            "network": network,
            "batch_size": 16,
            "learning_rate": 0.01,
            "lr_decay": 1.0,
            "momentum": 0.0,
            "boost_decay": 0.85,
            "model_overrides": overrides,
        },
        "versions": {"keras": keras.__version__},
        "git_commit": None,
        "command": "tests/hf_server.py make_training_run (placeholder numbers, not a real run)",
    }
    results = root / "results" / recipe
    results.mkdir(parents=True, exist_ok=True)
    (results / f"seed{seed}.json").write_text(json.dumps(result, indent=1))
    return model


def empty_registry(path: pathlib.Path) -> pathlib.Path:
    path.write_text(json.dumps({"format_version": 1, "models": {}}))
    return path


def _git(cwd: pathlib.Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=zoo tests", "-c", "user.email=tests@localhost", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


class LocalHub:
    """olah on 127.0.0.1, serving git repositories made from zoo folders.

    Args:
        root: Scratch folder for the mirrors, olah's config, cache and logs.
    """

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.mirrors = root / "mirrors"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def repo_path(self, repo_id: str) -> pathlib.Path:
        return self.mirrors / "models" / repo_id

    def add_repo(self, repo_id: str, folder: pathlib.Path) -> str:
        """Creates a Hub repository holding a copy of `folder`; returns its commit."""
        path = self.repo_path(repo_id)
        path.mkdir(parents=True)
        _git(path, "init", "-q", "-b", "main")
        for file in folder.iterdir():
            shutil.copyfile(file, path / file.name)
        return self._commit(path, "add model")

    def commit(self, repo_id: str, files: dict[str, bytes], message: str = "update") -> str:
        """Commits new contents of some files to `main`; returns the commit."""
        path = self.repo_path(repo_id)
        for name, data in files.items():
            (path / name).write_bytes(data)
        return self._commit(path, message)

    def _commit(self, path: pathlib.Path, message: str) -> str:
        _git(path, "add", "-A")
        _git(path, "commit", "-q", "-m", message)
        return _git(path, "rev-parse", "HEAD")

    def start(self, timeout: float = 60.0) -> None:
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'repos-path = "{self.root / "olah-cache"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n'
            f'mirror-netloc = "127.0.0.1:{self.port}"\nmirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
            # Branch -> commit lookups must see new commits at once.
            "metadata-cache-ttl = 0\n"
            "[accessibility]\noffline = true\n"
        )
        self.mirrors.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "olah.out", "wb")  # noqa: SIM115 (kept open for the process)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "olah.server",
                "-c",
                str(config),
                "--log-path",
                str(self.root / "logs"),
            ],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"olah exited with {self.process.returncode}: {(self.root / 'olah.out').read_text()}"
                )
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"olah did not answer on {self.endpoint} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
