"""Each stage's kernels against one another on the zoo checkpoints (issue 23), calls interleaved.

    SPARSE_KERAS_DATA=/path/to/data python benchmarks/stage_kernels.py [--batch 64]
        [--rounds 30] [--out FILE]

For the networks of the speed report (zoo checkpoints, batch norm folded in, real test
inputs: MNIST test images and the GSC v0.02 test split), the stages that have more than
one kernel get their real input (what the checkpoint's earlier stages make of a batch)
and each kernel is called in turn, one call each per round on the calling thread:

- conv1 (dense input): Numba's general kernel, Numba's first-layer kernel, the C++
  first-layer kernel;
- conv2 (fed by k-winners): Numba's kernel, the C++ one;
- hidden (fed by k-winners): Numba's active-rows kernel, the C++ batch kernel (whether
  `sparse_inference` would pick it at this batch is shown).

Prints the median process CPU time per sample of each and the speed-up over the first.
Every kernel must give the first one's bits (checked before timing).
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

from sparse_keras.compute import _kernels, _stages, native_kernels, sparse_inference  # noqa: E402


def stage_calls(stage, x, lib) -> tuple[str, dict, np.ndarray] | None:
    """(stage label, {kernel name: call writing into its own output}, outputs) for a stage
    with several kernels fed `x`; None for any other stage."""
    if isinstance(stage, _stages._Conv):
        kernel, bias = stage.padded_weights()
        shape = (stage_batch(x), *stage.output_shape())
        outs = np.full((3, *shape), np.nan, np.float32)
        if isinstance(x, _stages._Sparse):
            args = (kernel, bias, stage.pool, stage.relu)
            return (
                "+".join(stage.layers),
                {
                    "Numba": lambda: _kernels.conv2d_sparse_input(
                        x.idx, x.val, *x.shape, *args, outs[0]
                    ),
                    "C++": lambda: native_kernels.conv2d_sparse_input(
                        lib, x.idx, x.val, x.shape, *args, outs[1]
                    ),
                },
                outs[:2],
            )
        if stage.first_layer_kernel():
            return (
                "+".join(stage.layers),
                {
                    "Numba, general": lambda: _kernels.conv2d_dense_input(
                        x, kernel, bias, stage.pool, stage.relu, outs[0]
                    ),
                    "Numba, first layer": lambda: _kernels.conv2d_5x5_single_channel_pool2(
                        x, kernel, bias, stage.relu, outs[1]
                    ),
                    "C++, first layer": lambda: native_kernels.conv2d_5x5_single_channel_pool2(
                        lib, x, kernel, bias, stage.relu, outs[2]
                    ),
                },
                outs,
            )
    if isinstance(stage, _stages._DenseLayer) and isinstance(x, _stages._Sparse):
        units = stage.kernel.shape[1]
        if stage.columns().stored == stage.kernel.size:
            return None  # nothing masked (the logits): the batch kernel has nothing to skip
        outs = np.full((2, stage_batch(x), units), np.nan, np.float32)
        chosen = native_kernels.batch_kernel_pays(
            stage_batch(x), x.idx.shape[1], stage.columns().stored, units
        )
        return (
            "+".join(stage.layers),
            {
                "Numba, active rows": lambda: _kernels.dense_sparse_input_rows(
                    x.idx, x.val, stage.kernel, stage.bias, stage.relu, outs[0]
                ),
                f"C++, batch ({'chosen' if chosen else 'not chosen'} at this batch)": lambda: (
                    native_kernels.dense_sparse_weights(
                        lib, x.idx, x.val, stage.columns(), stage.bias, stage.relu, outs[1]
                    )
                ),
            },
            outs,
        )
    return None


def stage_batch(x) -> int:
    return x.idx.shape[0] if isinstance(x, _stages._Sparse) else x.shape[0]


def measure(calls: dict, outs: np.ndarray, rounds: int) -> dict[str, float]:
    """Median CPU seconds per call of each kernel, calls alternating; bits checked first."""
    for call in calls.values():
        call()  # compile / warm up
    for name, out in zip(list(calls)[1:], outs[1:], strict=True):
        if not np.array_equal(out, outs[0]):
            raise AssertionError(f"{name} disagrees with {next(iter(calls))}: not the same bits")
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.process_time()
            call()
            times[name].append(time.process_time() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", help="also append the report to this file")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.rounds < 1:
        parser.error(f"--batch and --rounds must be >= 1, got {args.batch} and {args.rounds}")
    lib = native_kernels.library()
    if lib is None:
        sys.exit(f"the C++ kernels could not be built: {native_kernels.unavailable_reason()}")
    inputs = {"mnist_sparse_cnn2": (speed_report.mnist_test(), "MNIST test images")}
    inputs["gsc_sparse_cnn2"] = speed_report.gsc_test()
    lines = [
        "| network | weights | inputs | batch | stage | kernel | CPU µs/sample | speed-up |",
        "|---|---|---|--:|---|---|--:|--:|",
    ]
    for name, (data, what) in inputs.items():
        model, source = speed_report.sparse_model(name, data)
        fast = sparse_inference(model, threads=1, kernels="native")
        h = np.ascontiguousarray(data[: args.batch])
        batch = len(h)
        for stage in fast.stages:
            found = stage_calls(stage, h, lib)
            if found is not None:
                label, calls, outs = found
                seconds = measure(calls, outs, args.rounds)
                first = next(iter(seconds.values()))
                for kernel, s in seconds.items():
                    lines.append(
                        f"| {name} | {source} | {what} | {batch} | {label} | {kernel} "
                        f"| {s * 1e6 / batch:.1f} | {first / s:.2f}x |"
                    )
            h = stage(h)
    report = "\n".join(lines) + (
        f"\n\nMedians of {args.rounds} calls each, alternating, one thread; same bits checked. "
        f"Load average (1 min) at the end {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs."
    )
    print(report)
    if args.out:
        command = "python benchmarks/stage_kernels.py " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        with open(args.out, "a") as out:
            out.write(f"### {datetime.datetime.now():%Y-%m-%d %H:%M} `{command.strip()}`\n\n")
            out.write(report + "\n\n")


if __name__ == "__main__":
    main()
