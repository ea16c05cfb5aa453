"""Time of the full MNIST noise score (11 levels x 10,000 test images) of Sparse CNN-2.

    SPARSE_KERAS_DATA=../shared/data python benchmarks/noise_score.py [--batch-size 1000]
        [--max-examples N]

The network is freshly built and seeded (untrained: the time does not depend on the
weights' values). The split comes from `NoiseReport.timing`: "noise" is the time spent
making the noisy, normalised batches (`add_pixel_noise` + normalisation), "inference" the
time in the model. Goal: under 60 s in all on 2 CPU cores. The machine's load average is
printed too, since other processes on a shared machine slow both parts; so is the
process's CPU time, whose half estimates the wall time on 2 otherwise idle cores (the
convolutions and top-k run on both cores).
"""

from __future__ import annotations

import argparse
import os
import time

import keras

from sparse_keras import models, robustness


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--data-dir", help="directory holding the MNIST IDX files")
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="only the first N test images (a smoke run; the goal is for all 10,000)",
    )
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    model = models.build("mnist_sparse_cnn2", seed=0)
    load_before = os.getloadavg()[0]
    cpu_start = time.process_time()
    start = time.perf_counter()
    report = robustness.evaluate(
        model,
        "mnist",
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        max_examples=args.max_examples,
        progress=True,
    )
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    timing = report.timing
    other = total - timing["data"] - timing["model"]
    print(
        f"cpu cores: {os.cpu_count()}, load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    print(f"noise score (untrained net): {report.noise_score:,} / {report.max_score:,}")
    print(f"total:      {total:6.1f} s  (goal < 60 s)")
    images = report.test_size * len(report.noise_levels)
    print(f"noise:      {timing['data']:6.1f} s  (pixel noise + normalisation, {images:,} images)")
    print(f"inference:  {timing['model']:6.1f} s  (batch {args.batch_size})")
    print(f"other:      {other:6.1f} s  (loading MNIST, tracing, scoring)")
    print(f"cpu time:   {cpu:6.1f} s  (/ 2 cores = {cpu / 2:.1f} s: the wall time on 2 idle cores)")


if __name__ == "__main__":
    main()
