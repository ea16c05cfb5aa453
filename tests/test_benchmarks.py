"""Smoke runs of the scripts in `benchmarks/`, at toy size.

Each script runs in its own interpreter, as a user runs it (two of them set TensorFlow's
threads or logical devices, which only a fresh process allows). What is checked is that
it finishes and prints its result line with a well-formed number (a ratio where the
script has one), never the timing itself: these runs are far too short to mean anything.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"


def run_script(name: str, *args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg", **(env or {})},
    )
    assert result.returncode == 0, (
        f"benchmarks/{name} {' '.join(args)} failed:\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}"
    )
    return result.stdout


def test_train_step(data_dir, tmp_path):
    out_file = tmp_path / "report.md"
    out = run_script(
        "train_step.py",
        "--networks",
        "mnist",
        "--batch-sizes",
        "8",
        "--steps",
        "5",
        "--rounds",
        "1",
        "--out",
        str(out_file),
    )
    ratio = rf"{NUMBER} \({NUMBER}\)"
    row = rf"\| mnist_sparse_cnn2 \| 8 \| 5 \| {ratio}" + rf" \| {ratio}" * 5 + r" \|"
    assert re.search(row, out), out
    assert re.search(r"Load average \(1/5/15 min\) before [\d.]+/[\d.]+/[\d.]+", out), out
    # --out appends the same report under a dated heading with the command, a "###" one
    # that docs/hooks.py's parser of the older "##" runs leaves alone.
    written = out_file.read_text()
    assert written.startswith("### ")
    assert "`python benchmarks/train_step.py --networks mnist --batch-sizes 8" in written
    assert re.search(row, written)


def train_step_runs() -> list[tuple[str, dict]]:
    """The "###" runs of benchmarks/results/train_step.md: (command, {(network, batch):
    {contender: CPU-time ratio to dense}})."""
    report = (REPO / "benchmarks" / "results" / "train_step.md").read_text()
    runs = []
    for block in report.split("\n### ")[1:]:
        command = block.split("`")[1]
        rows, header = {}, None
        for line in block.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| network"):
                header = [c.split(":")[0] for c in cells]
            elif line.startswith("|") and len(cells) > 4 and cells[1].isdigit():
                rows[cells[0], int(cells[1])] = {
                    name: float(cell.split()[0])
                    for name, cell in zip(header[4:], cells[4:], strict=True)
                }
        runs.append((command, rows))
    return runs


def extra(ratio: float) -> str:
    """A ratio to the dense step as the page quotes it: the extra time in percent."""
    return f"{(ratio - 1) * 100:+.0f}%"


def test_train_step_report_is_quoted_right():
    """docs/training_speed.md quotes the committed runs: the latest full one (MNIST and GSC
    at batches 4, 16 and 64) and the latest --profile one, row for row."""
    runs = train_step_runs()
    full = [rows for command, rows in runs if "--profile" not in command][-1]
    profile = [rows for command, rows in runs if "--profile" in command][-1]
    networks = ("mnist_sparse_cnn2", "gsc_sparse_cnn2")
    assert set(full) == {(n, b) for n in networks for b in (4, 16, 64)}
    page = " ".join((REPO / "docs" / "training_speed.md").read_text().split())
    for rows in (full, profile):
        for (network, batch), ratios in rows.items():
            row = f"| {network} | {batch} | " + " | ".join(map(extra, ratios.values())) + " |"
            assert row in page, row
    met = {key for key, ratios in full.items() if ratios["sparse, auto"] <= 1.15}
    assert ("goal is met" in page) == (len(met) == len(full))
    missed = [f"{n.split('_')[0].upper()} batch {b}" for (n, b) in full if (n, b) not in met]
    if missed:
        assert f"missed for {', '.join(missed)}" in page


def test_distributed_scaling():
    out = run_script("distributed_scaling.py", "--batch-size", "8", "--steps", "1", "--rounds", "1")
    for network in ("sparse", "dense"):
        assert re.search(
            rf"^{network}\s+1 device: .* samples/s .*2 logical devices: .* ratio 2/1: {NUMBER}$",
            out,
            re.MULTILINE,
        ), out


def test_gsc_pipeline(data_dir):
    out = run_script(
        "gsc_pipeline.py",
        "--data-dir",
        str(data_dir / "gsc" / "sample_v0.01"),
        "--batch-size",
        "4",
        "--seconds",
        "0.5",
        "--train-steps",
        "2",
    )
    assert re.search(rf"GSC training pipeline \(augmented, batch 4, .*\): {NUMBER} clips/s", out)
    assert re.search(rf"pipeline / training ratio: {NUMBER} \(must be > 1\)", out), out


def test_noise_score(data_dir, tmp_path):
    out = run_script(
        "noise_score.py",
        "--models",
        "mnist_sparse_cnn2,mnist_dense_cnn2",
        "--max-examples",
        "100",
        "--out",
        str(tmp_path / "report.md"),
    )
    assert re.search(rf"mnist_sparse_cnn2: model-time ratio keras / auto: {NUMBER}x", out), out
    assert "mnist_sparse_cnn2: model time keras" in out and "auto (sparse)" in out
    assert "mnist_dense_cnn2: model time keras" in out and "auto (keras)" in out
    assert "mnist_sparse_cnn2: same correct counts: yes" in out
    report = (tmp_path / "report.md").read_text()
    assert "| mnist_sparse_cnn2 | 100 | sparse |" in report
    assert "| mnist_dense_cnn2 | 100 | keras |" in report


def test_noise_score_report_is_quoted_right():
    """docs/quickstart.md's figures are the committed report's sparse rows."""
    report = REPO / "benchmarks" / "results" / "noise_score.md"
    rows = {
        cells[0]: cells
        for line in report.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| model")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    quickstart = (REPO / "docs" / "quickstart.md").read_text().replace("\n", " ")
    for name in ("mnist_sparse_cnn2", "gsc12v2_sparse_cnn2"):
        cells = rows[name]
        assert cells[2] == "sparse" and cells[8] == "yes", cells
        assert f"from {cells[3]} s to {cells[4]} s" in quickstart, name
    assert rows["mnist_dense_cnn2"][2] == "keras"


def test_theory_sweeps(tmp_path):
    out = run_script("theory_sweeps.py", "--quick", "--trials", "2000", "--out-dir", str(tmp_path))
    assert re.search(rf"Fig\. 2 sweep: [1-9][0-9]* points in {NUMBER} s", out), out
    assert re.search(rf"Fig\. 3 sweeps: [1-9][0-9]* points in {NUMBER} s", out), out
    assert (tmp_path / "fig2.png").stat().st_size > 0 and (tmp_path / "fig3.png").stat().st_size


@pytest.mark.filterwarnings("ignore")
def test_sparse_inference(data_dir):
    pytest.importorskip("numba")
    before = (REPO / "docs" / "performance.md").read_bytes()
    out = run_script(
        "sparse_inference.py",
        "--quick",
        "--no-write",
        "--networks",
        "mnist_sparse_cnn2",
        "--batches",
        "1",
        "--budget",
        "0.05",
        env={"SPARSE_KERAS_DATA": str(data_dir)},
    )
    # The end-to-end table's row: three latencies, then the speed-ups (median, fastest, CPU)
    # against Keras and against TFLite.
    ratio = rf"\*\*{NUMBER}x\*\* \| {NUMBER}x \| {NUMBER}x"
    assert re.search(
        rf"^\| mnist_sparse_cnn2 \| 1 \|( {NUMBER} \|){{3}} {ratio} \| {ratio} \| [0-9]+ \|$",
        out,
        re.MULTILINE,
    ), out
    # --no-write leaves the committed results alone.
    assert (REPO / "docs" / "performance.md").read_bytes() == before


def test_speed_report(data_dir, tmp_path):
    # One network, one batch, no checks; written to a temporary report, docs/ untouched
    # (--no-write): the run prints its ratio line and the rendered tables.
    out = run_script(
        "speed_report.py",
        "--networks",
        "mnist_sparse_cnn2",
        "--batches",
        "2",
        "--budget",
        "0",
        "--min-rounds",
        "2",
        "--no-xla",
        "--no-checks",
        "--no-write",
        "--training-batches",
        "4",
        "--training-steps",
        "5",
        "--training-rounds",
        "1",
        env={"SPARSE_KERAS_DATA": str(data_dir)},
    )
    assert re.search(rf"mnist_sparse_cnn2 batch 2: sparse {NUMBER} us/sample", out), out
    # The training part: its ratio line and its table row (the train_step.py contenders).
    assert re.search(rf"training mnist batch 4: sparse/dense step {NUMBER}", out), out
    assert re.search(rf"^\| mnist_sparse_cnn2 \| 4 \| 5 \| {NUMBER} \({NUMBER}\) \|", out, re.M)
    assert re.search(rf"-> {NUMBER}x", out), out
    assert "fraction of the multiply-count limit reached" in out


def test_stage_kernels(data_dir, tmp_path):
    # Both networks' stages with several kernels, on their real inputs; the script checks
    # that every kernel gives the first one's bits before timing.
    out_file = tmp_path / "kernels.md"
    out = run_script(
        "stage_kernels.py",
        "--batch",
        "3",
        "--rounds",
        "2",
        "--out",
        str(out_file),
        env={"SPARSE_KERAS_DATA": str(data_dir)},
    )
    kernels = {
        "conv1": ["Numba, general", "Numba, first layer", "C\\+\\+, first layer"],
        "conv2": ["Numba", "C\\+\\+"],
        "hidden": ["Numba, active rows", "C\\+\\+, batch \\(not chosen at this batch\\)"],
    }
    for name in ("mnist_sparse_cnn2", "gsc_sparse_cnn2"):
        for stage, names in kernels.items():
            for kernel in names:
                row = (
                    rf"^\| {name} \| zoo checkpoint \w+ \| [^|]+ \| 3 \| {stage}[+\w]* "
                    rf"\| {kernel} \| {NUMBER} \| {NUMBER}x \|$"
                )
                assert re.search(row, out, re.M), (row, out)
    assert "logits" not in out  # nothing masked: one kernel only
    assert "same bits checked" in out
    assert "`python benchmarks/stage_kernels.py --batch 3 --rounds 2 --out" in out_file.read_text()


def test_stage_kernels_refuses_bad_arguments():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "stage_kernels.py"), "--rounds", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2
    assert "--batch and --rounds must be >= 1, got 64 and 0" in result.stderr


def test_speed_report_section_matches_the_committed_report():
    # docs/performance.md section 6 is the committed report's block, verbatim.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "speed_report", REPO / "benchmarks" / "speed_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    block = module.report_block(REPO / "benchmarks" / "results" / "speed_report.md")
    text = (REPO / "docs" / "performance.md").read_text()
    section = text.split(module.BEGIN, 1)[1].split(module.END, 1)[0]
    assert section.strip() == block.strip()
