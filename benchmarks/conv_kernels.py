"""The first-layer conv kernel against the general one (issue 23), calls interleaved.

    SPARSE_KERAS_DATA=/path/to/data python benchmarks/conv_kernels.py [--batch 64]
        [--rounds 30] [--out FILE]

For the first conv stage of each network of the speed report (zoo checkpoints, batch
norm folded in, real test inputs: MNIST test images and the GSC v0.02 test split), it
calls the general dense-input kernel (`conv2d_dense_input`) and the kernel for the
paper's first layers (`conv2d_5x5_single_channel_pool2`) in turn, one call each per
round on the calling thread, and prints the median process CPU time per sample of each
and their ratio. Both must give the same bits (checked first).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import speed_report  # noqa: E402 (the sibling script: one home for the inputs and checkpoints)

from sparse_keras.compute import _kernels, _stages, sparse_inference  # noqa: E402


def first_conv(name: str, inputs: np.ndarray) -> tuple[_stages._Conv, str]:
    """The first conv stage of `name`'s compiled sparse path, and where its weights came from."""
    model, source = speed_report.sparse_model(name, inputs)
    stage = next(s for s in sparse_inference(model).stages if isinstance(s, _stages._Conv))
    return stage, source


def measure(stage: _stages._Conv, x: np.ndarray, rounds: int) -> dict[str, float]:
    """Median CPU µs per sample of each kernel on `x`, calls alternating."""
    kernel, bias = stage.padded_weights()
    out = {name: np.empty((len(x), *stage.output_shape()), np.float32) for name in ("g", "f")}
    calls = {
        "general": lambda: _kernels.conv2d_dense_input(
            x, kernel, bias, stage.pool, stage.relu, out["g"]
        ),
        "first layer": lambda: _kernels.conv2d_5x5_single_channel_pool2(
            x, kernel, bias, stage.relu, out["f"]
        ),
    }
    for call in calls.values():
        call()  # compile
    if not np.array_equal(out["g"], out["f"]):
        raise AssertionError("the two kernels disagree: not the same bits")
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.process_time()
            call()
            times[name].append(time.process_time() - start)
    return {name: float(np.median(t)) * 1e6 / len(x) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", help="also append the report to this file")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.rounds < 1:
        parser.error(f"--batch and --rounds must be >= 1, got {args.batch} and {args.rounds}")
    inputs = {"mnist_sparse_cnn2": (speed_report.mnist_test(), "MNIST test images")}
    features, what = speed_report.gsc_test()
    inputs["gsc_sparse_cnn2"] = (features, what)
    lines = [
        "| network | weights | inputs | batch | general kernel: CPU µs/sample | first-layer kernel "
        "| speed-up |",
        "|---|---|---|--:|--:|--:|--:|",
    ]
    for name, (x, what) in inputs.items():
        stage, source = first_conv(name, x)
        batch = np.ascontiguousarray(x[: args.batch])
        us = measure(stage, batch, args.rounds)
        lines.append(
            f"| {name} | {source} | {what} | {len(batch)} | {us['general']:.1f} "
            f"| {us['first layer']:.1f} | {us['general'] / us['first layer']:.2f}x |"
        )
    report = "\n".join(lines) + (
        f"\n\nMedians of {args.rounds} calls each, alternating, one thread; same bits checked. "
        f"Load average (1 min) at the end {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs."
    )
    print(report)
    if args.out:
        command = "python benchmarks/conv_kernels.py " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        with open(args.out, "a") as out:
            out.write(f"### {datetime.datetime.now():%Y-%m-%d %H:%M} `{command.strip()}`\n\n")
            out.write(report + "\n\n")


if __name__ == "__main__":
    main()
