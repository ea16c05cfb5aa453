"""KWinners under tf.distribute: the same state as one device processing the global batch.

The distributed sides run in fresh interpreters (`tests/distributed_worker.py`): logical
devices and the multi-worker runtime must be configured before TensorFlow starts. All
three processes start together, once per module, and the tests read what they wrote.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "distributed_worker.py"
# Generous: TensorFlow alone takes ~25 s to import on a busy two-core machine.
TIMEOUT_S = 240

# Winner counts are whole numbers summed exactly, so duty cycles may differ only by
# float rounding; weights differ by the order in which replicas' gradients are summed.
DUTY_TOLERANCE = 1e-6
WEIGHT_TOLERANCE = 1e-5
# Logits of MNIST Sparse CNN-2 after three steps: weights within 1e-5, summed over
# hundreds of inputs.
PREDICTION_TOLERANCE = 1e-4
# Identical weights, different batch split: logits of order 1 differ in the last bits.
LOADED_PREDICTION_TOLERANCE = 1e-6


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on 127.0.0.1 (all held open together, so distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def launch(mode: str, out: pathlib.Path, log: pathlib.Path, tf_config: dict | None = None):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, str(out)],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> pathlib.Path:
    """Starts the two-device run and a two-worker cluster; waits for all; kills on failure."""
    out = tmp_path_factory.mktemp("distributed")
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = {"mirrored": launch("mirrored", out, out / "mirrored.log")}
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes[f"worker{index}"] = launch("worker", out, out / f"worker{index}.log", tf_config)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        failed = []
        for name, process in processes.items():
            try:
                code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                failed.append(f"{name} timed out after {TIMEOUT_S} s")
                continue
            if code != 0:
                failed.append(f"{name} exited with {code}")
        if failed:
            logs = "\n".join(
                f"--- {name}.log (tail)\n" + (out / f"{name}.log").read_text()[-3000:]
                for name in processes
            )
            pytest.fail("; ".join(failed) + "\n" + logs)
    finally:
        # A worker whose peer died waits for it forever: never leave one behind.
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return out


def load(runs: pathlib.Path, name: str, prefix: str = "") -> dict[str, np.ndarray]:
    arrays = np.load(runs / f"{name}.npz")
    return {k[len(prefix) :]: arrays[k] for k in arrays.files if k.startswith(prefix)}


def assert_same_state(actual: dict, expected: dict, label: str) -> None:
    assert sorted(actual) == sorted(expected), label
    for path, value in expected.items():
        is_k_winners_state = path.split("/")[-1] in (
            "duty_cycles",
            "samples_seen",
            "boost_strength",
        )
        tolerance = DUTY_TOLERANCE if is_k_winners_state else WEIGHT_TOLERANCE
        np.testing.assert_allclose(
            actual[path], value, rtol=0, atol=tolerance, err_msg=f"{label}: {path}"
        )


@pytest.mark.parametrize("feed", ["keras", "global_batches"])
def test_mirrored_steps_match_one_device(runs, feed):
    """Three steps of global batch 16 on 2 replicas (8 each) = the same batches on one device.

    `keras`: `fit(x, y, batch_size=16)` splits every batch itself;
    `global_batches`: `sparse_keras.distribute.distribute_global_batches`.
    """
    one_device = load(runs, "small_one_device")
    mirrored = load(runs, f"small_mirrored_{feed}")
    # Every replica holds bit-identical copies of every variable, k-winners state included.
    assert float(mirrored.pop("replica_spread")) == 0.0
    assert_same_state(mirrored, one_device, feed)
    # The period counted global samples: 3 steps x 16.
    assert mirrored["conv_kwinners/samples_seen"] == 48
    assert mirrored["hidden_kwinners/duty_cycles"].sum() > 0
    # BoostDecay (epoch 1, factor 0.5) reached every replica's copy; it steps once more
    # after the epoch (the released postEpoch), so the saved value is 1.5 * 0.5**2.
    assert mirrored["hidden_kwinners/boost_strength"] == 0.375


def test_saved_distributed_model_loads_on_one_device(runs):
    saved = load(runs, "small_loaded")
    # The weights must load bit-identical (checked below); predictions only match to
    # float32 rounding: the distributed model splits each batch over two replicas, so
    # its matmuls block (and sum) in a different order than one device's.
    np.testing.assert_allclose(
        saved["loaded"], saved["distributed"], rtol=0, atol=LOADED_PREDICTION_TOLERANCE
    )
    mirrored = load(runs, "small_mirrored_global_batches")
    for path, value in load(runs, "small_loaded", "state/").items():
        np.testing.assert_array_equal(value, mirrored[path], err_msg=path)


def test_two_workers_agree_with_each_other_and_with_one_process(runs):
    """MNIST Sparse CNN-2, 3 global batches of 8 (4 per worker), two processes."""
    worker0 = load(runs, "mnist_worker0", "state/")
    worker1 = load(runs, "mnist_worker1", "state/")
    # Both workers apply the same all-reduced updates: identical, not merely close.
    for path, value in worker0.items():
        np.testing.assert_array_equal(worker1[path], value, err_msg=path)
    reference = load(runs, "mnist_reference", "state/")
    assert_same_state(worker0, reference, "multi-worker vs one process")
    assert worker0["hidden_kwinners/samples_seen"] == 24
    assert worker0["conv1_kwinners/boost_strength"] == 0.375


def test_model_saved_by_the_chief_loads_on_one_device(runs):
    chief = load(runs, "mnist_worker0")
    loaded = {k[len("loaded/") :]: v for k, v in chief.items() if k.startswith("loaded/")}
    for path, value in loaded.items():
        np.testing.assert_array_equal(value, chief[f"state/{path}"], err_msg=path)
    reference = load(runs, "mnist_reference")
    np.testing.assert_allclose(
        chief["loaded_predictions"], reference["predictions"], rtol=0, atol=PREDICTION_TOLERANCE
    )
