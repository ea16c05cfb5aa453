"""The training queues: one resumable loop (training/run_queue.sh) behind three plans.

A stand-in `python` on PATH records the runs a queue would start, so the plans and the loop
are checked without training anything.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TRAINING = REPO / "training"


@pytest.fixture
def recorder(tmp_path):
    """(run a queue script in tmp_path, read the recorded `python` calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.txt"
    fake = bin_dir / "python"
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    # No run is ever "still going" here, whatever this machine is training right now.
    no_processes = bin_dir / "pgrep"
    no_processes.write_text("#!/usr/bin/env bash\nexit 1\n")
    no_processes.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run(
            ["bash", str(TRAINING / script), *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    return run, calls, work


def test_loop_runs_each_missing_item_once_with_the_extra_arguments(recorder):
    run, calls, work = recorder
    finished = work / "training" / "results" / "mnist_dense_cnn2" / "seed1.json"
    finished.parent.mkdir(parents=True)
    finished.write_text("{}")
    result = run("run_queue.sh", "mnist_dense_cnn2:1", "mnist_sparse_cnn2:3", "--", "--epochs", "2")
    assert result.returncode == 0, result.stderr
    assert calls() == [
        "-m training.train --recipe mnist_sparse_cnn2 --first-seed 3 --seeds 1 --verbose 2 "
        "--epochs 2"
    ]


def test_loop_refuses_a_malformed_item(recorder):
    run, calls, _ = recorder
    result = run("run_queue.sh", "mnist_dense_cnn2")
    assert result.returncode == 2
    assert "item 'mnist_dense_cnn2' is not RECIPE:SEED" in result.stderr
    assert calls() == []


def test_table1_plan(recorder):
    run, calls, _ = recorder
    assert run("queue_table1.sh", "--data-dir", "/d").returncode == 0
    started = [line.split()[3] + ":" + line.split()[5] for line in calls()]
    main = [
        "mnist_sparse_cnn2:0",
        "mnist_dense_cnn2:0",
        "mnist_sparse_cnn1:0",
        "mnist_dense_cnn1:0",
    ]
    assert started[:4] == main
    # 10 seeds of Sparse/Dense CNN-2, 5 of CNN-1, 3 of each of the four ablations.
    assert len(started) == 20 + 10 + 12 == len(set(started))
    assert {s for s in started if s.startswith("mnist_sparse_cnn2:")} == {
        f"mnist_sparse_cnn2:{seed}" for seed in range(10)
    }
    # All CNN-2 seeds come before any further CNN-1 seed or ablation.
    assert all(s.split(":")[0].endswith("_cnn2") for s in started[4:22])
    assert all(line.endswith("--data-dir /d") for line in calls())


@pytest.mark.parametrize(
    "script, prefixes, seeds",
    [
        ("queue_gsc12v2.sh", ("gsc12v2_", "gsc12v2_recorded_silence_"), range(5)),
        ("queue_audio.sh", ("fsdd_",), range(3)),
    ],
)
def test_audio_plans_cover_the_four_networks(recorder, script, prefixes, seeds):
    run, calls, _ = recorder
    assert run(script).returncode == 0
    started = {line.split()[3] + ":" + line.split()[5] for line in calls()}
    networks = ("sparse_cnn2", "dense_cnn2", "super_sparse_cnn2", "dense_cnn2_dropout")
    assert started == {f"{p}{n}:{s}" for p in prefixes for n in networks for s in seeds}
